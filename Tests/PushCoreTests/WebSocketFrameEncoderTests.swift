import Testing
@testable import PushCore

@Suite("WebSocketFrameEncoder")
struct WebSocketFrameEncoderTests {
    /// Reads back a server (unmasked) frame: fin, opcode, payload, header length. Independent of
    /// the decoder, which refuses unmasked frames by design.
    static func parseServerFrame(_ f: [UInt8]) -> (fin: Bool, opcode: UInt8, payload: [UInt8], header: Int)? {
        guard f.count >= 2, f[1] & 0x80 == 0 else { return nil }
        var length = Int(f[1] & 0x7F)
        var header = 2
        if length == 126 {
            length = Int(f[2]) << 8 | Int(f[3])
            header = 4
        } else if length == 127 {
            length = f[2..<10].reduce(0) { $0 << 8 | Int($1) }
            header = 10
        }
        guard f.count == header + length else { return nil }
        return (f[0] & 0x80 != 0, f[0] & 0x0F, Array(f[header...]), header)
    }

    @Test("length forms at the boundaries", arguments: [
        (0, [UInt8(0x82), 0x00]), (125, [0x82, 0x7D]), (126, [0x82, 0x7E, 0x00, 0x7E]), (65535, [0x82, 0x7E, 0xFF, 0xFF]),
        (65536, [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]),
    ])
    func lengthForms(count: Int, header: [UInt8]) throws {
        let payload = (0..<count).map { UInt8(truncatingIfNeeded: $0) }
        let f = WebSocketFrameEncoder.frame(.binary, payload: payload)
        #expect(Array(f.prefix(header.count)) == header)
        #expect(f.count == header.count + count)
        #expect(WebSocketFrameEncoder.headerLength(payloadCount: count) == header.count)
        let parsed = try #require(Self.parseServerFrame(f))
        #expect(parsed.payload == payload)
        #expect(parsed.fin && parsed.opcode == 2)
        // The shared-memory builder produces the same bytes.
        #expect(WebSocketFrameEncoder.sharedFrame(.binary, payload: payload).array == f)
    }

    @Test("writeHeader into a caller buffer; non-final and continuation frames")
    func writeHeader() {
        var buffer = [UInt8](repeating: 0xEE, count: 12)
        let n = buffer.withUnsafeMutableBytes { WebSocketFrameEncoder.writeHeader(.text, fin: false, payloadCount: 300, into: $0) }
        #expect(n == 4)
        #expect(Array(buffer[..<5]) == [0x01, 0x7E, 0x01, 0x2C, 0xEE])
        #expect(WebSocketFrameEncoder.frame(.continuation, payload: [0x41]) == [0x80, 0x01, 0x41])
    }

    @Test("text, ping, pong frames")
    func simpleFrames() {
        #expect(WebSocketFrameEncoder.text("Hello") == [0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])  // RFC 6455 §5.7
        #expect(WebSocketFrameEncoder.ping(Array("Hello".utf8)) == [0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
        #expect(WebSocketFrameEncoder.pong(Array("Hello".utf8)) == [0x8A, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
        #expect(WebSocketFrameEncoder.binary([1, 2]) == [0x82, 0x02, 1, 2])
        #expect(WebSocketFrameEncoder.ping() == [0x89, 0x00])
    }

    @Test("close frames: no code, code, code + reason")
    func closeFrames() {
        #expect(WebSocketFrameEncoder.close(code: nil, reason: "ignored") == [0x88, 0x00])
        #expect(WebSocketFrameEncoder.close(code: .normalClosure) == [0x88, 0x02, 0x03, 0xE8])
        #expect(WebSocketFrameEncoder.close(code: .messageTooBig, reason: "big")
            == [0x88, 0x05, 0x03, 0xF1, 0x62, 0x69, 0x67])
        #expect(WebSocketFrameEncoder.closePayload(code: WebSocketCloseCode(4000), reason: "x") == [0x0F, 0xA0, 0x78])
    }

    @Test("close reason is cut to ≤ 123 bytes on a character boundary",
          arguments: [("a", 123), ("é", 122), ("€", 123), ("😀", 120), ("ab€", 122), ("€😀", 122), ("x😀", 121)])
    func closeTruncation(unit: String, expectedCount: Int) throws {
        let reason = String(repeating: unit, count: 200)
        let payload = WebSocketFrameEncoder.closePayload(code: .goingAway, reason: reason)
        #expect(payload.count <= 125)
        let reasonBytes = Array(payload[2...])
        #expect(reasonBytes.count == expectedCount)
        #expect(Array(reason.utf8.prefix(expectedCount)) == reasonBytes)
        #expect(WebSocketUTF8Validator.isValid(reasonBytes))
        // A 123-byte reason is kept whole, 124 is cut.
        #expect(WebSocketFrameEncoder.closePayload(code: .goingAway, reason: String(repeating: "z", count: 123)).count == 125)
        #expect(WebSocketFrameEncoder.closePayload(code: .goingAway, reason: String(repeating: "z", count: 124)).count == 125)
        // The whole frame decodes (through a masked copy) back to the cut reason.
        let f = WebSocketFrameEncoder.close(code: .goingAway, reason: reason)
        let parsed = try #require(WebSocketFrameEncoderTests.parseServerFrame(f))
        #expect(WS.decode(WS.frame(0x8, parsed.payload)) == [.close(code: 1001, reason: String(decoding: reasonBytes, as: UTF8.self))])
    }

    @Test("close code validity table")
    func closeCodeValidity() {
        let valid = (0...5100).filter { WebSocketCloseCode(UInt16($0)).isValidInCloseFrame }
        #expect(valid == Array(1000...1003) + Array(1007...1014) + Array(3000...4999))
        #expect(WebSocketCloseCode.protocolError.rawValue == 1002)
        #expect(WebSocketCloseCode.invalidPayloadData.rawValue == 1007)
        #expect(WebSocketCloseCode.messageTooBig.rawValue == 1009)
        #expect(WebSocketCloseCode.tryAgainLater.rawValue == 1013)
        #expect(!WebSocketCloseCode.noStatusReceived.isValidInCloseFrame)
        #expect(!WebSocketCloseCode.abnormalClosure.isValidInCloseFrame)
        #expect(!WebSocketCloseCode.tlsHandshakeFailure.isValidInCloseFrame)
    }

    @Test("opcode classes")
    func opcodes() {
        let control = [WebSocketOpcode.continuation, .text, .binary, .close, .ping, .pong].map { $0.isControl }
        #expect(control == [false, false, false, true, true, true])
    }
}
