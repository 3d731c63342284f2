import Testing

@testable import PushCore

/// A request (or several pipelined) and what must come out of it.
struct CorpusEntry: Sendable, CustomTestStringConvertible {
    var name: String
    var raw: String
    /// Per request in order: path and body.
    var expected: [(path: String, body: String)]
    var testDescription: String { name }
}

let httpCorpus: [CorpusEntry] = [
    CorpusEntry(
        name: "simple GET",
        raw: "GET /healthz HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
        expected: [("/healthz", "")]),
    CorpusEntry(
        name: "POST with Content-Length",
        raw:
            "POST /topics/news?event=update HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 26\r\nIdempotency-Key: k-1\r\n\r\nabcdefghijklmnopqrstuvwxyz",
        expected: [("/topics/news", "abcdefghijklmnopqrstuvwxyz")]),
    CorpusEntry(
        name: "chunked with extensions and trailers",
        raw:
            "POST /topics/c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1 ;x;y=\"z\"\r\n \r\nA\r\n0123456789\r\n0;final\r\nX-Trailer: t\r\n\r\n",
        expected: [("/topics/c", "hello 0123456789")]),
    CorpusEntry(
        name: "chunked uppercase hex, empty trailer section",
        raw:
            "PUT /x HTTP/1.1\r\nHost: h\r\ntransfer-encoding: CHUNKED\r\n\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n000\r\n\r\n",
        expected: [("/x", "abcdefghijklmnopqrstuvwxyz")]),
    CorpusEntry(
        name: "pipelined GET, chunked POST, Content-Length POST",
        raw:
            "GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\nPOST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyzGET /d HTTP/1.1\r\nHost: h\r\n\r\n",
        expected: [("/a", ""), ("/b", "hi"), ("/c", "xyz"), ("/d", "")]),
    CorpusEntry(
        name: "HTTP/1.0 keep-alive without Host",
        raw: "GET /subscribe?topic=a&topic=b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        expected: [("/subscribe", "")]),
    CorpusEntry(
        name: "leading empty lines and OPTIONS *",
        raw: "\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
        expected: [("*", "")]),
    CorpusEntry(
        name: "absolute-form target",
        raw: "GET http://example.com/topics/a?last_event_id=1-0 HTTP/1.1\r\nHost: example.com\r\n\r\n",
        expected: [("/topics/a", "")]),
    CorpusEntry(
        name: "WebSocket upgrade",
        raw:
            "GET /topics/a?format=raw HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        expected: [("/topics/a", "")]),
    CorpusEntry(
        name: "Expect 100-continue with body containing CRLFs",
        raw:
            "POST /topics/e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n\r\n\r\n\r\n\r\n\r\n",
        expected: [("/topics/e", "\r\n\r\n\r\n\r\n\r\n")]),
    CorpusEntry(
        name: "POST after chunked POST with trailers, then GET",
        raw:
            "POST /1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\none\r\n0\r\nA: b\r\n\r\nPOST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n",
        expected: [("/1", "one"), ("/2", ""), ("/3", "")]),
]

@Suite("HTTPRequestParser: any split of the input gives the same result")
struct HTTPParserSplitTests {
    @Test(arguments: httpCorpus)
    func unsplitMatchesExpectation(_ entry: CorpusEntry) {
        let events = collect(httpBytes(entry.raw))
        #expect(finalError(events) == nil)
        // Group: head, optional body, end.
        var requests: [(path: String, body: String)] = []
        var sawEnd = true
        for event in events {
            switch event {
            case .head(let head):
                #expect(sawEnd, "head before the previous end")
                sawEnd = false
                requests.append((head.path, ""))
            case .body(let bytes):
                requests[requests.count - 1].body += String(decoding: bytes, as: UTF8.self)
            case .end:
                sawEnd = true
            case .error(let error):
                Issue.record("unexpected \(error)")
            }
        }
        #expect(sawEnd)
        #expect(requests.map(\.path) == entry.expected.map(\.path))
        #expect(requests.map(\.body) == entry.expected.map(\.body))
    }

    @Test(arguments: httpCorpus)
    func everySplitOffsetMatchesUnsplit(_ entry: CorpusEntry) {
        let input = httpBytes(entry.raw)
        let reference = collect(input)
        var mismatches: [Int] = []
        for cut in 1..<input.count where collect(input, cuts: [cut]) != reference {
            mismatches.append(cut)
        }
        #expect(mismatches == [], "splitting at these offsets changed the result")
    }

    @Test(arguments: httpCorpus)
    func oneByteAtATimeMatchesUnsplit(_ entry: CorpusEntry) {
        let input = httpBytes(entry.raw)
        #expect(collectBytewise(input) == collect(input))
    }

    @Test(arguments: httpCorpus)
    func everyPairOfSplitsMatchesUnsplit(_ entry: CorpusEntry) {
        let input = httpBytes(entry.raw)
        guard input.count <= 200 else { return }
        let reference = collect(input)
        var mismatches = 0
        for a in 1..<input.count {
            for b in stride(from: a + 1, to: input.count, by: 3) where collect(input, cuts: [a, b]) != reference {
                mismatches += 1
            }
        }
        #expect(mismatches == 0)
    }

    @Test func wholeCorpusPipelinedInRandomPieces() {
        // Every corpus entry back to back on one connection, cut into random pieces.
        let input = httpCorpus.flatMap { httpBytes($0.raw) }
        let reference = collect(input)
        #expect(heads(reference).count == httpCorpus.map(\.expected.count).reduce(0, +))
        var rng = SplitMix64(seed: 0x5EED)
        for _ in 0..<200 {
            var cuts: [Int] = []
            var at = 0
            while at < input.count {
                at += Int(rng.next() % 40) + 1
                cuts.append(at)
            }
            #expect(collect(input, cuts: cuts) == reference)
        }
    }
}

/// A tiny deterministic PRNG so failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
