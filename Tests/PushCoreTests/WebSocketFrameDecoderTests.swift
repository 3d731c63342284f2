import Testing
@testable import PushCore

@Suite("WebSocketFrameDecoder")
struct WebSocketFrameDecoderTests {
    // MARK: Basics

    @Test("RFC 6455 §5.7 masked \"Hello\" example")
    func rfcHelloExample() {
        let bytes: [UInt8] = [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]
        var decoder = WebSocketFrameDecoder(maxMessageBytes: 100)
        let (consumed, event) = bytes.withUnsafeBytes { decoder.parse($0) }
        #expect(consumed == 11)
        #expect(event == .text(Array("Hello".utf8)))
        let (c2, e2) = [UInt8]().withUnsafeBytes { decoder.parse($0) }
        #expect(c2 == 0 && e2 == .needMoreData)
    }

    @Test("our test framer reproduces the RFC example")
    func framerMatchesRFC() {
        #expect(WS.text("Hello") == [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
    }

    @Test("consumed stops right after the frame that completes an event")
    func consumedStopsAtEvent() {
        let bytes = WS.text("one") + WS.text("two")
        var decoder = WebSocketFrameDecoder(maxMessageBytes: 100)
        let (c1, e1) = bytes.withUnsafeBytes { decoder.parse($0) }
        #expect(c1 == WS.text("one").count)
        #expect(e1 == .text(Array("one".utf8)))
        let (c2, e2) = bytes.withUnsafeBytes { decoder.parse(UnsafeRawBufferPointer(rebasing: $0[c1...])) }
        #expect(c2 == WS.text("two").count)
        #expect(e2 == .text(Array("two".utf8)))
    }

    /// A stream exercising every event kind: fragmented text with a ping between fragments, a
    /// 16-bit binary, an empty text, a pong, a 64-bit-length binary split into 2 frames, close.
    static let stream: [UInt8] = {
        var s: [UInt8] = []
        s += WS.frame(0x1, Array("Hel".utf8), fin: false)
        s += WS.frame(0x9, Array("pi".utf8))
        s += WS.frame(0x0, Array("lo, wö".utf8), fin: false)
        s += WS.frame(0x0, Array("rld 😀".utf8))
        s += WS.frame(0x2, (0..<200).map { UInt8($0 & 0xFF) })
        s += WS.frame(0x1, [])
        s += WS.frame(0xA, [1, 2, 3])
        s += WS.frame(0x2, [9, 8, 7], fin: false, length: .bits64)
        s += WS.frame(0x0, [6], length: .bits16)
        s += WS.close(1000, Array("bye".utf8))
        return s
    }()

    static let streamEvents: [WebSocketFrameEvent] = [
        .ping(Array("pi".utf8)),
        .text(Array("Hello, wörld 😀".utf8)),
        .binary((0..<200).map { UInt8($0 & 0xFF) }),
        .text([]),
        .pong([1, 2, 3]),
        .binary([9, 8, 7, 6]),
        .close(code: 1000, reason: "bye"),
    ]

    @Test("whole stream decodes to the expected events in order (ping between fragments first)")
    func wholeStream() {
        #expect(WS.decode(Self.stream) == Self.streamEvents)
    }

    @Test("stream split at every byte offset decodes identically")
    func everySplit() {
        for offset in 0...Self.stream.count {
            let events = WS.decode(pieces: WS.split(Self.stream, at: offset))
            #expect(events == Self.streamEvents, "split at \(offset)")
        }
    }

    @Test("stream fed one byte at a time decodes identically")
    func bytewise() {
        #expect(WS.decode(pieces: WS.bytewise(Self.stream)) == Self.streamEvents)
    }

    @Test("large message with 64-bit length, random-ish read sizes")
    func largeMessage() {
        let payload = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let bytes = WS.frame(0x2, payload)
        #expect(Array(bytes[1...9]) == [0xFF, 0, 0, 0, 0, 0, 1, 0x11, 0x70])
        var pieces: [ArraySlice<UInt8>] = []
        var i = 0
        var step = 1
        while i < bytes.count {
            let end = min(bytes.count, i + step)
            pieces.append(bytes[i..<end])
            i = end
            step = step * 3 % 4099 + 1
        }
        #expect(WS.decode(pieces: pieces, maxMessageBytes: 70_000) == [.binary(payload)])
    }

