/// What one call of ``WebSocketFrameDecoder/parse(_:)`` found.
public enum WebSocketFrameEvent: Equatable, Sendable {
    /// Every byte given was consumed (buffered, or part of a frame still incomplete) without
    /// completing anything; call again when more bytes arrive.
    case needMoreData
    /// A complete text message: every fragment joined and unmasked, valid UTF-8 (RFC 6455 §5.6, §8.1).
    case text([UInt8])
    /// A complete binary message: every fragment joined and unmasked (RFC 6455 §5.6).
    case binary([UInt8])
    /// A complete message whose first frame had RSV1 set while permessage-deflate was negotiated
    /// (RFC 7692 §6): the joined, unmasked, *still compressed* payload. `isText` tells the message
    /// type. Its UTF-8 was not checked: inflate it, then check it with
    /// ``WebSocketUTF8Validator``. Never reported unless the decoder was built with
    /// `permessageDeflate: true`.
    case deflated(isText: Bool, [UInt8])
    /// A Ping with its application data, 0–125 bytes (§5.5.2). Answer with a Pong carrying the
    /// same bytes (§5.5.3).
    case ping([UInt8])
    /// A Pong with its application data, 0–125 bytes (§5.5.3).
    case pong([UInt8])
    /// A Close frame (§5.5.1). `code` is nil when the payload was empty; `reason` is the
    /// (validated UTF-8) reason text, possibly empty. The code, when present, is valid per
    /// ``WebSocketCloseCode/isValidInCloseFrame``. Echo a Close and close the connection; the
    /// decoder discards every later byte.
    case close(code: UInt16?, reason: String)
    /// The peer broke the protocol or a limit. Send a Close with this code (1002, 1007 or 1009)
    /// and close the connection (§7.1.7). The decoder is dead from now on and reports the same
    /// error, with `consumed == 0`, on every call.
    case error(WebSocketCloseCode, reason: String)
}

/// An incremental decoder of the frames a client sends to a server (RFC 6455 §5): a pure state
/// machine that consumes bytes and reports events, with no I/O.
///
/// Bytes may arrive in any split, down to one byte per call; the result does not depend on the
/// split. Only the frame header (at most 14 bytes) is kept between calls as decoded fields, and
/// payload bytes are unmasked straight into the message being assembled, which is the one
/// allocation per message (control frames use their own small buffer, so a Ping may arrive
/// between the fragments of a message, §5.4). One call reports at most one event; the caller
/// loops exactly as with ``HTTPRequestParser``:
///
/// ```swift
/// var offset = 0
/// while true {
///     let (consumed, event) = decoder.parse(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
///     offset += consumed
///     if event == .needMoreData { break }   // offset == bytes.count: read more from the socket
///     if case .error(let code, _) = event { sendClose(code); break }
///     handle(event)
/// }
/// ```
///
/// Validation (each failure ends the connection with the code shown):
/// - MASK bit clear: a server must refuse unmasked client frames (§5.1) → 1002.
/// - RSV1–3 set (§5.2) → 1002; except RSV1 on the first frame of a data message when
///   permessage-deflate was negotiated (RFC 7692 §6), reported as ``WebSocketFrameEvent/deflated(isText:_:)``.
/// - Reserved opcodes 0x3–0x7, 0xB–0xF (§5.2) → 1002.
/// - Control frame without FIN or with more than 125 payload bytes (§5.5) → 1002.
/// - Continuation with no message in progress, or Text/Binary while one is (§5.4) → 1002.
/// - 64-bit length with its most significant bit set (§5.2) → 1002.
/// - A data frame whose declared length, added to the message bytes already received, exceeds
///   ``maxMessageBytes`` → 1009, reported as soon as the length field is read, before any
///   payload byte is buffered or any memory is reserved (§10.4).
/// - Text messages are checked as UTF-8 incrementally, across fragments and reads, and fail at
///   the first byte that makes them invalid; a message ending inside a character fails at its
///   last frame (§8.1) → 1007.
/// - Close payload (§5.5.1, §7.4): empty is fine; 1 byte → 1002; a code that is not
///   ``WebSocketCloseCode/isValidInCloseFrame`` → 1002; a reason that is not UTF-8 → 1007.
///
/// Non-minimal length encodings (e.g. a 5-byte payload announced with the 16-bit form) are
/// **accepted**. §5.2's "the minimal number of bytes MUST be used" binds the sender; the value is
/// unambiguous and is checked against the limits like any other, so refusing it would only break
/// interoperability with sloppy clients without protecting anything.
///
/// Not thread-safe: one decoder per connection, used by the connection's loop.
public struct WebSocketFrameDecoder: Sendable {
    enum State: Sendable, Equatable {
        /// Reading header byte `index` (0, 1: fixed part; then extended length; then mask key).
        case header
        /// Reading `payloadRemaining` more payload bytes of the current frame.
        case payload
        /// A Close frame was reported; everything after it is discarded.
        case closed
        case dead(WebSocketCloseCode, String)
    }

