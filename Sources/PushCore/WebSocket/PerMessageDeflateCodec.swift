import CZlib
import Synchronization

/// The compression side of permessage-deflate (RFC 7692 §7.2) over zlib's raw DEFLATE.
///
/// The server always negotiates `server_no_context_takeover` (§7.1.1.1), so every outgoing
/// message is compressed on its own: the bytes depend only on the message and the window size,
/// which is what lets one compressed event frame be shared by every subscriber.
public enum PerMessageDeflateCodec {
    /// The 4 bytes an empty stored block ends with after `Z_SYNC_FLUSH`, removed from every
    /// compressed message and re-appended before inflating (RFC 7692 §7.2.1, §7.2.2).
    static let tail: [UInt8] = [0x00, 0x00, 0xFF, 0xFF]

    /// Compresses one whole message with a fresh context and a window of 2^`windowBits` bytes
    /// (9–15; zlib cannot produce an 8-bit window, so negotiation never agrees to less than 9),
    /// ending with `Z_SYNC_FLUSH` and without its 4-byte tail (RFC 7692 §7.2.1). Returns nil if
    /// zlib fails (out of memory), so the caller sends the message uncompressed (RSV1 clear),
    /// which §6 allows for any message.
    public static func compress(_ input: [UInt8], windowBits: Int) -> [UInt8]? {
        precondition((9...15).contains(windowBits), "zlib raw deflate needs 9...15 window bits")
        guard let stream = DeflaterPool.shared.take(windowBits: windowBits) else { return nil }
        defer { DeflaterPool.shared.give(stream, windowBits: windowBits) }
        return compress(input, with: stream)
    }

    /// Compresses with a fresh (just reset) deflater.
    private static func compress(_ input: [UInt8], with streamPointer: UnsafeMutablePointer<z_stream>) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: Int(deflateBound(streamPointer, UInt(input.count))) + 16)
        var produced = 0
        let ok: Bool = input.withUnsafeBytes { inBuf in
            streamPointer.pointee.next_in = UnsafeMutablePointer(mutating: inBuf.bindMemory(to: Bytef.self).baseAddress)
            streamPointer.pointee.avail_in = uInt(input.count)
            while true {
                if produced == out.count { out.append(contentsOf: repeatElement(0, count: max(64, out.count / 2))) }
                let rc: Int32 = out.withUnsafeMutableBytes { outBuf in
                    let base = outBuf.bindMemory(to: Bytef.self).baseAddress! + produced
                    streamPointer.pointee.next_out = base
                    streamPointer.pointee.avail_out = uInt(outBuf.count - produced)
                    let rc = deflate(streamPointer, Z_SYNC_FLUSH)
                    produced = outBuf.count - Int(streamPointer.pointee.avail_out)
                    return rc
                }
                guard rc == Z_OK || rc == Z_BUF_ERROR else { return false }
                // Done once all input is consumed and zlib left output space unused (flush complete).
                if streamPointer.pointee.avail_in == 0 && produced < out.count { return true }
            }
        }
        guard ok else { return nil }
        out.removeSubrange(produced...)
        if out.count >= 4 && Array(out.suffix(4)) == tail { out.removeLast(4) }
        if out.isEmpty { out = [0x00] }  // an empty message (§7.2.3.6)
        return out
    }
}

/// Reusable raw deflaters, per window size: `deflateInit2` allocates and sets up ~256 KiB of
/// state, which costs far more (tens of µs) than compressing a small event; `deflateReset` gives a
/// context indistinguishable from a new one (so output stays per-message, RFC 7692 §7.1.1.1)
/// for the price of a few stores. Thread-safe; at most `perWindow` idle deflaters are kept.
final class DeflaterPool: Sendable {
    static let shared = DeflaterPool()
    private static let perWindow = 8
    private struct Idle: @unchecked Sendable { var streams: [Int: [UnsafeMutablePointer<z_stream>]] = [:] }
    private let idle = Mutex(Idle())

