import Foundation
import Testing
@testable import PushCore

// MARK: - A spec-conforming SSE parser (WHATWG HTML §9.2.6 "Interpreting an event stream"), for tests.

/// One dispatched event as an EventSource would see it.
struct ParsedSSEEvent: Equatable, CustomStringConvertible {
    var type: String
    var data: String
    var lastEventID: String
    var description: String { "[\(type) id=\(lastEventID) data=\(data.debugDescription)]" }
}

/// Parses a complete byte stream. Lines end at CRLF, LF or CR; an unterminated final event is
/// discarded, as the spec says for the end of the stream. `retry` values are collected.
struct SSEParser {
    private(set) var events: [ParsedSSEEvent] = []
    private(set) var retry: [Int] = []
    private(set) var comments = 0
    private var dataBuffer = ""
    private var eventType = ""
    private var lastEventIDBuffer = ""

    static func parse(_ bytes: [UInt8]) -> SSEParser {
        var p = SSEParser()
        p.feed(bytes)
        return p
    }

    mutating func feed(_ bytes: [UInt8]) {
        // Decode as UTF-8 (the spec's first step) and strip one leading BOM.
        var text = String(decoding: bytes, as: UTF8.self)
        if text.unicodeScalars.first == "\u{FEFF}" { text.unicodeScalars.removeFirst() }
        let scalars = Array(text.unicodeScalars)
        var line: [Unicode.Scalar] = []
        var i = 0
        while i < scalars.count {
            let c = scalars[i]
            if c == "\r" || c == "\n" {
                process(line)
                line.removeAll()
                if c == "\r" && i + 1 < scalars.count && scalars[i + 1] == "\n" { i += 1 }
            } else {
                line.append(c)
            }
            i += 1
        }
        // Whatever is left in `line` is an incomplete line: discarded at end of stream.
    }

    private mutating func process(_ line: [Unicode.Scalar]) {
        if line.isEmpty { dispatch(); return }
        if line.first == ":" { comments += 1; return }
        let field: String
        var value: String
        if let colon = line.firstIndex(of: ":") {
            field = String(String.UnicodeScalarView(line[..<colon]))
            var rest = line[(colon + 1)...]
            if rest.first == " " { rest = rest.dropFirst() }
            value = String(String.UnicodeScalarView(rest))
        } else {
            field = String(String.UnicodeScalarView(line))
            value = ""
        }
        switch field {
        case "event": eventType = value
        case "data": dataBuffer += value; dataBuffer += "\n"
        case "id": if !value.unicodeScalars.contains("\u{0}") { lastEventIDBuffer = value }
        case "retry":
            if !value.isEmpty, value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = Int(value) { retry.append(n) }
        default: value = ""  // ignored
        }
    }

    private mutating func dispatch() {
        if dataBuffer.isEmpty { eventType = ""; return }
        if dataBuffer.unicodeScalars.last == "\n" { dataBuffer.unicodeScalars.removeLast() }
        events.append(ParsedSSEEvent(type: eventType.isEmpty ? "message" : eventType, data: dataBuffer, lastEventID: lastEventIDBuffer))
        dataBuffer = ""
        eventType = ""
    }
}

extension [UInt8] {
    var text: String { String(decoding: self, as: UTF8.self) }
}

func encode(_ id: EventID, _ name: String?, _ data: [UInt8]) -> [UInt8] {
    data.withUnsafeBytes { SSEEncoder.encode(id: id, name: name, data: $0).array }
}

func encode(_ id: EventID, _ name: String?, _ data: String) -> [UInt8] {
    encode(id, name, Array(data.utf8))
}

/// What a conforming client's `data` is for published bytes: every CRLF, CR and LF becomes LF.
func normalizedNewlines(_ s: String) -> String {
    var out = ""
    var it = Array(s.unicodeScalars)[...]
    while let c = it.popFirst() {
        if c == "\r" {
            if it.first == "\n" { it = it.dropFirst() }
            out += "\n"
        } else {
            out.unicodeScalars.append(c)
        }
    }
    return out
}

// MARK: - Tests

@Suite("SSEEncoder")
struct SSEEncoderTests {
    let id = EventID(milliseconds: 1_700_000_000_000, sequence: 3)

    @Test func exactBytesWithoutName() {
        #expect(encode(id, nil, "hello").text == "id: 1700000000000-3\ndata: hello\n\n")
    }

    @Test func exactBytesWithName() {
        #expect(encode(id, "update", "{\"a\":1}").text == "id: 1700000000000-3\nevent: update\ndata: {\"a\":1}\n\n")
    }

    @Test(arguments: ["a\rb", "a\r\nb", "a\nb"])
    func everyLineBreakSplitsData(_ data: String) {
        #expect(encode(id, nil, data).text == "id: 1700000000000-3\ndata: a\ndata: b\n\n")
    }

    @Test func mixedAndRepeatedLineBreaks() {
        #expect(encode(id, nil, "a\r\r\nb\n\rc").text == "id: 1700000000000-3\ndata: a\ndata: \ndata: b\ndata: \ndata: c\n\n")
        #expect(encode(id, nil, "\n").text == "id: 1700000000000-3\ndata: \ndata: \n\n")
    }

