// CPushShim: only what Swift cannot import directly — function-like macros, flag macros, and
// glibc functions that are declared only under _GNU_SOURCE (accept4, pthread_setname_np).
#ifndef CPUSHSHIM_H
#define CPUSHSHIM_H

#include <features.h>
#include <liburing.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>

/// accept4(2) with SOCK_NONBLOCK|SOCK_CLOEXEC.
int pushd_accept4(int fd, struct sockaddr *addr, socklen_t *len);
/// Names the calling thread (at most 15 bytes are kept), for top/perf.
void pushd_set_thread_name(const char *name);

/// IOSQE_* flag values (the macros do not import into Swift).
static inline uint8_t pushd_iosqe_buffer_select(void) { return IOSQE_BUFFER_SELECT; }
static inline uint8_t pushd_iosqe_cqe_skip_success(void) { return IOSQE_CQE_SKIP_SUCCESS; }
static inline uint8_t pushd_iosqe_io_link(void) { return IOSQE_IO_LINK; }

#endif
