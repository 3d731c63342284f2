/// The `"ref"` of a client command (API.md "WebSocket (issue 4)", Commands): a JSON string, or a
/// JSON integer as Centrifugo-style clients send, echoed in the `ack`/`error` reply with the same
/// JSON type so the client can match replies to commands.
public enum WebSocketCommandRef: Hashable, Sendable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    /// `"ref":"a1"`, echoed as a JSON string.
    case string(String)
    /// `"ref":42`, echoed as a JSON number. At most ``maxInteger`` in magnitude.
    case integer(Int64)

    /// The largest integer ref, 2^53 − 1: the largest integer an IEEE 754 double (a JavaScript
    /// `Number`, RFC 8259 §6) holds exactly, so every client reads back the number it sent.
    public static let maxInteger: Int64 = (1 << 53) - 1

    /// A string ref.
    public init(stringLiteral value: String) { self = .string(value) }

    /// An integer ref.
    public init(integerLiteral value: Int64) { self = .integer(value) }

    /// The integer ref written as the JSON number `text`, or nil when `text` has a fraction or an
    /// exponent, or is over ``maxInteger`` in magnitude. `text` must match the RFC 8259 §6 grammar.
    init?(jsonNumber text: String) {
        guard !text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }),
            let value = Int64(text), value.magnitude <= Self.maxInteger.magnitude
        else { return nil }
        self = .integer(value)
    }
}

/// A command a client sends in a text message (API.md "Subscribe"), parsed by
/// ``WebSocketMessages/parseCommand(_:)``. Every command may carry an optional `"ref"` (a string or
/// an integer, ``WebSocketCommandRef``), echoed in the `ack`/`error` reply so the client can
/// match replies to commands. Topic and event names are returned as sent: validating them
/// (`TopicName`, `EventName`) is the server's job, as for HTTP.
public enum WebSocketCommand: Equatable, Sendable {
    /// `{"op":"subscribe","topic":"..","last_event_id":".."}`; `last_event_id` optional.
    case subscribe(topic: String, lastEventID: String?, ref: WebSocketCommandRef?)
    /// `{"op":"unsubscribe","topic":".."}`.
    case unsubscribe(topic: String, ref: WebSocketCommandRef?)
    /// `{"op":"publish","topic":"..","event":"..","data":".."}`; `event` optional, `data` required.
    case publish(topic: String, event: String?, data: String, ref: WebSocketCommandRef?)
    /// `{"op":"auth","token":".."}`: the connection takes the rights of `token` as if it had been
    /// sent as `Authorization: Bearer` on the upgrade (browsers cannot set that header).
    case auth(token: String, ref: WebSocketCommandRef?)

    /// The command's `ref`, if the client sent one.
    public var ref: WebSocketCommandRef? {
        switch self {
        case .subscribe(_, _, let ref), .unsubscribe(_, let ref), .publish(_, _, _, let ref), .auth(_, let ref): ref
        }
    }
}

/// Why a client command was refused; reply with ``WebSocketMessages/error(code:message:ref:)``.
public struct WebSocketCommandError: Error, Equatable, Sendable {
    /// A machine-readable code: `invalid_json` (not one JSON object), `unknown_op` (missing or
    /// unknown `op`) or `invalid_command` (a required field is missing, a field is not a string,
    /// or `ref` is neither a string nor an integer within ``WebSocketCommandRef/maxInteger``).
    public var code: String
    /// A short English explanation.
    public var message: String
    /// The command's `ref` when the object was readable and had a valid one.
    public var ref: WebSocketCommandRef?

    /// An error from parts.
    public init(code: String, message: String, ref: WebSocketCommandRef? = nil) {
        self.code = code
        self.message = message
        self.ref = ref
    }
}