    @Test("every mask phase: payload lengths 0…20 unmask correctly with all splits")
    func maskPhases() {
        for n in 0...20 {
            let payload = (0..<n).map { UInt8($0 + 0x41) }
            let bytes = WS.frame(0x2, payload, mask: [0xA1, 0x02, 0xF3, 0x84])
            for offset in 0...bytes.count {
                #expect(WS.decode(pieces: WS.split(bytes, at: offset)) == [.binary(payload)], "n=\(n) split=\(offset)")
            }
        }
    }

    @Test("non-minimal length encodings are accepted")
    func nonMinimalLengths() {
        let a = WS.frame(0x1, Array("hi".utf8), length: .bits16)
        let b = WS.frame(0x1, Array("hi".utf8), length: .bits64)
        let c = WS.frame(0x9, Array("p".utf8), length: .bits16)
        #expect(WS.decode(a + b + c) == [.text(Array("hi".utf8)), .text(Array("hi".utf8)), .ping(Array("p".utf8))])
    }

    // MARK: Protocol errors (1002)

    @Test("unmasked client frame → 1002")
    func unmasked() {
        #expect(WS.errorCode(WS.decode(WS.frame(0x1, Array("x".utf8), masked: false))) == 1002)
    }

    @Test("RSV bits without deflate → 1002", arguments: [UInt8(1), 2, 4, 3, 7])
    func rsvBits(rsv: UInt8) {
        #expect(WS.errorCode(WS.decode(WS.frame(0x1, Array("x".utf8), rsv: rsv))) == 1002)
    }

