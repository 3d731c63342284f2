#if canImport(Glibc)
import Glibc
#endif
import COpenSSL

/// One connection's TLS state (RFC 8446; TLS 1.2, RFC 5246, where the client asks for it): an
/// OpenSSL `SSL` wired to two memory BIOs, so OpenSSL never touches the socket and the event loop
/// (io_uring or epoll alike) keeps doing all I/O.
///
/// - In: ciphertext from `LoopHandler.received` is written into the read BIO; `SSL_read` drives
///   the handshake and yields plaintext for the HTTP parser.
/// - Out: plaintext from the connection's `OutboundQueue` goes through `SSL_write` into the write
///   BIO; `stage` moves what the write BIO holds (records, handshake flights, alerts,
///   close_notify) into `buffer`, which is handed to `EventLoop.send` and stays unchanged until
///   the send completed in full — the loop's one-send-in-flight contract holds for ciphertext.
///
/// Loop thread only. Freed with its `Connection` after `LoopHandler.closed`, so the buffer
/// outlives any send the kernel may still read.
final class TLSSession {
    private let ssl: OpaquePointer
    /// Network → OpenSSL (ciphertext received).
    private let readBIO: OpaquePointer
    /// OpenSSL → network (ciphertext to send).
    private let writeBIO: OpaquePointer

    /// The handshake finished: application data may flow.
    private(set) var established = false
    /// A fatal error happened: only an alert already produced may still go out, then the
    /// connection closes.
    var failed = false
    /// close_notify (RFC 8446 §6.1) was produced.
    private(set) var shutdownSent = false
    /// The first received bytes were looked at (plaintext HTTP on a TLS port).
    var firstBytesSeen = false

    /// Plaintext taken from the OutboundQueue (its send in flight) not yet encrypted because
    /// `SSL_write` wanted to read first; retried with the same bytes (OpenSSL requires that).
    var heldPlaintext: UnsafeRawBufferPointer?
    /// Plaintext bytes of the queue's send in flight that `buffer` carries: reported to the queue
    /// as written once all of `buffer` was written.
    private(set) var plaintextInFlight = 0

    /// Ciphertext of the send in flight.
    private var buffer: UnsafeMutableRawPointer?
    private var capacity = 0
    private var count = 0
    private var written = 0
    /// A ciphertext send is in flight.
    private(set) var sending = false

    /// Buffers up to this size are kept for the connection's next send; larger ones are freed
    /// after use, so an idle subscriber holds no ciphertext (0: always freed; malloc is cheap next
    /// to the AEAD pass, and thousands of idle subscribers add up).
    private static let keptCapacity = 0