/// The JSON texts of the WebSocket transport (API.md "Subscribe", "Event ids and replay"):
/// server envelopes and replies, and the parser of client commands. No Foundation: the output is
/// built byte by byte, and commands are read by a small strict JSON object parser.
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

    /// A success reply, `{"op":"ack"}`, plus `"ref":..` when the command had a ref (a string or a
    /// number, as sent) and `"id":".."` for a publish (the id assigned to the event).
    public static func ack(ref: WebSocketCommandRef?, id: EventID? = nil) -> [UInt8] {
        var out: [UInt8] = Array(#"{"op":"ack""#.utf8)
        appendRef(ref, to: &out)
        if let id {
            out.append(contentsOf: #","id":""#.utf8)
            out.append(contentsOf: id.description.utf8)
            out.append(UInt8(ascii: "\""))
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// A failure reply, `{"op":"error","code":"..","message":".."}`, plus `"ref":..` when known (a
    /// string or a number, as sent).
    public static func error(code: String, message: String, ref: WebSocketCommandRef? = nil) -> [UInt8] {
        var out: [UInt8] = Array(#"{"op":"error","code":"#.utf8)
        appendQuoted(code, to: &out)
        out.append(contentsOf: #","message":"#.utf8)
        appendQuoted(message, to: &out)
        appendRef(ref, to: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// `,"ref":"a1"` or `,"ref":42`, nothing when `ref` is nil.
    static func appendRef(_ ref: WebSocketCommandRef?, to out: inout [UInt8]) {
        guard let ref else { return }
        out.append(contentsOf: #","ref":"#.utf8)
        switch ref {
        case .string(let s): appendQuoted(s, to: &out)
        case .integer(let n): out.append(contentsOf: String(n).utf8)
        }
    }

    /// The reply for a refused command.
    public static func error(_ error: WebSocketCommandError) -> [UInt8] {
        self.error(code: error.code, message: error.message, ref: error.ref)
    }

    /// Parses one client command from a text message's bytes.
    ///
    /// The message must be exactly one JSON object (RFC 8259), else `invalid_json`: duplicate
    /// keys, invalid UTF-8, raw control characters in strings, lone surrogates in `\u` escapes,
    /// nesting deeper than ``FlatJSONObjectParser/maxDepth`` and anything after the object but
    /// whitespace are refused. Every JSON string escape is decoded, including `\uD83D\uDE00`
    /// surrogate pairs. Unknown keys are ignored, whatever their value.
    ///
    /// Then the object is read as a command; each refusal from here on carries the `ref` when it is
    /// valid. `ref` must be a string or an integer within ``WebSocketCommandRef/maxInteger``
    /// (`invalid_command`, without a ref); `op` selects the command (`unknown_op`); its fields must
    /// be strings and the required ones present (`invalid_command`). A field given as `null` is
    /// absent.
    public static func parseCommand(_ bytes: UnsafeRawBufferPointer) -> Result<WebSocketCommand, WebSocketCommandError> {
        let fields: [(key: String, value: FlatJSONObjectParser.Value)]
        switch FlatJSONObjectParser.parse(bytes) {
        case .success(let f): fields = f
        case .failure(let e): return .failure(WebSocketCommandError(code: "invalid_json", message: e.message))
        }
        func field(_ name: String) -> FlatJSONObjectParser.Value? { fields.first { $0.key == name }?.value }
        // The ref first, so that every later refusal can carry it.
        let badRef = WebSocketCommandError(
            code: "invalid_command",
            message: "\"ref\" must be a string or an integer between -\(WebSocketCommandRef.maxInteger) and \(WebSocketCommandRef.maxInteger)")
        let ref: WebSocketCommandRef?
        switch field("ref") {
        case nil, .null?: ref = nil
        case .string(let s)?: ref = .string(s)
        case .number(let text)?:
            guard let integer = WebSocketCommandRef(jsonNumber: text) else { return .failure(badRef) }
            ref = integer
        default: return .failure(badRef)
        }
        /// A string field; nil when absent or `null`.
        func string(_ name: String) throws(WebSocketCommandError) -> String? {
            switch field(name) {
            case nil, .null?: return nil
            case .string(let s)?: return s
            default: throw WebSocketCommandError(code: "invalid_command", message: "\(JSON.quoted(name)) must be a string", ref: ref)
            }
        }
        /// A string field that must be present (and not `null`).
        func required(_ name: String) throws(WebSocketCommandError) -> String {
            guard let value = try string(name) else {
                throw WebSocketCommandError(code: "invalid_command", message: "missing \(JSON.quoted(name))", ref: ref)
            }
            return value
        }
        do throws(WebSocketCommandError) {
            switch try string("op") {
            case "subscribe":
                return .success(.subscribe(topic: try required("topic"), lastEventID: try string("last_event_id"), ref: ref))
            case "unsubscribe":
                return .success(.unsubscribe(topic: try required("topic"), ref: ref))
            case "publish":
                return .success(.publish(topic: try required("topic"), event: try string("event"), data: try required("data"), ref: ref))
            case "auth":
                return .success(.auth(token: try required("token"), ref: ref))
            case nil:
                return .failure(WebSocketCommandError(code: "unknown_op", message: "missing \"op\"", ref: ref))
            case let op?:
                return .failure(WebSocketCommandError(code: "unknown_op", message: "unknown op \(JSON.quoted(op))", ref: ref))
            }
        } catch {
            return .failure(error)
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

/// A strict parser of one JSON object (RFC 8259) for client commands: it returns the object's
/// members with their string, number, `true`/`false` and `null` values; a nested object or array is
/// checked as strictly (up to ``maxDepth``) and returned only as ``Value/nested``. Internal: the
/// command format is the public contract, not this parser.
enum FlatJSONObjectParser {
    struct Failure: Error, Equatable {
        var message: String
    }

    /// A member's value.
    enum Value: Equatable {
        case string(String)
        /// A number, as its text (RFC 8259 §6 grammar, checked).
        case number(String)
        case bool(Bool)
        case null
        /// An object or an array: well-formed, contents dropped.
        case nested
    }

    /// Deepest nesting accepted, the command object being depth 0 — the same bound, counted the
    /// same way, as `JSONValue.parse(_:maxDepth:)` with its default 32, so no command parses from a
    /// text that parser refuses.
    static let maxDepth = 32

    static func parse(_ bytes: UnsafeRawBufferPointer) -> Result<[(key: String, value: Value)], Failure> {
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

        mutating func object() throws(Failure) -> [(key: String, value: Value)] {
            var fields: [(key: String, value: Value)] = []
            var keys: Set<String> = []  // not a scan of `fields` per key: quadratic in a 1 MiB message
            skipWhitespace()
            guard peek() == UInt8(ascii: "{") else { throw Failure(message: "expected a JSON object") }
            try members(depth: 0) { key, value throws(Failure) in
                guard keys.insert(key).inserted else { throw Failure(message: "duplicate key \(JSON.quoted(key))") }
                fields.append((key, value))
            }
            skipWhitespace()
            guard i == bytes.count else { throw Failure(message: "unexpected data after the object at byte \(i)") }
            return fields
        }

        /// The members of the object starting at `{`, at nesting `depth`, each handed to `member`.
        mutating func members(depth: Int, _ member: (String, Value) throws(Failure) -> Void) throws(Failure) {
            i += 1
            skipWhitespace()
            if peek() == UInt8(ascii: "}") {
                i += 1
                return
            }
            while true {
                skipWhitespace()
                guard peek() == UInt8(ascii: "\"") else { throw Failure(message: "expected a string key at byte \(i)") }
                let key = try string()
                skipWhitespace()
                try expect(UInt8(ascii: ":"), "expected ':' at byte \(i)")
                skipWhitespace()
                try member(key, try value(depth: depth + 1))
                skipWhitespace()
                guard let b = peek() else { throw Failure(message: "unexpected end of input") }
                i += 1
                if b == UInt8(ascii: "}") { return }
                guard b == UInt8(ascii: ",") else { throw Failure(message: "expected ',' or '}' at byte \(i - 1)") }
            }
        }

        /// Any JSON value at nesting `depth` (the command object's members are at depth 1).
        mutating func value(depth: Int) throws(Failure) -> Value {
            guard depth <= FlatJSONObjectParser.maxDepth else {
                throw Failure(message: "nested deeper than \(FlatJSONObjectParser.maxDepth) levels at byte \(i)")
            }
            switch peek() {
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "{"):
                var keys: Set<String> = []
                try members(depth: depth) { key, _ throws(Failure) in
                    guard keys.insert(key).inserted else { throw Failure(message: "duplicate key \(JSON.quoted(key))") }
                }
                return .nested
            case UInt8(ascii: "["):
                i += 1
                skipWhitespace()
                if peek() == UInt8(ascii: "]") {
                    i += 1
                    return .nested
                }
                while true {
                    skipWhitespace()
                    _ = try value(depth: depth + 1)
                    skipWhitespace()
                    guard let b = peek() else { throw Failure(message: "unexpected end of input") }
                    i += 1
                    if b == UInt8(ascii: "]") { return .nested }
                    guard b == UInt8(ascii: ",") else { throw Failure(message: "expected ',' or ']' at byte \(i - 1)") }
                }
            case UInt8(ascii: "t"):
                try literal("true")
                return .bool(true)
            case UInt8(ascii: "f"):
                try literal("false")
                return .bool(false)
            case UInt8(ascii: "n"):
                try literal("null")
                return .null
            case UInt8(ascii: "-"), (UInt8(ascii: "0")...UInt8(ascii: "9"))?:
                return .number(try number())
            case nil:
                throw Failure(message: "unexpected end of input")
            default:
                throw Failure(message: "unexpected character at byte \(i)")
            }
        }

        mutating func literal(_ word: StaticString) throws(Failure) {
            let start = i
            for b in UnsafeRawBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount) {
                guard peek() == b else { throw Failure(message: "invalid literal at byte \(start)") }
                i += 1
            }
        }

        /// A number (RFC 8259 §6: no leading zero, no `+`, digits after `.` and `e`), as its text.
        mutating func number() throws(Failure) -> String {
            let start = i
            if peek() == UInt8(ascii: "-") { i += 1 }
            if peek() == UInt8(ascii: "0") {
                i += 1
                if isDigit(peek()) { throw Failure(message: "leading zero in the number at byte \(start)") }
            } else {
                try digits(in: "the number at byte \(start)")
            }
            if peek() == UInt8(ascii: ".") {
                i += 1
                try digits(in: "the fraction at byte \(start)")
            }
            if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
                i += 1
                if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { i += 1 }
                try digits(in: "the exponent at byte \(start)")
            }
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        }

        func peek() -> UInt8? { i < bytes.count ? bytes[i] : nil }

        func isDigit(_ b: UInt8?) -> Bool { b.map { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") } ?? false }

        /// One or more digits.
        mutating func digits(in what: String) throws(Failure) {
            guard isDigit(peek()) else { throw Failure(message: "expected a digit in \(what)") }
            while isDigit(peek()) { i += 1 }
        }

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