    /// The largest message accepted, in payload bytes after joining fragments (before inflation
    /// when compressed). Larger messages fail with 1009 before their payload is buffered.
    public let maxMessageBytes: Int
    /// Whether permessage-deflate was negotiated (RFC 7692), which makes RSV1 legal on the first
    /// frame of a data message.
    public let permessageDeflate: Bool

    var state: State = .header

    // The frame header being read.
    /// Header bytes read so far for the current frame (0…14).
    var headerIndex = 0
    /// Header bytes the current frame's header has in total: 2 + extended length + 4 (mask).
    var headerLength = 2
    var fin = false
    var rsv1 = false
    var opcode: WebSocketOpcode = .continuation
    var payloadLength: UInt64 = 0
    /// Mask key, byte 0 in the low 8 bits.
    var mask: UInt32 = 0

    // The frame payload being read.
    var payloadRemaining = 0
    /// Payload bytes of the current frame already unmasked (selects the mask byte).
    var payloadOffset = 0

    // The data message being assembled.
    /// Opcode of the message in progress (.text or .binary), nil between messages.
    var messageOpcode: WebSocketOpcode?
    var messageCompressed = false
    var message: [UInt8] = []
    var utf8 = WebSocketUTF8Validator()

    /// Payload of the control frame being read (≤ 125 bytes).
    var control: [UInt8] = []

    /// A decoder waiting for the first byte of a frame.
    /// - Parameters:
    ///   - maxMessageBytes: the largest message accepted, in bytes (≥ 0); see ``maxMessageBytes``.
    ///   - permessageDeflate: whether the handshake negotiated permessage-deflate.
    public init(maxMessageBytes: Int, permessageDeflate: Bool = false) {
        precondition(maxMessageBytes >= 0, "maxMessageBytes must not be negative")
        self.maxMessageBytes = maxMessageBytes
        self.permessageDeflate = permessageDeflate
    }

    /// True after a Close frame was reported: later bytes are consumed and ignored.
    public var isClosed: Bool { state == .closed }

    /// True while a fragmented data message has started but not finished.
    public var isMessageInProgress: Bool { messageOpcode != nil }

    /// True between frames with no message in progress: the decoder holds nothing a fresh one
    /// (same limits) would not, so a server may drop it and make a new one when bytes arrive.
    public var isAtRest: Bool { state == .header && headerIndex == 0 && messageOpcode == nil }

    /// Consumes bytes from the front of `buffer` and reports how many it consumed and what it found.
    ///
    /// Call repeatedly with the unconsumed rest of the buffer until it returns
    /// ``WebSocketFrameEvent/needMoreData`` (then `consumed == buffer.count`) or
    /// ``WebSocketFrameEvent/error(_:reason:)``. After any other event `consumed` ends right after
    /// the frame that completed it. The decoder keeps no pointer into `buffer`.
    /// - Returns: `consumed` bytes (0…`buffer.count`) and the event.
    public mutating func parse(_ buffer: UnsafeRawBufferPointer) -> (consumed: Int, event: WebSocketFrameEvent) {
        let n = buffer.count
        var i = 0
        while true {
            switch state {
            case .dead(let code, let reason):
                return (0, .error(code, reason: reason))
            case .closed:
                return (n, .needMoreData)
            case .header:
                if i == n { return (n, .needMoreData) }
                let b = buffer[i]
                i += 1
                if let event = headerByte(b) { return (i, event) }
            case .payload:
                if payloadRemaining > 0 {
                    if i == n { return (n, .needMoreData) }
                    let take = min(payloadRemaining, n - i)
                    let chunk = UnsafeRawBufferPointer(rebasing: buffer[i..<(i + take)])
                    i += take
                    if let event = payloadBytes(chunk) { return (i, event) }
                }
                if payloadRemaining == 0, let event = frameEnd() { return (i, event) }
            }
        }
    }