    @Test func trailingNewline() {
        let bytes = encode(id, nil, "a\n")
        #expect(bytes.text == "id: 1700000000000-3\ndata: a\ndata: \n\n")
        #expect(SSEParser.parse(bytes).events == [ParsedSSEEvent(type: "message", data: "a\n", lastEventID: "1700000000000-3")])
    }

    @Test func emptyData() {
        let bytes = encode(id, nil, "")
        #expect(bytes.text == "id: 1700000000000-3\ndata: \n\n")
        #expect(SSEParser.parse(bytes).events == [ParsedSSEEvent(type: "message", data: "", lastEventID: "1700000000000-3")])
    }

    @Test func leadingSpaceAndColonsSurvive() {
        let data = "  : x: y :"
        let bytes = encode(id, "t", data)
        #expect(bytes.text == "id: 1700000000000-3\nevent: t\ndata:   : x: y :\n\n")
        #expect(SSEParser.parse(bytes).events == [ParsedSSEEvent(type: "t", data: data, lastEventID: "1700000000000-3")])
    }

    @Test func encodedEventCarriesSSEBytes() {
        let e = EncodedEvent(id: id, topic: "t", name: "n", data: SharedBytes(string: "x\ny"))
        #expect(e.sse.array.text == "id: 1700000000000-3\nevent: n\ndata: x\ndata: y\n\n")
        #expect(e.data.array.text == "x\ny")
        #expect(e.retainedBytes == e.sse.count + 3 + 64)
    }

    @Test func preludeAndHeartbeat() {
        let prelude = SSEEncoder.prelude(retryMilliseconds: 2500)
        #expect(prelude.text == "retry: 2500\n: pushd stream open\n\n")
        let p = SSEParser.parse(prelude + SSEEncoder.heartbeat + encode(id, nil, "x"))
        #expect(p.retry == [2500])
        #expect(p.comments == 2)
        #expect(p.events == [ParsedSSEEvent(type: "message", data: "x", lastEventID: "1700000000000-3")])
    }

    /// Random data from an alphabet rich in what breaks framing; the client must see exactly the
    /// data with line breaks normalized to LF, the id and the type, for every event.
    @Test func randomRoundTrip() {
        var rng = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = Array("\r\n\r\n: :a b\tz0".utf8) + [UInt8(ascii: "\r"), 0x0A, UInt8(ascii: ":"), 0x20]
        var stream: [UInt8] = []
        var expected: [ParsedSSEEvent] = []
        var gen = EventIDGenerator()
        for n in 0..<2000 {
            let length = Int.random(in: 0...24, using: &rng)
            let data = (0..<length).map { _ in alphabet.randomElement(using: &rng)! }
            let name: String? = n % 3 == 0 ? nil : "type\(n % 5)"
            let eid = gen.next(nowMilliseconds: UInt64(n / 4))
            stream += encode(eid, name, data)
            expected.append(ParsedSSEEvent(type: name ?? "message", data: normalizedNewlines(data.text), lastEventID: eid.description))
        }
        let parsed = SSEParser.parse(stream).events
        #expect(parsed.count == expected.count)
        expectSame(parsed, expected)
    }

    @Test func gapSignalIsAnSSEEventWithJSONData() throws {
        let bytes = SSEEncoder.gap(lastEventID: "12-3", oldestRetained: EventID(milliseconds: 20, sequence: 0))
        #expect(bytes.text == "event: pushd.gap\ndata: {\"last_event_id\":\"12-3\",\"oldest_retained\":\"20-0\"}\n\n")
        let events = SSEParser.parse(bytes).events
        #expect(events.count == 1)
        #expect(events.first?.type == "pushd.gap")
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(events[0].data.utf8)) as? [String: String])
        #expect(json == ["last_event_id": "12-3", "oldest_retained": "20-0"])
    }

    @Test(arguments: ["", "garbage", "a\"b\\c", "line\nbreak\r\n", "tab\there", "\u{1}\u{1f}\u{7f}", "é日本🙂", "</script>"])
    func gapSignalEscapesAnyCursor(_ cursor: String) throws {
        let bytes = SSEEncoder.gap(lastEventID: cursor, oldestRetained: nil)
        let events = SSEParser.parse(bytes).events
        #expect(events.count == 1)
        #expect(events.first?.type == "pushd.gap")
        let data = try #require(events.first?.data)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: String])
        #expect(json == ["last_event_id": cursor, "oldest_retained": ""])
    }

    @Test func jsonQuoted() {
        #expect(JSON.quoted("") == "\"\"")
        #expect(JSON.quoted("a\"b\\c") == "\"a\\\"b\\\\c\"")
        #expect(JSON.quoted("\n\r\t") == "\"\\n\\r\\t\"")
        #expect(JSON.quoted("\u{0}\u{1f}") == "\"\\u0000\\u001f\"")
        #expect(JSON.quoted("é") == "\"é\"")
    }
}
