/// A command a client sends in a text message (API.md "Subscribe"), parsed by
/// ``WebSocketMessages/parseCommand(_:)``. Every command may carry an optional `"ref"` string,
/// echoed in the `ack`/`error` reply so the client can match replies to commands.
/// Topic and event names are returned as sent: validating them (`TopicName`, `EventName`) is
/// the server's job, as for HTTP.
public enum WebSocketCommand: Equatable, Sendable {
    /// `{"op":"subscribe","topic":"..","last_event_id":".."}`; `last_event_id` optional.
    case subscribe(topic: String, lastEventID: String?, ref: String?)
    /// `{"op":"unsubscribe","topic":".."}`.
    case unsubscribe(topic: String, ref: String?)
    /// `{"op":"publish","topic":"..","event":"..","data":".."}`; `event` optional, `data` required.
    case publish(topic: String, event: String?, data: String, ref: String?)
    /// `{"op":"auth","token":".."}`: the connection takes the rights of `token` as if it had been
    /// sent as `Authorization: Bearer` on the upgrade (browsers cannot set that header).
    case auth(token: String, ref: String?)

    /// The command's `ref`, if the client sent one.
    public var ref: String? {
        switch self {
        case .subscribe(_, _, let ref), .unsubscribe(_, let ref), .publish(_, _, _, let ref), .auth(_, let ref): ref
        }
    }
}

/// Why a client command was refused; reply with ``WebSocketMessages/error(code:message:ref:)``.
public struct WebSocketCommandError: Error, Equatable, Sendable {
    /// A machine-readable code: `invalid_json` (not a flat JSON object of strings),
    /// `unknown_op` (missing or unknown `op`) or `invalid_command` (a required field is missing).
    public var code: String
    /// A short English explanation.
    public var message: String
    /// The command's `ref` when the object was readable and had one.
    public var ref: String?

    /// An error from parts.
    public init(code: String, message: String, ref: String? = nil) {
        self.code = code
        self.message = message
        self.ref = ref
    }
}