    /// A server-side session on `context`; nil when OpenSSL cannot allocate one.
    init?(context: TLSContext) {
        guard let ssl = SSL_new(context.context) else { return nil }
        guard let r = BIO_new(BIO_s_mem()), let w = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            return nil
        }
        SSL_set_bio(ssl, r, w)  // the SSL owns both BIOs now
        SSL_set_accept_state(ssl)
        self.ssl = ssl
        self.readBIO = r
        self.writeBIO = w
    }

    deinit {
        SSL_free(ssl)
        free(buffer)
    }

    /// What came of feeding received ciphertext.
    enum ReceiveOutcome {
        /// Everything was consumed; more input is needed.
        case needMore
        /// The peer sent close_notify: it will send nothing more.
        case peerClosed
        /// A fatal TLS error (failed handshake, bad record): the reason, for a debug log.
        case failed(String)
    }

    /// Feeds ciphertext; calls `established` once when the handshake finishes and `deliver` with
    /// each piece of decrypted application data (valid only during the call).
    func receive(
        _ ciphertext: UnsafeRawBufferPointer, established onEstablished: () -> Void,
        deliver: (UnsafeRawBufferPointer) -> Void
    ) -> ReceiveOutcome {
        if ciphertext.count > 0 {
            // A memory BIO takes everything (it grows); it is emptied by SSL_read below.
            _ = BIO_write(readBIO, ciphertext.baseAddress, Int32(ciphertext.count))
        }
        return withUnsafeTemporaryAllocation(byteCount: 16 * 1024, alignment: 16) { scratch in
            while true {
                ERR_clear_error()
                let n = SSL_read(ssl, scratch.baseAddress, Int32(scratch.count))
                if !established, SSL_is_init_finished(ssl) == 1 {
                    established = true
                    onEstablished()
                }
                if n > 0 {
                    deliver(UnsafeRawBufferPointer(rebasing: scratch[0..<Int(n)]))
                    continue
                }
                switch SSL_get_error(ssl, n) {
                case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
                    return .needMore
                case SSL_ERROR_ZERO_RETURN:
                    return .peerClosed
                case SSL_ERROR_SYSCALL:
                    // With memory BIOs: the peer's data ended without close_notify mid-record.
                    return .failed("unexpected end of TLS data: \(TLSContext.openSSLErrors())")
                default:
                    return .failed(TLSContext.openSSLErrors())
                }
            }
        }
    }

    /// What came of encrypting plaintext.
    enum EncryptOutcome {
        /// All of it was encrypted into the write BIO.
        case encrypted
        /// OpenSSL needs to read first (SSL_ERROR_WANT_READ); retry with the same bytes later.
        case wantRead
        case failed(String)
    }

    /// Encrypts `plain` (at most a few records' worth: the caller bounds it) into the write BIO.
    /// Counts it into `plaintextInFlight` on success.
    func encrypt(_ plain: UnsafeRawBufferPointer) -> EncryptOutcome {
        ERR_clear_error()
        let n = SSL_write(ssl, plain.baseAddress, Int32(plain.count))
        if n > 0 {
            // Without SSL_MODE_ENABLE_PARTIAL_WRITE, SSL_write reports success only for all of it.
            plaintextInFlight += Int(n)
            return .encrypted
        }
        switch SSL_get_error(ssl, n) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return .wantRead
        default: return .failed(TLSContext.openSSLErrors())
        }
    }

    /// Produces close_notify (RFC 8446 §6.1) once; it goes out with the next `stage`.
    func shutdown() {
        guard !shutdownSent else { return }
        shutdownSent = true
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
    }

    /// Queues raw bytes to send outside TLS (the plaintext 400 for an HTTP client on a TLS port).
    func queueRaw(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { BIO_write(writeBIO, $0.baseAddress, Int32($0.count)) }
    }

    /// Moves everything the write BIO holds into the send buffer and marks a send in flight.
    /// Returns the bytes to pass to `EventLoop.send`, or nil when there is nothing to send (or a
    /// send is already in flight).
    func stage() -> UnsafeRawBufferPointer? {
        guard !sending else { return nil }
        let pending = pushd_bio_pending(writeBIO)
        guard pending > 0 else { return nil }
        if pending > capacity {
            free(buffer)
            capacity = max(pending, 512)
            buffer = malloc(capacity)
        }
        let n = BIO_read(writeBIO, buffer, Int32(pending))
        guard n > 0 else { return nil }
        count = Int(n)
        written = 0
        sending = true
        return UnsafeRawBufferPointer(start: buffer, count: count)
    }

    /// Records that `n > 0` bytes of the send in flight were written. Returns the rest to send
    /// when some is left (a short send); nil when the buffer is all written, after which
    /// `takePlaintextWritten()` tells how much queue plaintext that completes.
    func sent(_ n: Int) -> UnsafeRawBufferPointer? {
        precondition(sending && n > 0 && written + n <= count)
        written += n
        if written < count {
            return UnsafeRawBufferPointer(start: buffer! + written, count: count - written)
        }
        sending = false
        count = 0
        written = 0
        if capacity > Self.keptCapacity {
            free(buffer)
            buffer = nil
            capacity = 0
        }
        return nil
    }

    /// The plaintext bytes the completed ciphertext carried (0 for handshake-only sends); resets.
    func takePlaintextWritten() -> Int {
        defer { plaintextInFlight = 0 }
        return plaintextInFlight
    }

    /// The negotiated protocol version, e.g. `TLSv1.3` (for logs).
    var version: String { String(cString: SSL_get_version(ssl)) }
}