    @Test("RSV1 with deflate: allowed on first data frame, reported as deflated")
    func rsv1WithDeflate() {
        let bytes = WS.frame(0x1, [1, 2], fin: false, rsv: 4) + WS.frame(0x0, [3]) + WS.frame(0x2, [0xFF], rsv: 4)
            + WS.text("plain")
        #expect(WS.decode(bytes, deflate: true) == [
            .deflated(isText: true, [1, 2, 3]), .deflated(isText: false, [0xFF]), .text(Array("plain".utf8)),
        ])
    }

    @Test("RSV1 with deflate: refused on continuation and control frames; RSV2/3 still refused")
    func rsv1WithDeflateErrors() {
        let continuation = WS.frame(0x1, [1], fin: false, rsv: 4) + WS.frame(0x0, [2], rsv: 4)
        #expect(WS.errorCode(WS.decode(continuation, deflate: true)) == 1002)
        #expect(WS.errorCode(WS.decode(WS.frame(0x9, [], rsv: 4), deflate: true)) == 1002)
        #expect(WS.errorCode(WS.decode(WS.frame(0x1, [], rsv: 2), deflate: true)) == 1002)
        #expect(WS.errorCode(WS.decode(WS.frame(0x1, [], rsv: 1), deflate: true)) == 1002)
    }

    @Test("reserved opcodes → 1002 at the first byte", arguments: [UInt8(3), 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
    func reservedOpcodes(opcode: UInt8) {
        var decoder = WebSocketFrameDecoder(maxMessageBytes: 100)
        let (consumed, event) = [0x80 | opcode].withUnsafeBytes { decoder.parse($0) }
        #expect(consumed == 1)
        guard case .error(let code, _) = event else {
            Issue.record("expected an error, got \(event)")
            return
        }
        #expect(code == .protocolError)
    }

    @Test("fragmented control frames → 1002", arguments: [UInt8(0x8), 0x9, 0xA])
    func fragmentedControl(opcode: UInt8) {
        #expect(WS.errorCode(WS.decode(WS.frame(opcode, [], fin: false))) == 1002)
    }

    @Test("control payload over 125 → 1002 (7-bit 126/127 forms and extended forms)", arguments: [UInt8(0x8), 0x9, 0xA])
    func controlTooLong(opcode: UInt8) {
        #expect(WS.errorCode(WS.decode(WS.frame(opcode, [UInt8](repeating: 0x41, count: 126)))) == 1002)
        #expect(WS.errorCode(WS.decode(WS.frame(opcode, [UInt8](repeating: 0x41, count: 126), length: .bits64))) == 1002)
        // Exactly 125 is fine (a close needs a valid code in front).
        let ok = opcode == 0x8 ? WS.close(1000, [UInt8](repeating: 0x41, count: 123))
            : WS.frame(opcode, [UInt8](repeating: 0x41, count: 125))
        #expect(WS.errorCode(WS.decode(ok)) == nil)
    }

    @Test("continuation without a message in progress → 1002")
    func orphanContinuation() {
        #expect(WS.errorCode(WS.decode(WS.frame(0x0, Array("x".utf8)))) == 1002)
        // Also after a completed message.
        #expect(WS.errorCode(WS.decode(WS.text("a") + WS.frame(0x0, Array("x".utf8)))) == 1002)
    }

    @Test("new data frame while a message is in progress → 1002", arguments: [UInt8(0x1), 0x2])
    func interleavedData(opcode: UInt8) {
        let bytes = WS.frame(0x1, Array("a".utf8), fin: false) + WS.frame(opcode, Array("b".utf8))
        #expect(WS.errorCode(WS.decode(bytes)) == 1002)
    }

    @Test("64-bit length with the most significant bit set → 1002 at that byte")
    func lengthMSB() {
        let header: [UInt8] = [0x82, 0xFF, 0x80]
        var decoder = WebSocketFrameDecoder(maxMessageBytes: 100)
        let (consumed, event) = header.withUnsafeBytes { decoder.parse($0) }
        #expect(consumed == 3)
        #expect(WS.errorCode([event]) == 1002)
    }

    @Test("errors are sticky: later calls repeat the error and consume nothing")
    func stickyError() {
        var decoder = WebSocketFrameDecoder(maxMessageBytes: 100)
        let bad = WS.frame(0x1, [0x41], masked: false)
        let (_, first) = bad.withUnsafeBytes { decoder.parse($0) }
        let good = WS.text("ok")
        let (consumed, again) = good.withUnsafeBytes { decoder.parse($0) }
        #expect(consumed == 0)
        #expect(again == first)
        #expect(WS.errorCode([again]) == 1002)
    }

    // MARK: Limits (1009)

    @Test("a frame declaring 2^62 bytes → 1009 as soon as its length is read, with no payload sent")
    func hugeDeclaredLength() {
        // 0x82, MASK|127, then 0x40 00 00 00 00 00 00 00 = 2^62; no mask key, no payload.
        let header: [UInt8] = [0x82, 0xFF, 0x40, 0, 0, 0, 0, 0, 0, 0]
        var decoder = WebSocketFrameDecoder(maxMessageBytes: 1 << 20)
        let (consumed, event) = header.withUnsafeBytes { decoder.parse($0) }
        #expect(consumed == 10)
        #expect(WS.errorCode([event]) == 1009)
        // Byte by byte: the error comes exactly at the 10th byte.
        var d2 = WebSocketFrameDecoder(maxMessageBytes: 1 << 20)
        for (i, b) in header.enumerated() {
            let (_, e) = [b].withUnsafeBytes { d2.parse($0) }
            if i < 9 { #expect(e == .needMoreData) } else { #expect(WS.errorCode([e]) == 1009) }
        }
    }

    @Test("single frame at the limit passes, one byte over → 1009")
    func singleFrameLimit() {
        #expect(WS.decode(WS.frame(0x2, [UInt8](repeating: 1, count: 100)), maxMessageBytes: 100)
            == [.binary([UInt8](repeating: 1, count: 100))])
        #expect(WS.errorCode(WS.decode(WS.frame(0x2, [UInt8](repeating: 1, count: 101)), maxMessageBytes: 100)) == 1009)
        #expect(WS.errorCode(WS.decode(WS.frame(0x1, [0x41]), maxMessageBytes: 0)) == 1009)
        #expect(WS.decode(WS.frame(0x1, []), maxMessageBytes: 0) == [.text([])])
    }

    @Test("running total of fragments over the limit → 1009 at the header of the fragment that overflows")
    func runningTotalLimit() {
        let first = WS.frame(0x2, [UInt8](repeating: 1, count: 60), fin: false)
        let second = WS.frame(0x0, [UInt8](repeating: 2, count: 41))
        var decoder = WebSocketFrameDecoder(maxMessageBytes: 100)
        let (c1, e1) = first.withUnsafeBytes { decoder.parse($0) }
        #expect(c1 == first.count && e1 == .needMoreData)
        let (c2, e2) = Array(second[0..<2]).withUnsafeBytes { decoder.parse($0) }
        #expect(c2 == 2)
        #expect(WS.errorCode([e2]) == 1009)
        // 60 + 40 = 100 is fine; control frames do not count.
        let ok = first + WS.frame(0x9, [UInt8](repeating: 3, count: 100)) + WS.frame(0x0, [UInt8](repeating: 2, count: 40))
        #expect(WS.decode(ok, maxMessageBytes: 100) == [
            .ping([UInt8](repeating: 3, count: 100)),
            .binary([UInt8](repeating: 1, count: 60) + [UInt8](repeating: 2, count: 40)),
        ])
    }

    // MARK: UTF-8 (1007)

    @Test("invalid UTF-8 split across two frames → 1007")
    func invalidAcrossFrames() {
        // E2 82 starts a 3-byte sequence; 'A' cannot continue it.
        let bytes = WS.frame(0x1, [0x61, 0xE2, 0x82], fin: false) + WS.frame(0x0, [0x41])
        #expect(WS.errorCode(WS.decode(bytes)) == 1007)
        for offset in 0...bytes.count {
            #expect(WS.errorCode(WS.decode(pieces: WS.split(bytes, at: offset))) == 1007)
        }
    }

    @Test("valid 4-byte sequence split across frames at every position passes")
    func fourByteAcrossFrames() {
        let emoji: [UInt8] = [0xF0, 0x9F, 0x98, 0x80]  // U+1F600
        for cut in 0...4 {
            let bytes = WS.frame(0x1, Array(emoji[..<cut]), fin: false) + WS.frame(0x9, [])
                + WS.frame(0x0, Array(emoji[cut...]))
            #expect(WS.decode(bytes) == [.ping([]), .text(emoji)], "cut \(cut)")
            #expect(WS.decode(pieces: WS.bytewise(bytes)) == [.ping([]), .text(emoji)], "cut \(cut) bytewise")
        }
    }

    @Test("invalid UTF-8 fails fast: before the rest of the frame arrives")
    func failFast() {
        var payload: [UInt8] = [0x41, 0xFF]
        payload += [UInt8](repeating: 0x41, count: 98)
        let bytes = WS.frame(0x1, payload)
        let headerLength = 2 + 4
        var decoder = WebSocketFrameDecoder(maxMessageBytes: 1000)
        let (consumed, event) = Array(bytes[..<(headerLength + 2)]).withUnsafeBytes { decoder.parse($0) }
        #expect(consumed == headerLength + 2)
        #expect(WS.errorCode([event]) == 1007)
        // Fail fast on a certain second byte: E0 80 is overlong whatever follows.
        var d2 = WebSocketFrameDecoder(maxMessageBytes: 1000)
        let overlong = WS.frame(0x1, [0xE0, 0x80, 0x80, 0x41], fin: false)
        let (_, e2) = Array(overlong[..<(headerLength + 2)]).withUnsafeBytes { d2.parse($0) }
        #expect(WS.errorCode([e2]) == 1007)
    }

    @Test("message ending inside a UTF-8 sequence → 1007")
    func endsMidSequence() {
        #expect(WS.errorCode(WS.decode(WS.frame(0x1, [0x41, 0xE2, 0x82]))) == 1007)
        #expect(WS.errorCode(WS.decode(WS.frame(0x1, [0xF0, 0x9F], fin: false) + WS.frame(0x0, [0x98]))) == 1007)
    }

    @Test("invalid UTF-8 forms → 1007", arguments: [
        [UInt8(0xC0), 0xAF], [0xC1, 0xBF], [0xE0, 0x9F, 0xBF], [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF],
        [0xF0, 0x8F, 0xBF, 0xBF], [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xFF], [0x80], [0xBF],
        [0xC2, 0x41], [0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0, 0x80],
    ])
    func invalidForms(bytes: [UInt8]) {
        #expect(WS.errorCode(WS.decode(WS.frame(0x1, bytes))) == 1007)
    }

    @Test("binary messages are not UTF-8 checked")
    func binaryNotChecked() {
        #expect(WS.decode(WS.frame(0x2, [0xFF, 0xC0])) == [.binary([0xFF, 0xC0])])
    }

    // MARK: Close frames

    @Test("close with empty payload → code nil")
    func closeEmpty() {
        #expect(WS.decode(WS.close(nil)) == [.close(code: nil, reason: "")])
    }

    @Test("close with a 1-byte payload → 1002")
    func closeOneByte() {
        #expect(WS.errorCode(WS.decode(WS.frame(0x8, [0x03]))) == 1002)
    }

    @Test("valid close codes are accepted", arguments: [UInt16(1000), 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999])
    func validCloseCodes(code: UInt16) {
        #expect(WS.decode(WS.close(code)) == [.close(code: code, reason: "")])
    }

    @Test("invalid close codes → 1002", arguments: [UInt16(0), 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535])
    func invalidCloseCodes(code: UInt16) {
        #expect(WS.errorCode(WS.decode(WS.close(code))) == 1002)
    }

    @Test("close reason must be valid UTF-8 → 1007")
    func closeReasonUTF8() {
        #expect(WS.errorCode(WS.decode(WS.close(1000, [0x61, 0xFF]))) == 1007)
        #expect(WS.errorCode(WS.decode(WS.close(1000, [0xE2, 0x82]))) == 1007)
        #expect(WS.decode(WS.close(1001, Array("au revoir 👋".utf8))) == [.close(code: 1001, reason: "au revoir 👋")])
    }

    @Test("close frame split at every byte offset decodes identically")
    func closeEverySplit() {
        let bytes = WS.close(4001, Array("täschüß 👋".utf8))
        let expected: [WebSocketFrameEvent] = [.close(code: 4001, reason: "täschüß 👋")]
        for offset in 0...bytes.count {
            #expect(WS.decode(pieces: WS.split(bytes, at: offset)) == expected, "split at \(offset)")
        }
        #expect(WS.decode(pieces: WS.bytewise(bytes)) == expected)
        // And the invalid variants give the same code at every split.
        for (bad, code) in [(WS.close(1005), UInt16(1002)), (WS.close(1000, [0xC0, 0x80]), 1007), (WS.frame(0x8, [3]), 1002)] {
            for offset in 0...bad.count {
                #expect(WS.errorCode(WS.decode(pieces: WS.split(bad, at: offset))) == code)
            }
        }
    }

    @Test("close in the middle of a fragmented message is delivered; later bytes are discarded")
    func closeDiscardsRest() {
        let bytes = WS.frame(0x1, Array("par".utf8), fin: false) + WS.close(1000) + WS.frame(0x0, Array("t".utf8))
            + WS.frame(0x1, [0xFF], masked: false)
        var decoder = WebSocketFrameDecoder(maxMessageBytes: 100)
        #expect(WS.decode(pieces: [bytes[...]], with: &decoder) == [.close(code: 1000, reason: "")])
        #expect(decoder.isClosed)
        let (consumed, event) = [UInt8](repeating: 0, count: 5).withUnsafeBytes { decoder.parse($0) }
        #expect(consumed == 5 && event == .needMoreData)
    }

    @Test("isMessageInProgress tracks fragmented messages")
    func messageInProgress() {
        var decoder = WebSocketFrameDecoder(maxMessageBytes: 100)
        _ = WS.decode(pieces: [WS.frame(0x1, [0x41], fin: false)[...]], with: &decoder)
        #expect(decoder.isMessageInProgress)
        _ = WS.decode(pieces: [WS.frame(0x0, [0x42])[...]], with: &decoder)
        #expect(!decoder.isMessageInProgress)
    }
}