    // MARK: - Header

    /// Takes one header byte; returns an event when the frame is refused or (empty payload) complete.
    private mutating func headerByte(_ b: UInt8) -> WebSocketFrameEvent? {
        let index = headerIndex
        headerIndex += 1
        switch index {
        case 0:
            return firstByte(b)
        case 1:
            guard b & 0x80 != 0 else { return fail(.protocolError, "client frame is not masked") }
            let length7 = b & 0x7F
            switch length7 {
            case 126: headerLength = 2 + 2 + 4
            case 127: headerLength = 2 + 8 + 4
            default:
                headerLength = 2 + 4
                payloadLength = UInt64(length7)
                if let error = checkLength() { return error }
            }
            return nil
        default:
            let maskStart = headerLength - 4
            if index < maskStart {
                // Extended payload length, network byte order (§5.2).
                if headerLength == 14, index == 2, b & 0x80 != 0 {
                    return fail(.protocolError, "64-bit payload length has its most significant bit set")
                }
                payloadLength = payloadLength << 8 | UInt64(b)
                if index == maskStart - 1, let error = checkLength() { return error }
                return nil
            }
            mask |= UInt32(b) << (8 * UInt32(index - maskStart))
            if headerIndex == headerLength {
                // maxMessageBytes is an Int, so a length that passed checkLength fits in Int.
                payloadRemaining = Int(payloadLength)
                payloadOffset = 0
                state = .payload
                // One exact allocation for an unfragmented message. Later fragments grow the
                // array geometrically: reserving exactly per fragment would be quadratic.
                if opcode == .text || opcode == .binary, payloadRemaining > 0 {
                    message.reserveCapacity(payloadRemaining)
                }
            }
            return nil
        }
    }

    private mutating func firstByte(_ b: UInt8) -> WebSocketFrameEvent? {
        fin = b & 0x80 != 0
        rsv1 = b & 0x40 != 0
        guard let op = WebSocketOpcode(rawValue: b & 0x0F) else {
            return fail(.protocolError, "reserved opcode 0x\(String(b & 0x0F, radix: 16))")
        }
        opcode = op
        if b & 0x30 != 0 { return fail(.protocolError, "RSV2 or RSV3 set without an extension defining it") }
        if rsv1, !(permessageDeflate && (op == .text || op == .binary)) {
            return fail(.protocolError, "RSV1 set without an extension defining it")
        }
        if op.isControl {
            if !fin { return fail(.protocolError, "fragmented control frame") }
        } else if op == .continuation {
            if messageOpcode == nil { return fail(.protocolError, "continuation frame without a message in progress") }
        } else {
            if messageOpcode != nil {
                return fail(.protocolError, "new data frame while a fragmented message is in progress")
            }
            // The first frame of a message starts it, so its payload is UTF-8 checked as it arrives.
            messageOpcode = op
            messageCompressed = rsv1
            utf8.reset()
        }
        payloadLength = 0
        mask = 0
        return nil
    }

    /// Checks the now-known payload length against the limits, before anything is reserved.
    private mutating func checkLength() -> WebSocketFrameEvent? {
        if opcode.isControl {
            // Checked on the value, so a control frame with a (non-minimal) extended length ≤ 125 passes.
            if payloadLength > 125 { return fail(.protocolError, "control frame payload longer than 125 bytes") }
            return nil
        }
        let room = UInt64(maxMessageBytes - message.count)
        if payloadLength > room {
            return fail(.messageTooBig, "message exceeds \(maxMessageBytes) bytes")
        }
        return nil
    }

    // MARK: - Payload

