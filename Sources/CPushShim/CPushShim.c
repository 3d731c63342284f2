#define _GNU_SOURCE
#include <pthread.h>
#include <sys/socket.h>
#include "CPushShim.h"

int pushd_accept4(int fd, struct sockaddr *addr, socklen_t *len) {
    return accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

void pushd_set_thread_name(const char *name) {
    pthread_setname_np(pthread_self(), name);
}