extension WebSocketFrameDecoderTests {
    /// `isAtRest` is what lets the server drop an idle connection's decoder: true only between
    /// frames with no fragmented message open.
    @Test func atRestOnlyBetweenFramesWithNoMessageOpen() {
        var d = WebSocketFrameDecoder(maxMessageBytes: 1 << 16)
        #expect(d.isAtRest)
        let whole = WS.text("hello")
        // Half a header, then the rest of a frame's header: not at rest.
        whole.withUnsafeBytes { b in
            let (n, e) = d.parse(UnsafeRawBufferPointer(rebasing: b[0..<1]))
            #expect(n == 1)
            guard case .needMoreData = e else { Issue.record("\(e)"); return }
        }
        #expect(!d.isAtRest)
        whole.withUnsafeBytes { b in _ = d.parse(UnsafeRawBufferPointer(rebasing: b[1...])) }
        #expect(d.isAtRest)
        // A first fragment leaves a message open until its final fragment.
        WS.text("par", fin: false).withUnsafeBytes { b in
            var rest = b
            while !rest.isEmpty {
                let (n, _) = d.parse(rest)
                rest = UnsafeRawBufferPointer(rebasing: rest[n...])
                if n == 0 { break }
            }
        }
        #expect(!d.isAtRest)
        WS.frame(0x0, Array("t".utf8)).withUnsafeBytes { b in _ = d.parse(b) }
        #expect(d.isAtRest)
    }
}

