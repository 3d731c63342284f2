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

/// socket(2) type flags. <bits/socket_type.h> defines them as enum + macro; once several C modules
/// include it textually, Swift can lose sight of them in some files, so they come from here.
static inline int pushd_sock_stream(void) { return SOCK_STREAM; }
static inline int pushd_sock_nonblock(void) { return SOCK_NONBLOCK; }
static inline int pushd_sock_cloexec(void) { return SOCK_CLOEXEC; }

/// IOSQE_* flag values (the macros do not import into Swift).
static inline uint8_t pushd_iosqe_buffer_select(void) { return IOSQE_BUFFER_SELECT; }
static inline uint8_t pushd_iosqe_cqe_skip_success(void) { return IOSQE_CQE_SKIP_SUCCESS; }
static inline uint8_t pushd_iosqe_io_link(void) { return IOSQE_IO_LINK; }

/// IORING_TIMEOUT_MULTISHOT (kernel 6.4+, include/uapi/linux/io_uring.h); liburing 2.3's header
/// predates it. Older kernels answer such a timeout with -EINVAL.
#define PUSHD_IORING_TIMEOUT_MULTISHOT (1U << 6)
static inline uint32_t pushd_ioring_timeout_multishot(void) { return PUSHD_IORING_TIMEOUT_MULTISHOT; }

/// Sets `sqe->buf_group` (a member of an anonymous packed union that Swift does not expose
/// reliably): the provided-buffer group a IOSQE_BUFFER_SELECT receive picks from.
static inline void pushd_sqe_set_buf_group(struct io_uring_sqe *sqe, uint16_t group) {
    sqe->buf_group = group;
}

/// ORs `flags` into `sqe->ioprio`, where send/recv keep IORING_RECVSEND_* flags
/// (e.g. IORING_RECVSEND_POLL_FIRST: wait for readiness before the first attempt).
static inline void pushd_sqe_or_ioprio(struct io_uring_sqe *sqe, uint16_t flags) {
    sqe->ioprio |= flags;
}

/// The size in bytes of one `struct io_uring_buf` entry of a provided-buffer ring.
static inline size_t pushd_io_uring_buf_size(void) { return sizeof(struct io_uring_buf); }

#endif