/// The JSON texts of the WebSocket transport (API.md "Subscribe", "Event ids and replay"):
/// server envelopes and replies, and the parser of client commands. No Foundation: the output is
/// built byte by byte, and commands are read by a small strict parser of flat JSON objects.
public enum WebSocketMessages {
    /// The envelope of one event, `{"id":"..","topic":"..","event":"..","data":".."}`, as UTF-8
    /// JSON (RFC 8259). `event` is omitted when nil. `data` is the event's data as a JSON string:
    /// it is expected to be UTF-8 (API.md); invalid sequences are replaced by U+FFFD so the
    /// output is always valid JSON and valid UTF-8 for a text frame.
    public static func event(id: EventID, topic: String, event: String?, data: UnsafeRawBufferPointer) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + topic.utf8.count + 64)
        out.append(contentsOf: #"{"id":""#.utf8)
        out.append(contentsOf: id.description.utf8)
        out.append(contentsOf: #"","topic":"#.utf8)
        appendQuoted(topic, to: &out)
        if let event {
            out.append(contentsOf: #","event":"#.utf8)
            appendQuoted(event, to: &out)
        }
        out.append(contentsOf: #","data":"#.utf8)
        if WebSocketUTF8Validator.isValid(data) {
            appendQuoted(data, to: &out)
        } else {
            appendQuoted(String(decoding: data, as: UTF8.self), to: &out)
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// The event envelope as one complete text frame in shared memory, built once per event and
    /// queued to every WebSocket subscriber.
    public static func eventFrame(id: EventID, topic: String, event: String?, data: UnsafeRawBufferPointer) -> SharedBytes {
        let payload = self.event(id: id, topic: topic, event: event, data: data)
        return WebSocketFrameEncoder.sharedFrame(.text, payload: payload)
    }

    /// The gap signal, `{"op":"gap","last_event_id":"..","oldest_retained":".."}`: the client's
    /// cursor is older than what is retained. `oldest_retained` is `""` when nothing is retained
    /// (as in the SSE `pushd.gap` event).
    public static func gap(lastEventID: String, oldestRetained: EventID?) -> [UInt8] {
        var out: [UInt8] = Array(#"{"op":"gap","last_event_id":"#.utf8)
        appendQuoted(lastEventID, to: &out)
        out.append(contentsOf: #","oldest_retained":"#.utf8)
        appendQuoted(oldestRetained?.description ?? "", to: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// A success reply, `{"op":"ack"}`, plus `"ref":".."` when the command had a ref and
    /// `"id":".."` for a publish (the id assigned to the event).
    public static func ack(ref: String?, id: EventID? = nil) -> [UInt8] {
        var out: [UInt8] = Array(#"{"op":"ack""#.utf8)
        if let ref {
            out.append(contentsOf: #","ref":"#.utf8)
            appendQuoted(ref, to: &out)
        }
        if let id {
            out.append(contentsOf: #","id":""#.utf8)
            out.append(contentsOf: id.description.utf8)
            out.append(UInt8(ascii: "\""))
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// A failure reply, `{"op":"error","code":"..","message":".."}`, plus `"ref":".."` when known.
    public static func error(code: String, message: String, ref: String? = nil) -> [UInt8] {
        var out: [UInt8] = Array(#"{"op":"error","code":"#.utf8)
        appendQuoted(code, to: &out)
        out.append(contentsOf: #","message":"#.utf8)
        appendQuoted(message, to: &out)
        if let ref {
            out.append(contentsOf: #","ref":"#.utf8)
            appendQuoted(ref, to: &out)
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// The reply for a refused command.
    public static func error(_ error: WebSocketCommandError) -> [UInt8] {
        self.error(code: error.code, message: error.message, ref: error.ref)
    }

    /// Parses one client command from a text message's bytes.
    ///
    /// The message must be exactly one JSON object (RFC 8259) whose values are all strings —
    /// nesting, numbers, booleans and null are refused (`invalid_json`), as are duplicate keys,
    /// invalid UTF-8, raw control characters in strings, lone surrogates in `\u` escapes and
    /// anything after the object but whitespace. Every JSON string escape is decoded, including
    /// `\uD83D\uDE00` surrogate pairs. Unknown keys are ignored. Then `op` selects the command
    /// (`unknown_op`) and its required fields must be present (`invalid_command`).
    public static func parseCommand(_ bytes: UnsafeRawBufferPointer) -> Result<WebSocketCommand, WebSocketCommandError> {
        let fields: [(key: String, value: String)]
        switch FlatJSONObjectParser.parse(bytes) {
        case .success(let f): fields = f
        case .failure(let e): return .failure(WebSocketCommandError(code: "invalid_json", message: e.message))
        }
        func field(_ name: String) -> String? { fields.first { $0.key == name }?.value }
        let ref = field("ref")
        func missing(_ name: String) -> Result<WebSocketCommand, WebSocketCommandError> {
            .failure(WebSocketCommandError(code: "invalid_command", message: "missing \"\(name)\"", ref: ref))
        }
        switch field("op") {
        case "subscribe":
            guard let topic = field("topic") else { return missing("topic") }
            return .success(.subscribe(topic: topic, lastEventID: field("last_event_id"), ref: ref))
        case "unsubscribe":
            guard let topic = field("topic") else { return missing("topic") }
            return .success(.unsubscribe(topic: topic, ref: ref))
        case "publish":
            guard let topic = field("topic") else { return missing("topic") }
            guard let data = field("data") else { return missing("data") }
            return .success(.publish(topic: topic, event: field("event"), data: data, ref: ref))
        case "auth":
            guard let token = field("token") else { return missing("token") }
            return .success(.auth(token: token, ref: ref))
        case nil:
            return .failure(WebSocketCommandError(code: "unknown_op", message: "missing \"op\"", ref: ref))
        case let op?:
            return .failure(WebSocketCommandError(code: "unknown_op", message: "unknown op \(JSON.quoted(op))", ref: ref))
        }
    }

    /// The same parser for an array (e.g. a ``WebSocketFrameEvent/text(_:)`` payload).
    public static func parseCommand(_ bytes: [UInt8]) -> Result<WebSocketCommand, WebSocketCommandError> {
        bytes.withUnsafeBytes { parseCommand($0) }
    }

    // MARK: - JSON string output

    static func appendQuoted(_ s: String, to out: inout [UInt8]) {
        var s = s
        s.withUTF8 { appendQuoted(UnsafeRawBufferPointer($0), to: &out) }
    }

    /// Appends `bytes` (valid UTF-8) as a JSON string literal: `"` and `\` escaped, control
    /// characters as `\n`, `\r`, `\t`, `\b`, `\f` or `\u00XX` (RFC 8259 §7); all else verbatim.
    static func appendQuoted(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        var runStart = 0
        for i in 0..<bytes.count {
            let b = bytes[i]
            guard b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") else { continue }
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<i]))
            runStart = i + 1
            out.append(UInt8(ascii: "\\"))
            switch b {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(b)
            case 0x0A: out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(UInt8(ascii: "r"))
            case 0x09: out.append(UInt8(ascii: "t"))
            case 0x08: out.append(UInt8(ascii: "b"))
            case 0x0C: out.append(UInt8(ascii: "f"))
            default: out.append(contentsOf: [UInt8(ascii: "u"), 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 0xF)]])
            }
        }
        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart...]))
        out.append(UInt8(ascii: "\""))
    }
}

/// A strict parser of one flat JSON object whose values are all strings (RFC 8259), for client
/// commands. Internal: the command format is the public contract, not this parser.
enum FlatJSONObjectParser {
    struct Failure: Error, Equatable {
        var message: String
    }

    static func parse(_ bytes: UnsafeRawBufferPointer) -> Result<[(key: String, value: String)], Failure> {
        guard WebSocketUTF8Validator.isValid(bytes) else { return .failure(Failure(message: "not valid UTF-8")) }
        var p = FlatJSONObjectParser.State(bytes: bytes)
        do {
            return .success(try p.object())
        } catch {
            return .failure(error)
        }
    }

    struct State {
        let bytes: UnsafeRawBufferPointer
        var i = 0

        init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        mutating func object() throws(Failure) -> [(key: String, value: String)] {
            var fields: [(key: String, value: String)] = []
            skipWhitespace()
            try expect(UInt8(ascii: "{"), "expected a JSON object")
            skipWhitespace()
            if peek() == UInt8(ascii: "}") {
                i += 1
            } else {
                while true {
                    skipWhitespace()
                    guard peek() == UInt8(ascii: "\"") else { throw Failure(message: "expected a string key at byte \(i)") }
                    let key = try string()
                    skipWhitespace()
                    try expect(UInt8(ascii: ":"), "expected ':' at byte \(i)")
                    skipWhitespace()
                    switch peek() {
                    case UInt8(ascii: "\""):
                        break
                    case UInt8(ascii: "{"), UInt8(ascii: "["):
                        throw Failure(message: "nested value for \(JSON.quoted(key)): only string values are accepted")
                    case nil:
                        throw Failure(message: "unexpected end of input")
                    default:
                        throw Failure(message: "non-string value for \(JSON.quoted(key)): only string values are accepted")
                    }
                    let value = try string()
                    if fields.contains(where: { $0.key == key }) {
                        throw Failure(message: "duplicate key \(JSON.quoted(key))")
                    }
                    fields.append((key, value))
                    skipWhitespace()
                    guard let b = peek() else { throw Failure(message: "unexpected end of input") }
                    i += 1
                    if b == UInt8(ascii: "}") { break }
                    guard b == UInt8(ascii: ",") else { throw Failure(message: "expected ',' or '}' at byte \(i - 1)") }
                }
            }
            skipWhitespace()
            guard i == bytes.count else { throw Failure(message: "unexpected data after the object at byte \(i)") }
            return fields
        }

        func peek() -> UInt8? { i < bytes.count ? bytes[i] : nil }

        mutating func expect(_ b: UInt8, _ message: String) throws(Failure) {
            guard peek() == b else { throw Failure(message: message) }
            i += 1
        }

        /// JSON whitespace: space, tab, LF, CR (RFC 8259 §2).
        mutating func skipWhitespace() {
            while let b = peek(), b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D { i += 1 }
        }

        /// A string literal starting at the opening quote (RFC 8259 §7).
        mutating func string() throws(Failure) -> String {
            i += 1
            var out: [UInt8] = []
            while true {
                guard let b = peek() else { throw Failure(message: "unterminated string") }
                i += 1
                switch b {
                case UInt8(ascii: "\""):
                    return String(decoding: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard let e = peek() else { throw Failure(message: "unterminated string") }
                    i += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        var value = try hex4()
                        if (0xDC00...0xDFFF).contains(value) { throw Failure(message: "lone low surrogate \\u\(String(value, radix: 16))") }
                        if (0xD800...0xDBFF).contains(value) {
                            guard peek() == UInt8(ascii: "\\"), i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "u") else {
                                throw Failure(message: "high surrogate not followed by a low surrogate")
                            }
                            i += 2
                            let low = try hex4()
                            guard (0xDC00...0xDFFF).contains(low) else {
                                throw Failure(message: "high surrogate not followed by a low surrogate")
                            }
                            value = 0x10000 + ((value - 0xD800) << 10) + (low - 0xDC00)
                        }
                        // Not a surrogate by construction, so the scalar exists.
                        UTF8.encode(Unicode.Scalar(value)!) { out.append($0) }
                    default:
                        throw Failure(message: "invalid escape \\\(Character(Unicode.Scalar(e)))")
                    }
                default:
                    guard b >= 0x20 else { throw Failure(message: "control character in a string") }
                    out.append(b)
                }
            }
        }

        mutating func hex4() throws(Failure) -> UInt32 {
            guard i + 4 <= bytes.count else { throw Failure(message: "truncated \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                guard let d = HTTPSyntax.hexValue(bytes[i]) else { throw Failure(message: "invalid \\u escape") }
                v = v << 4 | UInt32(d)
                i += 1
            }
            return v
        }
    }
}
