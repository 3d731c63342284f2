// liburing defines _GNU_SOURCE/_XOPEN_SOURCE itself; <features.h> first pins glibc's feature
// macros so every C module sees the same glibc declarations (see docs/ARCHITECTURE.md).
#include <features.h>
#include <liburing.h>
