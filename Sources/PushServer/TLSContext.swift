// TLS termination (issue #6 item 5): the server-wide OpenSSL context, built from `tls.*` and
// rebuilt on SIGHUP. Per-connection state is TLSSession.swift; the LoopWorker seams are in
// TLSWorker.swift. See docs/ARCHITECTURE.md "TLS".
#if canImport(Glibc)
import Glibc
#endif
import COpenSSL
import PushCore
import Synchronization

/// `tls.*` — optional TLS termination. Off unless both files are named; when on, every listener
/// speaks TLS (HTTPS, WSS) and plaintext HTTP is refused.
public struct TLSSettings: Sendable, Equatable {
    /// `tls.certificate`: PEM file with the server certificate first, then its intermediates.
    /// Empty: TLS off.
    public var certificate: String = ""
    /// `tls.private_key`: PEM file with the certificate's private key. Empty: TLS off.
    public var privateKey: String = ""
    /// `tls.min_version`: the oldest protocol version accepted (`1.2` or `1.3`).
    public var minVersion: TLSMinimumVersion = .tls12
    public init() {}
    /// Whether TLS is configured.
    public var isEnabled: Bool { !certificate.isEmpty || !privateKey.isEmpty }
}

/// Why a TLS context could not be built: the configuration key at fault and what is wrong.
public struct TLSSetupError: Error, Sendable, CustomStringConvertible {
    /// `tls.certificate` or `tls.private_key`.
    public var keyPath: String
    /// What is wrong, with the file and OpenSSL's reason.
    public var reason: String
    public var description: String { "\(keyPath): \(reason)" }
}

/// One OpenSSL `SSL_CTX` configured for pushd: the certificate chain and key (checked to match),
/// TLS 1.2 or 1.3 minimum, AEAD cipher suites with forward secrecy, no renegotiation or
/// compression, and ALPN `http/1.1` (RFC 7301).
///
/// Sendable: after `init` the context is only read; OpenSSL allows `SSL_new` on one context from
/// several threads at once, and each `SSL` holds its own reference, so a context replaced by a
/// reload stays alive until its last connection is gone.
public final class TLSContext: @unchecked Sendable {
    /// TLS 1.2 cipher suites: ECDHE key exchange (forward secrecy) with an AEAD cipher only
    /// (RFC 7525 §4.2). TLS 1.3 suites (RFC 8446 §B.4) are OpenSSL's defaults, all AEAD.
    static let tls12Ciphers =
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
        + "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

    let context: OpaquePointer

