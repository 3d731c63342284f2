/// Builds the frames a server sends (RFC 6455 §5.2): never masked (§5.1), always with the
/// minimal length form — 7-bit up to 125 bytes, 16-bit up to 65535, 64-bit above.
///
/// Every function is pure. ``sharedFrame(_:payload:)`` builds a frame once into ``SharedBytes`` so
/// that one event's frame can be queued to every subscriber without copying.
public enum WebSocketFrameEncoder {
    /// The largest payload of a control frame (§5.5).
    public static let maxControlPayload = 125

    /// The header length of a server frame carrying `payloadCount` bytes: 2, 4 or 10 bytes.
    public static func headerLength(payloadCount: Int) -> Int {
        precondition(payloadCount >= 0, "negative payload length")
        if payloadCount <= 125 { return 2 }
        if payloadCount <= 0xFFFF { return 4 }
        return 10
    }

    /// Writes an unmasked frame header into the start of `out` and returns the bytes written
    /// (``headerLength(payloadCount:)``).
    /// - Precondition: `out.count >= headerLength(payloadCount:)`; a control opcode needs `fin`
    ///   and `payloadCount <= 125` (§5.5).
    @discardableResult
    public static func writeHeader(
        _ opcode: WebSocketOpcode, fin: Bool = true, payloadCount: Int, into out: UnsafeMutableRawBufferPointer
    ) -> Int {
        precondition(!opcode.isControl || (fin && payloadCount <= maxControlPayload),
                     "control frames must be final and carry at most 125 bytes")
        let length = headerLength(payloadCount: payloadCount)
        precondition(out.count >= length, "header buffer too small")
        out[0] = (fin ? 0x80 : 0) | opcode.rawValue
        switch length {
        case 2:
            out[1] = UInt8(payloadCount)
        case 4:
            out[1] = 126
            out[2] = UInt8(truncatingIfNeeded: payloadCount >> 8)
            out[3] = UInt8(truncatingIfNeeded: payloadCount)
        default:
            out[1] = 127
            let value = UInt64(payloadCount)
            for k in 0..<8 { out[2 + k] = UInt8(truncatingIfNeeded: value >> UInt64(56 - 8 * k)) }
        }
        return length
    }

    /// One complete frame (header + payload) as an array.
    /// - Precondition: as for ``writeHeader(_:fin:payloadCount:into:)``.
    public static func frame(_ opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer, fin: Bool = true) -> [UInt8] {
        let header = headerLength(payloadCount: payload.count)
        return [UInt8](unsafeUninitializedCapacity: header + payload.count) { out, initialized in
            let raw = UnsafeMutableRawBufferPointer(out)
            writeHeader(opcode, fin: fin, payloadCount: payload.count, into: raw)
            if payload.count > 0 {
                UnsafeMutableRawBufferPointer(rebasing: raw[header...]).copyMemory(from: payload)
            }
            initialized = header + payload.count
        }
    }

    /// One complete frame (header + payload) as an array.
    public static func frame(_ opcode: WebSocketOpcode, payload: [UInt8], fin: Bool = true) -> [UInt8] {
        payload.withUnsafeBytes { frame(opcode, payload: $0, fin: fin) }
    }

    /// One complete, final frame built once into stable shared memory, for queueing the same
    /// bytes to many connections (one allocation).
    /// - Precondition: a control opcode carries at most 125 bytes.
    public static func sharedFrame(_ opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer) -> SharedBytes {
        let header = headerLength(payloadCount: payload.count)
        return SharedBytes(count: header + payload.count) { out in
            writeHeader(opcode, payloadCount: payload.count, into: out)
            if payload.count > 0 {
                UnsafeMutableRawBufferPointer(rebasing: out[header...]).copyMemory(from: payload)
            }
        }
    }

    /// One complete, final frame built once into stable shared memory.
    public static func sharedFrame(_ opcode: WebSocketOpcode, payload: [UInt8]) -> SharedBytes {
        payload.withUnsafeBytes { sharedFrame(opcode, payload: $0) }
    }

    /// A final text frame holding the UTF-8 of `string`.
    public static func text(_ string: String) -> [UInt8] {
        frame(.text, payload: Array(string.utf8))
    }

    /// A final binary frame.
    public static func binary(_ payload: [UInt8]) -> [UInt8] {
        frame(.binary, payload: payload)
    }

    /// A Ping frame (§5.5.2). - Precondition: `payload.count <= 125`.
    public static func ping(_ payload: [UInt8] = []) -> [UInt8] {
        frame(.ping, payload: payload)
    }

    /// A Pong frame (§5.5.3); to answer a Ping, pass the Ping's payload unchanged.
    /// - Precondition: `payload.count <= 125`.
    public static func pong(_ payload: [UInt8] = []) -> [UInt8] {
        frame(.pong, payload: payload)
    }

    /// The payload of a Close frame (§5.5.1): empty when `code` is nil (the reason is then
    /// ignored, as a reason needs a code), else the code in network byte order followed by the
    /// reason's UTF-8, cut to at most 123 bytes on a Unicode scalar boundary so the payload stays
    /// ≤ 125 bytes and valid UTF-8.
    /// - Precondition: `code` is nil or ``WebSocketCloseCode/isValidInCloseFrame``.
    public static func closePayload(code: WebSocketCloseCode?, reason: String = "") -> [UInt8] {
        guard let code else { return [] }
        precondition(code.isValidInCloseFrame, "close code \(code) may not be sent (RFC 6455 §7.4.1)")
        var out: [UInt8] = [UInt8(truncatingIfNeeded: code.rawValue >> 8), UInt8(truncatingIfNeeded: code.rawValue)]
        let limit = maxControlPayload - 2
        for scalar in reason.unicodeScalars {
            let before = out.count
            UTF8.encode(scalar) { out.append($0) }
            if out.count - 2 > limit {
                out.removeSubrange(before...)
                break
            }
        }
        return out
    }

    /// A Close frame (§5.5.1) with ``closePayload(code:reason:)``.
    public static func close(code: WebSocketCloseCode?, reason: String = "") -> [UInt8] {
        frame(.close, payload: closePayload(code: code, reason: reason))
    }
}
