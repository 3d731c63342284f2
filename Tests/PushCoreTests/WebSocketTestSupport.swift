@testable import PushCore

/// Test helpers for the WebSocket suites: a client frame builder with its own (independent)
/// masking, and a driver that feeds a decoder in chosen pieces.
enum WS {
    static let mask: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]

    enum LengthForm { case minimal, bits16, bits64 }

    /// A client frame: byte 0 from fin/rsv/opcode, MASK set unless `masked` is false, payload
    /// XORed with `mask` byte by byte.
    static func frame(
        _ opcode: UInt8, _ payload: [UInt8], fin: Bool = true, rsv: UInt8 = 0, masked: Bool = true,
        length: LengthForm = .minimal, mask: [UInt8] = WS.mask
    ) -> [UInt8] {
        var out: [UInt8] = [(fin ? 0x80 : 0) | (rsv << 4) | opcode]
        let maskBit: UInt8 = masked ? 0x80 : 0
        let n = payload.count
        var form = length
        if form == .minimal { form = n <= 125 ? .minimal : (n <= 0xFFFF ? .bits16 : .bits64) }
        switch form {
        case .minimal: out.append(maskBit | UInt8(n))
        case .bits16: out += [maskBit | 126, UInt8(n >> 8), UInt8(n & 0xFF)]
        case .bits64:
            out.append(maskBit | 127)
            for k in (0..<8).reversed() { out.append(UInt8((UInt64(n) >> UInt64(8 * k)) & 0xFF)) }
        }
        if masked {
            out += mask
            for (i, b) in payload.enumerated() { out.append(b ^ mask[i % 4]) }
        } else {
            out += payload
        }
        return out
    }

    static func text(_ s: String, fin: Bool = true) -> [UInt8] { frame(0x1, Array(s.utf8), fin: fin) }

    static func close(_ code: UInt16?, _ reason: [UInt8] = []) -> [UInt8] {
        guard let code else { return frame(0x8, []) }
        return frame(0x8, [UInt8(code >> 8), UInt8(code & 0xFF)] + reason)
    }

    /// Feeds `pieces` in order, looping like a server would; returns every event other than
    /// `.needMoreData`, stopping after the first error.
    static func decode(
        pieces: [ArraySlice<UInt8>], maxMessageBytes: Int = 1 << 20, deflate: Bool = false
    ) -> [WebSocketFrameEvent] {
        var decoder = WebSocketFrameDecoder(maxMessageBytes: maxMessageBytes, permessageDeflate: deflate)
        return decode(pieces: pieces, with: &decoder)
    }

    static func decode(pieces: [ArraySlice<UInt8>], with decoder: inout WebSocketFrameDecoder) -> [WebSocketFrameEvent] {
        var events: [WebSocketFrameEvent] = []
        for piece in pieces {
            let bytes = Array(piece)
            var offset = 0
            while true {
                let (consumed, event) = bytes.withUnsafeBytes { raw in
                    decoder.parse(UnsafeRawBufferPointer(rebasing: raw[offset...]))
                }
                precondition(consumed >= 0 && offset + consumed <= bytes.count)
                offset += consumed
                if event == .needMoreData {
                    precondition(offset == bytes.count, "needMoreData must consume everything")
                    break
                }
                events.append(event)
                if case .error = event { return events }
            }
        }
        return events
    }

    static func decode(_ bytes: [UInt8], maxMessageBytes: Int = 1 << 20, deflate: Bool = false) -> [WebSocketFrameEvent] {
        decode(pieces: [bytes[...]], maxMessageBytes: maxMessageBytes, deflate: deflate)
    }

    /// The bytes split in two at `offset`.
    static func split(_ bytes: [UInt8], at offset: Int) -> [ArraySlice<UInt8>] {
        [bytes[..<offset], bytes[offset...]]
    }

    /// One byte per piece.
    static func bytewise(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        bytes.indices.map { bytes[$0...$0] }
    }

    /// The close code of an error event, or nil.
    static func errorCode(_ events: [WebSocketFrameEvent]) -> UInt16? {
        if case .error(let code, _)? = events.last { return code.rawValue }
        return nil
    }
}
