// Functions for what Swift cannot import from OpenSSL 3: the parts of the TLS API that are
// function-like macros (SSL_CTX_set_min_proto_version, SSL_CTX_set_mode, ...) or option bits
// built with casts. Used by Sources/PushServer/TLS*.swift.
#ifndef PUSHD_TLS_H
#define PUSHD_TLS_H
#include <openssl/ssl.h>
#include <openssl/err.h>

/// SSL_CTX_set_min_proto_version: 1 on success.
static inline int pushd_ssl_ctx_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}

/// No renegotiation (TLS 1.2; TLS 1.3 has none), no compression (CRIME), and per-connection
/// read/write buffers released while idle (many mostly idle subscribers).
static inline void pushd_ssl_ctx_set_server_defaults(SSL_CTX *ctx) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
}

/// The reason code of a packed OpenSSL error (ERR_GET_REASON).
static inline int pushd_err_reason(unsigned long code) { return ERR_GET_REASON(code); }

/// Bytes waiting in a memory BIO (BIO_ctrl_pending as size_t).
static inline size_t pushd_bio_pending(BIO *bio) { return BIO_ctrl_pending(bio); }

#endif
