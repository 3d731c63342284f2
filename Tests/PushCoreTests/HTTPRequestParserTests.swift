import Testing

@testable import PushCore

@Suite("HTTPRequestParser: requests that parse")
struct HTTPRequestParserTests {
    @Test func simpleGET() throws {
        let input = httpBytes(
            "GET /subscribe?topic=a&topic=b HTTP/1.1\r\nHost: example.com\r\nAccept: text/event-stream\r\nX-Empty:\r\nX-Pad: \t padded value \t\r\n\r\n"
        )
        var parser = HTTPRequestParser()
        #expect(parser.isIdle)
        #expect(!parser.hasPartialHead)
        let first = input.withUnsafeBytes { parser.parse($0) }
        #expect(first.consumed == input.count)
        guard case .head(let head) = first.event else {
            Issue.record("expected a head, got \(first.event)")
            return
        }
        #expect(head.method == .get)
        #expect(head.target == "/subscribe?topic=a&topic=b")
        #expect(head.path == "/subscribe")
        #expect(head.query == "topic=a&topic=b")
        #expect(head.versionMinor == 1)
        #expect(head.framing == .none)
        #expect(head.keepAlive)
        #expect(!head.expectsContinue)
        #expect(head.headers.count == 4)
        #expect(head.headers["host"] == "example.com")
        #expect(head.headers["HOST"] == "example.com")
        #expect(head.headers["accept"] == "text/event-stream")
        #expect(head.headers["x-empty"] == "")
        #expect(head.headers["x-pad"] == "padded value")
        #expect(head.headers["missing"] == nil)
        #expect(head.headers.map(\.name) == ["Host", "Accept", "X-Empty", "X-Pad"])
        #expect(!parser.isIdle)  // .end still to report
        let second = parser.parse(UnsafeRawBufferPointer(start: nil, count: 0))
        #expect(second.consumed == 0)
        #expect(second.event == .end)
        #expect(parser.isIdle)
        let third = parser.parse(UnsafeRawBufferPointer(start: nil, count: 0))
        #expect(third.consumed == 0)
        #expect(third.event == .needMoreData)
    }

    @Test func postWithContentLength() throws {
        let headPart = "POST /topics/news?event=update HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n"
        let input = httpBytes(headPart + "hello world")
        var parser = HTTPRequestParser()
        try input.withUnsafeBytes { raw in
            let r1 = parser.parse(raw)
            #expect(r1.consumed == headPart.utf8.count)
            guard case .head(let head) = r1.event else { throw ParseFailure(event: r1.event) }
            #expect(head.method == .post)
            #expect(head.path == "/topics/news")
            #expect(head.query == "event=update")
            #expect(head.framing == .contentLength(11))
            let rest = UnsafeRawBufferPointer(rebasing: raw[r1.consumed...])
            let r2 = parser.parse(rest)
            #expect(r2.consumed == 11)
            #expect(r2.event == .body(0..<11))
            #expect(!parser.isIdle && !parser.hasPartialHead)
            let r3 = parser.parse(UnsafeRawBufferPointer(rebasing: rest[r2.consumed...]))
            #expect(r3.consumed == 0)
            #expect(r3.event == .end)
            #expect(parser.isIdle)
        }
        #expect(collect(input) == [.head(parseHead(headPart)!), .body(httpBytes("hello world")), .end])
    }

    @Test func contentLengthZeroHasNoBody() {
        let events = collect(httpBytes("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"))
        #expect(events.count == 2)
        #expect(heads(events).first?.framing == .contentLength(0))
        #expect(events.last == .end)
    }

