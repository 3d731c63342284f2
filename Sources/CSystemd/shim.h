#include <features.h>
#include <systemd/sd-daemon.h>
