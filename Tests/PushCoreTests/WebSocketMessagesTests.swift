import Testing
@testable import PushCore

@Suite("WebSocketMessages")
struct WebSocketMessagesTests {
    static let id = EventID(milliseconds: 1_700_000_000_123, sequence: 4)

    static func string(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    static func envelope(_ topic: String, _ event: String?, _ data: [UInt8]) -> [UInt8] {
        data.withUnsafeBytes { WebSocketMessages.event(id: id, topic: topic, event: event, data: $0) }
    }

    /// Parses a JSON object of strings with the command parser's own JSON reader (nil when it
    /// is not one).
    static func fields(_ bytes: [UInt8]) -> [String: String]? {
        let result = bytes.withUnsafeBytes { FlatJSONObjectParser.parse($0) }
        guard case .success(let f) = result else { return nil }
        var out: [String: String] = [:]
        for (key, value) in f {
            guard case .string(let s) = value else { return nil }
            out[key] = s
        }
        return out
    }

    // MARK: Output

    @Test("event envelope: exact bytes, with and without event")
    func envelopeExact() {
        #expect(Self.string(Self.envelope("news/eu", "update", Array("hi".utf8)))
            == #"{"id":"1700000000123-4","topic":"news/eu","event":"update","data":"hi"}"#)
        #expect(Self.string(Self.envelope("t", nil, [])) == #"{"id":"1700000000123-4","topic":"t","data":""}"#)
    }

    @Test("event envelope escapes data and parses back", arguments: [
        "plain", "quote \" backslash \\ slash /", "lines\r\nand\ttabs", "\u{0}\u{1}\u{1F}\u{7F}", "ünïcødé 😀 \u{2028}",
        "{\"json\":[1,2]}", "",
    ])
    func envelopeRoundTrip(data: String) throws {
        let out = Self.envelope("a/b", "e.v-1", Array(data.utf8))
        #expect(WebSocketUTF8Validator.isValid(out))
        let f = try #require(Self.fields(out))
        #expect(f == ["id": "1700000000123-4", "topic": "a/b", "event": "e.v-1", "data": data])
        #expect(!out.contains { $0 < 0x20 })
    }

    @Test("control characters use the short escapes or \\u00XX")
    func escapes() {
        #expect(Self.string(Self.envelope("t", nil, [0x08, 0x0C, 0x0A, 0x0D, 0x09, 0x01, 0x1F]))
            .hasSuffix(#""data":"\b\f\n\r\t\u0001\u001f"}"#))
    }

    @Test("invalid UTF-8 data becomes U+FFFD, output stays valid")
    func invalidData() throws {
        let out = Self.envelope("t", nil, [0x61, 0xFF, 0x62])
        #expect(WebSocketUTF8Validator.isValid(out))
        #expect(try #require(Self.fields(out))["data"] == "a\u{FFFD}b")
    }

    @Test("event frame is one text frame around the envelope")
    func eventFrame() {
        let data = Array(String(repeating: "x", count: 200).utf8)
        let frame = data.withUnsafeBytes { WebSocketMessages.eventFrame(id: Self.id, topic: "t", event: nil, data: $0) }
        let payload = Self.envelope("t", nil, data)
        #expect(frame.array == [0x81, 0x7E, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)] + payload)
    }

    @Test("gap, ack and error replies: exact bytes")
    func replies() {
        #expect(Self.string(WebSocketMessages.gap(lastEventID: "5-0", oldestRetained: Self.id))
            == #"{"op":"gap","last_event_id":"5-0","oldest_retained":"1700000000123-4"}"#)
        #expect(Self.string(WebSocketMessages.gap(lastEventID: "5-0", oldestRetained: nil))
            == #"{"op":"gap","last_event_id":"5-0","oldest_retained":""}"#)
        #expect(Self.string(WebSocketMessages.ack(ref: nil)) == #"{"op":"ack"}"#)
        #expect(Self.string(WebSocketMessages.ack(ref: "r\"1", id: Self.id)) == #"{"op":"ack","ref":"r\"1","id":"1700000000123-4"}"#)
        #expect(Self.string(WebSocketMessages.error(code: "forbidden", message: "no \"publish\" right"))
            == #"{"op":"error","code":"forbidden","message":"no \"publish\" right"}"#)
        let e = WebSocketCommandError(code: "invalid_command", message: "missing", ref: "7")
        #expect(Self.fields(WebSocketMessages.error(e)) == ["op": "error", "code": "invalid_command", "message": "missing", "ref": "7"])
    }

    // MARK: Command parser

    static func parse(_ s: String) -> Result<WebSocketCommand, WebSocketCommandError> {
        WebSocketMessages.parseCommand(Array(s.utf8))
    }

    @Test("good commands", arguments: [
        (#"{"op":"subscribe","topic":"news"}"#, WebSocketCommand.subscribe(topic: "news", lastEventID: nil, ref: nil)),
        (#"{"op":"subscribe","topic":"news","last_event_id":"1-2","ref":"a"}"#, .subscribe(topic: "news", lastEventID: "1-2", ref: "a")),
        (#" { "topic" : "x" , "op" : "unsubscribe" } "#, .unsubscribe(topic: "x", ref: nil)),
        ("{\n\t\"op\":\"unsubscribe\",\r\n\"topic\":\"x\",\"extra\":\"ignored\"}", .unsubscribe(topic: "x", ref: nil)),
        (#"{"op":"publish","topic":"t","data":"d"}"#, .publish(topic: "t", event: nil, data: "d", ref: nil)),
        (#"{"op":"publish","topic":"t","event":"e","data":"line\nnext \"q\" \\ \/ \b\f\r\t","ref":"9"}"#,
         .publish(topic: "t", event: "e", data: "line\nnext \"q\" \\ / \u{8}\u{C}\r\t", ref: "9")),
        (#"{"op":"publish","topic":"t","data":"\u00e9\u20AC\ud83d\ude00\u0000"}"#,
         .publish(topic: "t", event: nil, data: "é€😀\u{0}", ref: nil)),
        (#"{"op":"publish","topic":"t","data":"raw ünïcødé 😀"}"#, .publish(topic: "t", event: nil, data: "raw ünïcødé 😀", ref: nil)),
        (#"{"op":"publish","topic":"t","data":""}"#, .publish(topic: "t", event: nil, data: "", ref: nil)),
        (#"{"op":"auth","token":"eyJ.a.b","ref":"r"}"#, .auth(token: "eyJ.a.b", ref: "r")),
    ])
    func goodCommands(json: String, expected: WebSocketCommand) {
        #expect(Self.parse(json) == .success(expected))
    }

    @Test("malformed JSON → invalid_json", arguments: [
        "", " ", "[]", "\"op\"", "null", "{", "}", #"{"op":"subscribe","topic":"t""#, #"{"op":"subscribe","topic":"t",}"#,
        #"{"op":"subscribe" "topic":"t"}"#, #"{"op":"subscribe","topic":"t"} x"#, #"{"op":"subscribe","topic":"t"}{}"#,
        #"{op:"subscribe"}"#, #"{'op':'subscribe'}"#,
        #"{"op":"subscribe","op":"publish"}"#, #"{"op":"a\qb"}"#, #"{"op":"\u12"}"#, #"{"op":"\u12G4"}"#,
        #"{"op":"\ud83d"}"#, #"{"op":"\ud83dx"}"#, #"{"op":"\ud83d\u0041"}"#, #"{"op":"\ude00"}"#,
        "{\"op\":\"a\nb\"}", "{\"op\":\"a\u{1}b\"}", #"{"op":"subscribe","topic":"t"#, "{\"op\":\"subscribe\"}\u{0}",
    ])
    func badJSON(json: String) {
        guard case .failure(let e) = Self.parse(json) else {
            Issue.record("accepted \(json)")
            return
        }
        #expect(e.code == "invalid_json", "\(json): \(e.message)")
    }

    @Test("invalid UTF-8 inside a string → invalid_json")
    func invalidUTF8() {
        var bytes = Array(#"{"op":"subscribe","topic":"x"#.utf8)
        bytes += [0xC0, 0xAF]
        bytes += Array(#""}"#.utf8)
        guard case .failure(let e) = WebSocketMessages.parseCommand(bytes) else {
            Issue.record("accepted invalid UTF-8")
            return
        }
        #expect(e.code == "invalid_json")
    }

    @Test("valid JSON, wrong command")
    func badCommands() {
        #expect(Self.parse(#"{}"#) == .failure(WebSocketCommandError(code: "unknown_op", message: "missing \"op\"")))
        #expect(Self.parse(#"{"op":"SUBSCRIBE","ref":"r"}"#)
            == .failure(WebSocketCommandError(code: "unknown_op", message: "unknown op \"SUBSCRIBE\"", ref: "r")))
        #expect(Self.parse(#"{"op":"subscribe"}"#) == .failure(WebSocketCommandError(code: "invalid_command", message: "missing \"topic\"")))
        #expect(Self.parse(#"{"op":"unsubscribe","ref":"2"}"#)
            == .failure(WebSocketCommandError(code: "invalid_command", message: "missing \"topic\"", ref: "2")))
        #expect(Self.parse(#"{"op":"publish","topic":"t"}"#)
            == .failure(WebSocketCommandError(code: "invalid_command", message: "missing \"data\"")))
        #expect(Self.parse(#"{"op":"publish","data":"d"}"#)
            == .failure(WebSocketCommandError(code: "invalid_command", message: "missing \"topic\"")))
        #expect(Self.parse(#"{"op":"auth","ref":"3"}"#)
            == .failure(WebSocketCommandError(code: "invalid_command", message: "missing \"token\"", ref: "3")))
    }

    // MARK: ref as a string or an integer; null fields; the ref on refusals

    /// The reply pushd would send for `json` if the command itself succeeds: `ack` with its ref,
    /// or the parser's `error`.
    static func reply(_ json: String) -> String {
        switch parse(json) {
        case .success(let command): string(WebSocketMessages.ack(ref: command.ref))
        case .failure(let error): string(WebSocketMessages.error(error))
        }
    }

    @Test("an integer ref is echoed as a JSON number, a string ref as a string", arguments: [
        (#"{"op":"subscribe","topic":"a","ref":1}"#, #"{"op":"ack","ref":1}"#),
        (#"{"op":"unsubscribe","topic":"a","ref":0}"#, #"{"op":"ack","ref":0}"#),
        (#"{"op":"auth","token":"t","ref":-42}"#, #"{"op":"ack","ref":-42}"#),
        (#"{"op":"publish","topic":"a","data":"d","ref":9007199254740991}"#, #"{"op":"ack","ref":9007199254740991}"#),
        (#"{"op":"subscribe","topic":"a","ref":-9007199254740991}"#, #"{"op":"ack","ref":-9007199254740991}"#),
        (#"{"op":"subscribe","topic":"a","ref":"1"}"#, #"{"op":"ack","ref":"1"}"#),
        (#"{"op":"subscribe","topic":"a","ref":null}"#, #"{"op":"ack"}"#),
        (#"{"ref" : 17 , "op":"subscribe","topic":"a"}"#, #"{"op":"ack","ref":17}"#),
    ])
    func integerRefs(json: String, expected: String) {
        #expect(Self.reply(json) == expected)
    }

    @Test("an optional field given as null is absent")
    func nullOptionalFields() {
        #expect(Self.parse(#"{"op":"subscribe","topic":"a","last_event_id":null}"#)
            == .success(.subscribe(topic: "a", lastEventID: nil, ref: nil)))
        #expect(Self.parse(#"{"op":"publish","topic":"a","event":null,"data":"d","ref":null}"#)
            == .success(.publish(topic: "a", event: nil, data: "d", ref: nil)))
        #expect(Self.reply(#"{"op":"subscribe","topic":"a","last_event_id":null,"ref":5}"#) == #"{"op":"ack","ref":5}"#)
        // A required field given as null is missing, and the error keeps the ref.
        #expect(Self.reply(#"{"op":"subscribe","topic":null,"ref":6}"#)
            == #"{"op":"error","code":"invalid_command","message":"missing \"topic\"","ref":6}"#)
        #expect(Self.reply(#"{"op":null,"ref":"n"}"#) == #"{"op":"error","code":"unknown_op","message":"missing \"op\"","ref":"n"}"#)
    }

    @Test("a field of the wrong type is invalid_command and the error carries the ref", arguments: [
        (#"{"op":"subscribe","topic":5,"ref":7}"#, #"\"topic\" must be a string"#, "7"),
        (#"{"op":"subscribe","topic":"a","last_event_id":1,"ref":"r"}"#, #"\"last_event_id\" must be a string"#, #""r""#),
        (#"{"op":"publish","topic":"a","data":{"x":1},"ref":8}"#, #"\"data\" must be a string"#, "8"),
        (#"{"op":"publish","topic":"a","event":true,"data":"d","ref":9}"#, #"\"event\" must be a string"#, "9"),
        (#"{"op":"unsubscribe","topic":["a","b"],"ref":10}"#, #"\"topic\" must be a string"#, "10"),
        (#"{"op":"auth","token":false,"ref":11}"#, #"\"token\" must be a string"#, "11"),
        (#"{"op":1,"ref":12}"#, #"\"op\" must be a string"#, "12"),
    ])
    func wrongTypesKeepTheRef(json: String, message: String, ref: String) {
        #expect(Self.reply(json) == #"{"op":"error","code":"invalid_command","message":""# + message + #"","ref":"# + ref + "}")
    }

    @Test("a ref that is neither a string nor a safe integer is refused without a ref", arguments: [
        #"{"op":"subscribe","topic":"a","ref":1.5}"#, #"{"op":"subscribe","topic":"a","ref":1e3}"#,
        #"{"op":"subscribe","topic":"a","ref":1.0}"#, #"{"op":"subscribe","topic":"a","ref":9007199254740992}"#,
        #"{"op":"subscribe","topic":"a","ref":-9007199254740992}"#,
        #"{"op":"subscribe","topic":"a","ref":123456789012345678901234567890}"#,
        #"{"op":"subscribe","topic":"a","ref":true}"#, #"{"op":"subscribe","topic":"a","ref":{"id":1}}"#,
        #"{"op":"subscribe","topic":"a","ref":[1]}"#,
    ])
    func badRefs(json: String) {
        guard case .failure(let e) = Self.parse(json) else {
            Issue.record("accepted \(json)")
            return
        }
        #expect(e.code == "invalid_command", "\(json): \(e.message)")
        #expect(e.message.contains("\"ref\""), "\(json): \(e.message)")
        #expect(e.ref == nil)
    }

    @Test("unknown keys of any JSON type are ignored")
    func unknownKeysOfAnyType() {
        #expect(Self.parse(#"{"op":"subscribe","topic":"a","n":1,"b":true,"z":null,"o":{"x":[1,{"y":"z"}]},"l":[]}"#)
            == .success(.subscribe(topic: "a", lastEventID: nil, ref: nil)))
    }

    @Test("still invalid_json, without a ref: not one well-formed flat-enough JSON object", arguments: [
        #"{"op":"subscribe","topic":"a","ref":1"#, #"{"op":"subscribe","topic":"a","ref":01}"#,
        #"{"op":"subscribe","topic":"a","ref":+1}"#, #"{"op":"subscribe","topic":"a","ref":1.}"#,
        #"{"op":"subscribe","topic":"a","ref":-}"#, #"{"op":"subscribe","topic":"a","ref":tru}"#,
        #"{"op":"subscribe","topic":"a","ref":nul}"#, #"{"op":"subscribe","topic":"a","ref":1,"ref":2}"#,
        #"{"op":"subscribe","topic":"a","x":[1,]}"#, #"{"op":"subscribe","topic":"a","x":{"k":"\ud800"}}"#,
        #"{"op":"subscribe","topic":"a","x":{"k":1,"k":2}}"#, #"{"op":"subscribe","topic":"a","ref":1}x"#,
        #"{"op":"subscribe","topic":"a","x":"# + String(repeating: "[", count: 40) + String(repeating: "]", count: 40) + "}",
        #"{"op":"subscribe","topic":"a","x":"# + String(repeating: "[", count: 100_000) + "}",
    ])
    func stillInvalidJSON(json: String) {
        guard case .failure(let e) = Self.parse(json) else {
            Issue.record("accepted \(json.prefix(80))")
            return
        }
        #expect(e.code == "invalid_json", "\(json.prefix(80)): \(e.message)")
        #expect(e.ref == nil)
    }

    @Test("ack/error replies round-trip through the command JSON reader")
    func replyRoundTrip() {
        let weird = "r\u{1}\"\\😀"
        #expect(Self.fields(WebSocketMessages.ack(ref: .string(weird))) == ["op": "ack", "ref": weird])
        #expect(Self.fields(WebSocketMessages.gap(lastEventID: weird, oldestRetained: nil))
            == ["op": "gap", "last_event_id": weird, "oldest_retained": ""])
    }
}