@Suite("WebSocketUTF8Validator")
struct WebSocketUTF8ValidatorTests {
    /// Agreement with the standard library's validation on many pseudo-random byte strings,
    /// biased towards the interesting lead and continuation bytes, fed in two pieces.
    @Test("agrees with String(validating:) on 30 000 pseudo-random inputs, any split")
    func agreesWithStdlib() {
        let alphabet: [UInt8] = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0,
                                 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF]
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17
            return seed
        }
        var mismatches = 0
        var validSeen = 0
        for _ in 0..<30_000 {
            let length = Int(next() % 7)
            let bytes = (0..<length).map { _ in alphabet[Int(next() % UInt64(alphabet.count))] }
            let expected = String(validating: bytes, as: UTF8.self) != nil
            if expected { validSeen += 1 }
            let cut = length == 0 ? 0 : Int(next() % UInt64(length + 1))
            var v = WebSocketUTF8Validator()
            let ok = bytes.withUnsafeBytes { raw in
                v.validate(UnsafeRawBufferPointer(rebasing: raw[..<cut]))
                    && v.validate(UnsafeRawBufferPointer(rebasing: raw[cut...]))
            } && v.isAtCharacterBoundary
            if ok != expected { mismatches += 1 }
        }
        #expect(mismatches == 0)
        #expect(validSeen > 1000)  // the test exercises both outcomes
    }

    @Test("ASCII fast path: long ASCII with a bad byte at every position")
    func asciiFastPath() {
        for position in 0..<40 {
            var bytes = [UInt8](repeating: 0x61, count: 40)
            #expect(WebSocketUTF8Validator.isValid(bytes))
            bytes[position] = 0x80
            #expect(!WebSocketUTF8Validator.isValid(bytes), "bad byte at \(position)")
        }
    }

    @Test("boundary code points")
    func boundaries() {
        for scalar in ["\u{7F}", "\u{80}", "\u{7FF}", "\u{800}", "\u{D7FF}", "\u{E000}", "\u{FFFF}", "\u{10000}", "\u{10FFFF}"] {
            #expect(WebSocketUTF8Validator.isValid(Array(scalar.utf8)))
        }
    }
}