    /// Unmasks `chunk` (part of the current frame's payload) into the message or control buffer.
    private mutating func payloadBytes(_ chunk: UnsafeRawBufferPointer) -> WebSocketFrameEvent? {
        let rotation = payloadOffset
        payloadOffset += chunk.count
        payloadRemaining -= chunk.count
        if opcode.isControl {
            let start = control.count
            control.append(contentsOf: chunk)
            control.withUnsafeMutableBytes { all in
                WebSocketMasking.unmask(UnsafeMutableRawBufferPointer(rebasing: all[start...]), mask: mask, offset: rotation)
            }
            return nil
        }
        let start = message.count
        message.append(contentsOf: chunk)
        let checkUTF8 = messageOpcode == .text && !messageCompressed
        let valid = message.withUnsafeMutableBytes { all in
            let region = UnsafeMutableRawBufferPointer(rebasing: all[start...])
            WebSocketMasking.unmask(region, mask: mask, offset: rotation)
            return !checkUTF8 || utf8.validate(UnsafeRawBufferPointer(region))
        }
        if !valid { return fail(.invalidPayloadData, "text message is not valid UTF-8") }
        return nil
    }

    /// The current frame's payload is complete (also for an empty payload).
    private mutating func frameEnd() -> WebSocketFrameEvent? {
        state = .header
        headerIndex = 0
        headerLength = 2
        if opcode.isControl {
            var payload: [UInt8] = []
            swap(&payload, &control)
            switch opcode {
            case .ping: return .ping(payload)
            case .pong: return .pong(payload)
            default: return closeFrame(payload)
            }
        }
        guard fin else { return nil }
        let kind = messageOpcode
        let compressed = messageCompressed
        messageOpcode = nil
        var payload: [UInt8] = []
        swap(&payload, &message)
        if compressed { return .deflated(isText: kind == .text, payload) }
        if kind == .text {
            guard utf8.isAtCharacterBoundary else {
                return fail(.invalidPayloadData, "text message ends inside a UTF-8 sequence")
            }
            return .text(payload)
        }
        return .binary(payload)
    }

    private mutating func closeFrame(_ payload: [UInt8]) -> WebSocketFrameEvent {
        if payload.isEmpty {
            state = .closed
            return .close(code: nil, reason: "")
        }
        guard payload.count >= 2 else { return fail(.protocolError, "close payload of 1 byte") }
        let code = UInt16(payload[0]) << 8 | UInt16(payload[1])
        guard WebSocketCloseCode(code).isValidInCloseFrame else {
            return fail(.protocolError, "invalid close code \(code)")
        }
        let reasonBytes = payload[2...]
        let valid = reasonBytes.withUnsafeBytes { WebSocketUTF8Validator.isValid($0) }
        guard valid else { return fail(.invalidPayloadData, "close reason is not valid UTF-8") }
        state = .closed
        return .close(code: code, reason: String(decoding: reasonBytes, as: UTF8.self))
    }

    private mutating func fail(_ code: WebSocketCloseCode, _ reason: String) -> WebSocketFrameEvent {
        state = .dead(code, reason)
        message = []
        control = []
        messageOpcode = nil
        return .error(code, reason: reason)
    }
}

/// The XOR masking of RFC 6455 §5.3, shared by the decoder (unmasking client frames) and tests.
enum WebSocketMasking {
    /// XORs `bytes` in place with the 4-byte `mask` (byte 0 in the low 8 bits), starting at mask
    /// byte `offset % 4` — the position of `bytes[0]` within the frame payload.
    static func unmask(_ bytes: UnsafeMutableRawBufferPointer, mask: UInt32, offset: Int) {
        let n = bytes.count
        if n == 0 || mask == 0 { return }
        let shift = UInt32((offset & 3) * 8)
        // Rotate so that the low byte is the mask byte for bytes[0].
        let m = shift == 0 ? mask : (mask >> shift) | (mask << (32 - shift))
        let m64 = UInt64(littleEndian: UInt64(m) | UInt64(m) << 32)
        var i = 0
        while i + 8 <= n {
            let word = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            bytes.storeBytes(of: word ^ m64, toByteOffset: i, as: UInt64.self)
            i += 8
        }
        while i < n {
            bytes[i] ^= UInt8(truncatingIfNeeded: m >> UInt32((i & 3) * 8))
            i += 1
        }
    }
}