    @Test func chunkedWithExtensionsAndTrailers() throws {
        let headPart = "POST /topics/t HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n"
        let bodyPart =
            "4;name=value\r\nWiki\r\n5 ; a=\"quoted;\\\"x\" ;b\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0;last\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n"
        let input = httpBytes(headPart + bodyPart)
        var parser = HTTPRequestParser()
        input.withUnsafeBytes { raw in
            let r1 = parser.parse(raw)
            #expect(r1.consumed == headPart.utf8.count)
            if case .head(let head) = r1.event {
                #expect(head.framing == .chunked)
            } else {
                Issue.record("expected head, got \(r1.event)")
            }
            // The first chunk's size line is consumed with its data; the range skips the framing.
            let rest = UnsafeRawBufferPointer(rebasing: raw[r1.consumed...])
            let r2 = parser.parse(rest)
            #expect(r2.event == .body(14..<18))
            #expect(r2.consumed == 18)
            #expect(Array(rest[14..<18]) == httpBytes("Wiki"))
        }
        #expect(
            collect(input) == [
                .head(parseHead(headPart + "0\r\n\r\n")!), .body(httpBytes("Wikipedia in\r\n\r\nchunks.")), .end,
            ])
    }

    @Test func chunkedBodyIsNeverBuffered() {
        // A 64 KiB chunk fed whole comes back as one range of the caller's buffer.
        let data = [UInt8](repeating: UInt8(ascii: "x"), count: 65536)
        let input =
            httpBytes("POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n10000\r\n") + data
            + httpBytes("\r\n0\r\n\r\n")
        var parser = HTTPRequestParser()
        input.withUnsafeBytes { raw in
            let head = parser.parse(raw)
            let rest = UnsafeRawBufferPointer(rebasing: raw[head.consumed...])
            let body = parser.parse(rest)
            #expect(body.event == .body(7..<(7 + 65536)))
            let tail = parser.parse(UnsafeRawBufferPointer(rebasing: rest[body.consumed...]))
            #expect(tail.event == .end)
            #expect(tail.consumed == 7)
        }
    }

    @Test func sixtyFourPipelinedPOSTs() {
        var input: [UInt8] = []
        for i in 0..<64 {
            let body = "event number \(i) " + String(repeating: "z", count: i)
            input += httpBytes(
                "POST /topics/t\(i) HTTP/1.1\r\nHost: h\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        }
        let events = collect(input)
        #expect(events.count == 64 * 3)
        for i in 0..<64 {
            guard events.count == 64 * 3 else { break }
            guard case .head(let head) = events[3 * i] else {
                Issue.record("event \(3 * i) is \(events[3 * i])")
                continue
            }
            #expect(head.path == "/topics/t\(i)")
            #expect(events[3 * i + 1] == .body(httpBytes("event number \(i) " + String(repeating: "z", count: i))))
            #expect(events[3 * i + 2] == .end)
        }
        #expect(collectBytewise(input) == events)
    }

    @Test func pipelinedRequestsWithAndWithoutBodies() {
        let input = httpBytes(
            "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
                + "POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                + "GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        let events = collect(input)
        #expect(heads(events).map(\.path) == ["/a", "/b", "/c"])
        #expect(heads(events).map(\.keepAlive) == [true, true, false])
        #expect(events.filter { $0 == .end }.count == 3)
        #expect(events.contains(.body(httpBytes("abc"))))
    }

    @Test func unknownAndCaseSensitiveMethods() {
        #expect(parseHead("PROPFIND /x HTTP/1.1\r\nHost: h\r\n\r\n")?.method == .other("PROPFIND"))
        #expect(parseHead("get /x HTTP/1.1\r\nHost: h\r\n\r\n")?.method == .other("get"))
        #expect(parseHead("M-SEARCH! /x HTTP/1.1\r\nHost: h\r\n\r\n")?.method == .other("M-SEARCH!"))
        let methods: [(String, HTTPMethod)] = [
            ("GET", .get), ("HEAD", .head), ("POST", .post), ("PUT", .put), ("DELETE", .delete),
            ("OPTIONS", .options), ("PATCH", .patch),
        ]
        for (token, method) in methods {
            #expect(parseHead("\(token) / HTTP/1.1\r\nHost: h\r\n\r\n")?.method == method)
            #expect(method.rawValue == token)
        }
    }

    @Test func requestTargetForms() {
        let absolute = parseHead("GET http://example.com:8080/topics/a?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n")
        #expect(absolute?.target == "http://example.com:8080/topics/a?x=1")
        #expect(absolute?.path == "/topics/a")
        #expect(absolute?.query == "x=1")
        let bare = parseHead("GET HTTPS://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n")
        #expect(bare?.path == "/")
        #expect(bare?.query == nil)
        let bareQuery = parseHead("GET http://example.com?q HTTP/1.1\r\nHost: example.com\r\n\r\n")
        #expect(bareQuery?.path == "/")
        #expect(bareQuery?.query == "q")
        let star = parseHead("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(star?.path == "*")
        #expect(star?.query == nil)
        let emptyQuery = parseHead("GET /p? HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(emptyQuery?.path == "/p")
        #expect(emptyQuery?.query == "")
        let encoded = parseHead("GET /topics/a%2Fb?x=%20&y=?z HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(encoded?.path == "/topics/a%2Fb")
        #expect(encoded?.query == "x=%20&y=?z")
    }

    @Test func keepAliveRules() {
        func keepAlive(_ version: String, _ extra: String) -> Bool? {
            parseHead("GET / HTTP/\(version)\r\nHost: h\r\n\(extra)\r\n")?.keepAlive
        }
        #expect(keepAlive("1.1", "") == true)
        #expect(keepAlive("1.1", "Connection: close\r\n") == false)
        #expect(keepAlive("1.1", "Connection: Upgrade, CLOSE\r\n") == false)
        #expect(keepAlive("1.1", "Connection: keep-alive\r\nConnection: close\r\n") == false)
        #expect(keepAlive("1.1", "Connection: closed\r\n") == true)
        #expect(keepAlive("1.0", "") == false)
        #expect(keepAlive("1.0", "Connection: keep-alive\r\n") == true)
        #expect(keepAlive("1.0", "Connection: Keep-Alive\r\n") == true)
        #expect(keepAlive("1.0", "Connection: keep-alive, close\r\n") == false)
        #expect(keepAlive("1.0", "Connection: keep-alive-ish\r\n") == false)
        // HTTP/1.0 needs no Host.
        #expect(parseHead("GET / HTTP/1.0\r\n\r\n")?.versionMinor == 0)
    }

    @Test func tokenLists() throws {
        let head = try #require(
            parseHead(
                "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nX-List: a ,\t b,,c , \r\nX-List: d\r\n\r\n"
            ))
        #expect(head.headers.containsToken("upgrade", in: "connection"))
        #expect(head.headers.containsToken("Keep-Alive", in: "CONNECTION"))
        #expect(!head.headers.containsToken("keep", in: "connection"))
        #expect(!head.headers.containsToken("close", in: "connection"))
        #expect(head.headers.containsToken("WebSocket", in: "upgrade"))
        for token in ["a", "b", "c", "d"] {
            #expect(head.headers.containsToken(token, in: "x-list"))
        }
        #expect(!head.headers.containsToken("", in: "x-list"))
        #expect(!head.headers.containsToken("a ,", in: "x-list"))
        #expect(!head.headers.containsToken("upgrade", in: "x-missing"))
        #expect(head.headers.values("x-list") == ["a ,\t b,,c ,", "d"])
        #expect(head.headers["x-list"] == "a ,\t b,,c ,")
        #expect(head.headers.values("nothing") == [])
    }

    @Test func expectContinue() {
        #expect(parseHead("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")?.expectsContinue == true)
        #expect(parseHead("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n")?.expectsContinue == true)
        #expect(parseHead("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\n")?.expectsContinue == false)
        #expect(parseHead("POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\n")?.expectsContinue == false)
        // RFC 9110 §10.1.1: a 100-continue expectation in HTTP/1.0 is ignored.
        #expect(parseHead("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")?.expectsContinue == false)
    }

    @Test func contentLengthRepeatsThatAgree() {
        #expect(parseHead("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n")?.framing == .contentLength(5))
        #expect(parseHead("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\ncontent-length: 005\r\n\r\n")?.framing == .contentLength(5))
    }

    @Test func leadingEmptyLinesAreSkipped() {
        let head = parseHead("\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(head?.path == "/x")
        // Between pipelined requests too (some clients send CRLF after a body).
        let events = collect(
            httpBytes("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"))
        #expect(heads(events).map(\.path) == ["/a", "/b"])
    }

    @Test func headerValuesKeepObsTextAndTabs() {
        var input = httpBytes("GET / HTTP/1.1\r\nHost: h\r\nX-Name: caf")
        input += [0xC3, 0xA9]
        input += httpBytes("\tend\r\n\r\n")
        let head = heads(collect(input)).first
        #expect(head?.headers["x-name"] == "café\tend")
    }

    @Test func idleAndPartialHeadTracking() {
        var parser = HTTPRequestParser()
        func feed(_ s: String) -> (Int, HTTPParserEvent) {
            httpBytes(s).withUnsafeBytes { parser.parse($0) }
        }
        #expect(parser.isIdle && !parser.hasPartialHead)
        #expect(feed("\r\n").1 == .needMoreData)
        #expect(parser.isIdle && !parser.hasPartialHead)  // empty lines are not a request yet
        #expect(feed("GE").1 == .needMoreData)
        #expect(!parser.isIdle && parser.hasPartialHead)
        #expect(feed("T / HTTP/1.1\r\nHost: h\r\n").1 == .needMoreData)
        #expect(parser.hasPartialHead)
        let (consumed, event) = feed("Content-Length: 2\r\n\r\nab")
        #expect(consumed == 21)
        if case .head = event {} else { Issue.record("expected head, got \(event)") }
        #expect(!parser.isIdle && !parser.hasPartialHead)  // reading the body
        #expect(feed("a").1 == .body(0..<1))
        #expect(feed("b").1 == .body(0..<1))
        #expect(!parser.isIdle)
        #expect(feed("").1 == .end)
        #expect(parser.isIdle && !parser.hasPartialHead)
    }

    @Test func limitsInitializer() {
        let limits = HTTPParserLimits(maxRequestLineBytes: 1, maxHeaderBytes: 2, maxHeaderCount: 3, maxBodyBytes: 4)
        #expect(limits.maxRequestLineBytes == 1)
        #expect(limits.maxHeaderBytes == 2)
        #expect(limits.maxHeaderCount == 3)
        #expect(limits.maxBodyBytes == 4)
        #expect(HTTPParserLimits() == HTTPParserLimits(maxRequestLineBytes: 8192, maxHeaderBytes: 16384, maxHeaderCount: 100, maxBodyBytes: 1 << 20))
    }
}

struct ParseFailure: Error {
    var event: HTTPParserEvent
}