    /// Loads and checks the certificate and key named by `settings`.
    /// - Throws: `TLSSetupError` naming the key (`tls.certificate`, `tls.private_key`) at fault.
    public init(_ settings: TLSSettings) throws(TLSSetupError) {
        if settings.certificate.isEmpty || settings.privateKey.isEmpty {
            let missing = settings.certificate.isEmpty ? "tls.certificate" : "tls.private_key"
            let other = missing == "tls.certificate" ? "tls.private_key" : "tls.certificate"
            throw TLSSetupError(keyPath: missing, reason: "must be set when \(other) is set (TLS needs both)")
        }
        try Self.checkReadable(settings.certificate, key: "tls.certificate")
        try Self.checkReadable(settings.privateKey, key: "tls.private_key")
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_server_method()) else {
            throw TLSSetupError(keyPath: "tls.certificate", reason: "SSL_CTX_new failed: \(Self.openSSLErrors())")
        }
        self.context = ctx
        let version = settings.minVersion == .tls13 ? TLS1_3_VERSION : TLS1_2_VERSION
        guard pushd_ssl_ctx_set_min_proto_version(ctx, version) == 1,
            SSL_CTX_set_cipher_list(ctx, Self.tls12Ciphers) == 1
        else {
            throw TLSSetupError(keyPath: "tls.min_version", reason: "OpenSSL refused the settings: \(Self.openSSLErrors())")
        }
        pushd_ssl_ctx_set_server_defaults(ctx)
        SSL_CTX_set_alpn_select_cb(ctx, pushdSelectALPN, nil)
        guard SSL_CTX_use_certificate_chain_file(ctx, settings.certificate) == 1 else {
            throw TLSSetupError(
                keyPath: "tls.certificate",
                reason: "no usable PEM certificate chain in \(settings.certificate) (\(Self.openSSLErrors()))")
        }
        guard SSL_CTX_use_PrivateKey_file(ctx, settings.privateKey, SSL_FILETYPE_PEM) == 1 else {
            let errors = Self.openSSLErrors()
            // OpenSSL compares the key with the certificate as it loads it.
            let reason =
                errors.contains("key values mismatch")
                ? "\(settings.privateKey) does not match the certificate in \(settings.certificate)"
                : "no usable unencrypted PEM private key in \(settings.privateKey) (\(errors))"
            throw TLSSetupError(keyPath: "tls.private_key", reason: reason)
        }
        guard SSL_CTX_check_private_key(ctx) == 1 else {
            throw TLSSetupError(
                keyPath: "tls.private_key",
                reason: "\(settings.privateKey) does not match the certificate in \(settings.certificate)")
        }
    }

    deinit { SSL_CTX_free(context) }

    /// Validates `settings` the way `init` does, for the configuration loader (exit status 78
    /// with the key path) and `pushd check-config`.
    public static func check(_ settings: TLSSettings) -> TLSSetupError? {
        guard settings.isEnabled else { return nil }
        do {
            _ = try TLSContext(settings)
            return nil
        } catch {
            return error
        }
    }

    private static func checkReadable(_ path: String, key: String) throws(TLSSetupError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let e = errno
            throw TLSSetupError(keyPath: key, reason: "cannot read \(path): \(String(cString: strerror(e)))")
        }
        Glibc.close(fd)
    }

    /// Drains this thread's OpenSSL error queue into one line (`;`-separated), or `unknown error`.
    static func openSSLErrors() -> String {
        var parts: [String] = []
        while case let code = ERR_get_error(), code != 0 {
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            parts.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return parts.isEmpty ? "unknown error" : parts.joined(separator: "; ")
    }
}

/// The ALPN callback (RFC 7301 §3.2): choose `http/1.1` from the client's list; refuse the
/// handshake with `no_application_protocol` when it is not there. A client sending no ALPN
/// extension never reaches this and gets HTTP/1.1 anyway.
private let pushdSelectALPN:
    @convention(c) (
        OpaquePointer?, UnsafeMutablePointer<UnsafePointer<UInt8>?>?, UnsafeMutablePointer<UInt8>?,
        UnsafePointer<UInt8>?, UInt32, UnsafeMutableRawPointer?
    ) -> Int32 = { _, out, outLength, input, inputLength, _ in
        guard let input, let out, let outLength else { return SSL_TLSEXT_ERR_ALERT_FATAL }
        let list = UnsafeRawBufferPointer(start: input, count: Int(inputLength))
        guard let range = TLSWire.selectProtocol(TLSWire.http11, from: list) else { return SSL_TLSEXT_ERR_ALERT_FATAL }
        out.pointee = input + range.lowerBound
        outLength.pointee = UInt8(range.count)
        return SSL_TLSEXT_ERR_OK
    }

/// The TLS context new connections get; replaced by a reload (old connections keep theirs).
final class TLSContextStore: Sendable {
    private let current = Mutex<TLSContext?>(nil)
    /// The context for a connection accepted now, or nil when TLS is off.
    var context: TLSContext? { current.withLock { $0 } }
    func install(_ context: TLSContext) { current.withLock { $0 = context } }
}

extension Server {
    /// SIGHUP (Reload.swift): re-reads the certificate and key — the files are read again even
    /// when their paths did not change, which is how a renewed certificate is picked up. New
    /// connections get the new context; established ones keep the one they started with. Turning
    /// TLS on or off needs a restart (every listener would change protocol). A certificate that
    /// fails to load keeps the running one (logged).
    /// - Returns: `["tls"]` when turning TLS on or off was asked for, else empty.
    func reloadTLS(_ new: TLSSettings, old: TLSSettings, applied: inout ServerConfiguration) -> [String] {
        guard new.isEnabled == old.isEnabled else {
            applied.tls = old
            return ["tls"]
        }
        guard new.isEnabled else { return [] }
        do {
            shared.tls.install(try TLSContext(new))
            logger.info("TLS certificate reloaded", metadata: ["certificate": "\(new.certificate)"])
        } catch {
            applied.tls = old
            logger.error("TLS reload refused, keeping the running certificate: \(error)")
        }
        return []
    }
}