    /// A deflater for `windowBits`, reset; nil when zlib cannot allocate one.
    func take(windowBits: Int) -> UnsafeMutablePointer<z_stream>? {
        if let s = idle.withLock({ $0.streams[windowBits]?.popLast() }) { return s }
        let s = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        s.initialize(to: z_stream())
        let memLevel: Int32 = windowBits >= 12 ? 8 : 5
        guard deflateInit2_(
            s, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -Int32(windowBits), memLevel, Z_DEFAULT_STRATEGY,
            zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK
        else {
            s.deallocate()
            return nil
        }
        return s
    }

    /// Returns a deflater after use (reset here), or frees it when enough are idle.
    func give(_ s: UnsafeMutablePointer<z_stream>, windowBits: Int) {
        deflateReset(s)
        let kept = idle.withLock { idle -> Bool in
            if idle.streams[windowBits, default: []].count >= Self.perWindow { return false }
            idle.streams[windowBits, default: []].append(s)
            return true
        }
        if !kept {
            deflateEnd(s)
            s.deallocate()
        }
    }
}

/// The decompression side of permessage-deflate (RFC 7692 §7.2.2) for one connection's
/// incoming messages, with a limit on the decompressed size (a "zip bomb" guard, §8.1).
///
/// Keeps its LZ77 window between messages unless the client agreed to
/// `client_no_context_takeover` (§7.1.1.2). The zlib state (up to ~44 KiB for a 15-bit window)
/// is allocated on the first compressed message, so connections that never send one hold none.
/// Not thread-safe: owned by the connection's loop.
public final class PerMessageInflater {
    /// Why a message could not be inflated.
    public enum Failure: Error, Equatable, Sendable {
        /// The decompressed message would exceed the limit (close with 1009).
        case tooBig
        /// The data is not valid DEFLATE (close with 1007).
        case corrupt
    }

    private let windowBits: Int
    private let resetEachMessage: Bool
    private var stream: UnsafeMutablePointer<z_stream>?

    /// An inflater for a client compressing with a window of 2^`windowBits` bytes (8–15).
    /// - Parameter noContextTakeover: the client resets its context after every message.
    public init(windowBits: Int, noContextTakeover: Bool) {
        // A zlib raw inflater with window 8 is refused by zlib 1.2.9+; 9 accepts 8-bit streams.
        self.windowBits = max(9, windowBits)
        self.resetEachMessage = noContextTakeover
    }

    deinit {
        if let stream {
            inflateEnd(stream)
            stream.deallocate()
        }
    }

    /// Inflates one whole message (the joined payload of its frames, RFC 7692 §7.2.2), refusing
    /// to produce more than `limit` bytes.
    public func inflate(_ input: [UInt8], limit: Int) -> Result<[UInt8], Failure> {
        if stream == nil {
            let s = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
            s.initialize(to: z_stream())
            guard inflateInit2_(s, -Int32(windowBits), zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                s.deallocate()
                return .failure(.corrupt)
            }
            stream = s
        }
        let s = stream!
        defer { if resetEachMessage { inflateReset(s) } }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        var failure: Failure?
        var data = input
        data.append(contentsOf: PerMessageDeflateCodec.tail)
        data.withUnsafeMutableBytes { inBuf in
            s.pointee.next_in = inBuf.bindMemory(to: Bytef.self).baseAddress
            s.pointee.avail_in = uInt(inBuf.count)
            while failure == nil {
                let (rc, n): (Int32, Int) = chunk.withUnsafeMutableBytes { c in
                    s.pointee.next_out = c.bindMemory(to: Bytef.self).baseAddress
                    s.pointee.avail_out = uInt(c.count)
                    let rc = CZlib.inflate(s, Z_SYNC_FLUSH)
                    return (rc, c.count - Int(s.pointee.avail_out))
                }
                if rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END {
                    failure = .corrupt
                    break
                }
                if out.count + n > limit {
                    failure = .tooBig
                    break
                }
                out.append(contentsOf: chunk[0..<n])
                // Finished when all input is consumed and the output buffer was not filled.
                if (s.pointee.avail_in == 0 && n < chunk.count) || rc == Z_STREAM_END || (rc == Z_BUF_ERROR && n == 0) {
                    break
                }
            }
        }
        if let failure {
            inflateReset(s)
            return .failure(failure)
        }
        return .success(out)
    }
}

extension WebSocketFrameEncoder {
    /// A final frame built once into shared memory, with RSV1 set when `compressed` (the
    /// "Per-Message Compressed" bit of RFC 7692 §6: set on the first frame of a compressed message).
    public static func sharedFrame(_ opcode: WebSocketOpcode, payload: [UInt8], compressed: Bool) -> SharedBytes {
        let header = headerLength(payloadCount: payload.count)
        return SharedBytes(count: header + payload.count) { out in
            writeHeader(opcode, payloadCount: payload.count, into: out)
            if compressed { out[0] |= 0x40 }
            if !payload.isEmpty {
                payload.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: out[header...]).copyMemory(from: $0) }
            }
        }
    }
}
