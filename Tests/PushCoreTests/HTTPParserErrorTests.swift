import Testing

@testable import PushCore

struct ErrorCase: Sendable, CustomTestStringConvertible {
    var name: String
    var raw: [UInt8]
    var error: HTTPParseError
    var status: Int
    var limits = HTTPParserLimits()
    var testDescription: String { name }

    init(_ name: String, _ raw: String, _ error: HTTPParseError, _ status: Int, limits: HTTPParserLimits = .init()) {
        self.init(name, httpBytes(raw), error, status, limits: limits)
    }

    init(_ name: String, _ raw: [UInt8], _ error: HTTPParseError, _ status: Int, limits: HTTPParserLimits = .init()) {
        self.name = name
        self.raw = raw
        self.error = error
        self.status = status
        self.limits = limits
    }
}

private let chunkedHead = "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
private var smallBody: HTTPParserLimits {
    var l = HTTPParserLimits()
    l.maxBodyBytes = 10
    return l
}
private var shortExtensions: HTTPParserLimits {
    var l = HTTPParserLimits()
    l.maxChunkExtensionBytes = 8
    return l
}

let httpErrorCases: [ErrorCase] = [
    // Line structure.
    ErrorCase("bare LF after request line", "GET / HTTP/1.1\nHost: h\r\n\r\n", .bareLineFeed, 400),
    ErrorCase("bare LF after field line", "GET / HTTP/1.1\r\nHost: h\n\r\n", .bareLineFeed, 400),
    ErrorCase("bare LF as the empty line", "GET / HTTP/1.1\r\nHost: h\r\n\n", .bareLineFeed, 400),
    ErrorCase("bare LF as a leading empty line", "\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", .bareLineFeed, 400),
    ErrorCase("bare CR in a value", "GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", .bareCarriageReturn, 400),
    ErrorCase("bare CR in the request line", "GET /\r HTTP/1.1\r\nHost: h\r\n\r\n", .bareCarriageReturn, 400),
    ErrorCase("obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n  folded\r\n\r\n", .obsoleteLineFolding, 400),
    ErrorCase("obs-fold with tab", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n\tfolded\r\n\r\n", .obsoleteLineFolding, 400),
    ErrorCase("whitespace after request line", "GET / HTTP/1.1\r\n Host: h\r\n\r\n", .obsoleteLineFolding, 400),
    ErrorCase("too many empty lines", String(repeating: "\r\n", count: 9) + "GET / HTTP/1.1\r\nHost: h\r\n\r\n", .tooManyEmptyLines, 400),
    // Request line.
    ErrorCase("no version", "GET /\r\n\r\n", .badRequestLine, 400),
    ErrorCase("method only", "GET\r\n\r\n", .badRequestLine, 400),
    ErrorCase("double SP", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", .badRequestLine, 400),
    ErrorCase("leading SP", " GET / HTTP/1.1\r\nHost: h\r\n\r\n", .badRequestLine, 400),
    ErrorCase("trailing SP", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", .badVersion, 400),
    ErrorCase("method not a token", "GE(T / HTTP/1.1\r\nHost: h\r\n\r\n", .badMethod, 400),
    ErrorCase("tab separator", "GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", .badMethod, 400),
    ErrorCase("TLS on a plain port", [0x16, 0x03, 0x01, 0x00, 0x20, 0x01, 0x0D, 0x0A, 0x0D, 0x0A], .badMethod, 400),
    ErrorCase("target with control byte", "GET /a\u{01}b HTTP/1.1\r\nHost: h\r\n\r\n", .badRequestTarget, 400),
    ErrorCase("target with DEL", "GET /a\u{7F} HTTP/1.1\r\nHost: h\r\n\r\n", .badRequestTarget, 400),
    ErrorCase("target with non-ASCII", "GET /caf\u{E9} HTTP/1.1\r\nHost: h\r\n\r\n", .badRequestTarget, 400),
    ErrorCase("relative target", "GET topics HTTP/1.1\r\nHost: h\r\n\r\n", .badRequestTarget, 400),
    ErrorCase("asterisk with GET", "GET * HTTP/1.1\r\nHost: h\r\n\r\n", .badRequestTarget, 400),
    ErrorCase("authority-form", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n", .badRequestTarget, 400),
    ErrorCase("ftp absolute-form", "GET ftp://example.com/ HTTP/1.1\r\nHost: h\r\n\r\n", .badRequestTarget, 400),
    ErrorCase("absolute-form with userinfo", "GET http://u@example.com/ HTTP/1.1\r\nHost: h\r\n\r\n", .badRequestTarget, 400),
    ErrorCase("absolute-form without host", "GET http:///p HTTP/1.1\r\nHost: h\r\n\r\n", .badRequestTarget, 400),
    ErrorCase("lowercase version", "GET / http/1.1\r\nHost: h\r\n\r\n", .badVersion, 400),
    ErrorCase("two-digit minor", "GET / HTTP/1.10\r\nHost: h\r\n\r\n", .badVersion, 400),
    ErrorCase("no minor", "GET / HTTP/1\r\nHost: h\r\n\r\n", .badVersion, 400),
    ErrorCase("HTTP/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", .unsupportedVersion, 505),
    ErrorCase("HTTP/1.2", "GET / HTTP/1.2\r\nHost: h\r\n\r\n", .unsupportedVersion, 505),
    ErrorCase("HTTP/0.9", "GET / HTTP/0.9\r\nHost: h\r\n\r\n", .unsupportedVersion, 505),
    // Field lines.
    ErrorCase("space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", .badHeaderName, 400),
    ErrorCase("empty field name", "GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", .badHeaderName, 400),
    ErrorCase("field name not a token", "GET / HTTP/1.1\r\nHost: h\r\nX(y): v\r\n\r\n", .badHeaderName, 400),
    ErrorCase("field line without colon", "GET / HTTP/1.1\r\nHost: h\r\nnocolon\r\n\r\n", .badHeaderName, 400),
    ErrorCase("NUL in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\u{0}b\r\n\r\n", .badHeaderValue, 400),
    ErrorCase("control byte in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\u{1B}b\r\n\r\n", .badHeaderValue, 400),
    ErrorCase("missing Host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", .missingHost, 400),
    ErrorCase("two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", .duplicateHost, 400),
    ErrorCase("Host list", "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", .badHost, 400),
    ErrorCase("Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", .badHost, 400),
    ErrorCase("Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", .badHost, 400),
    ErrorCase("Host with path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", .badHost, 400),
    ErrorCase("TLS ClientHello, no line end", [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03], .badMethod, 400),
    ErrorCase("method with CR inside", "GE\rT / HTTP/1.1\r\nHost: h\r\n\r\n", .bareCarriageReturn, 400),
    ErrorCase("method CR then junk", "GE\r(T / HTTP/1.1\r\nHost: h\r\n\r\n", .bareCarriageReturn, 400),
    ErrorCase("two Host fields in HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n", .duplicateHost, 400),
    // Framing.
    ErrorCase(
        "Content-Length with Transfer-Encoding",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        .contentLengthWithTransferEncoding, 400),
    ErrorCase(
        "Transfer-Encoding before Content-Length",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        .contentLengthWithTransferEncoding, 400),
    ErrorCase("different Content-Lengths", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", .duplicateContentLength, 400),
    ErrorCase("different Content-Length list", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 4\r\n\r\nabcd", .duplicateContentLength, 400),
    ErrorCase("Content-Length not digits", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n", .badContentLength, 400),
    ErrorCase("negative Content-Length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", .badContentLength, 400),
    ErrorCase("signed Content-Length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n", .badContentLength, 400),
    ErrorCase("hex Content-Length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\n", .badContentLength, 400),
    ErrorCase("empty Content-Length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", .badContentLength, 400),
    ErrorCase("Content-Length with inner space", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n", .badContentLength, 400),
    ErrorCase("Content-Length empty list element", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,\r\n\r\n", .badContentLength, 400),
    ErrorCase("Transfer-Encoding gzip", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", .unsupportedTransferEncoding, 501),
    ErrorCase("Transfer-Encoding gzip, chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", .unsupportedTransferEncoding, 501),
    ErrorCase("Transfer-Encoding chunked, chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", .unsupportedTransferEncoding, 501),
    ErrorCase(
        "two Transfer-Encoding fields", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        .unsupportedTransferEncoding, 501),
    ErrorCase("Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", .transferEncodingInHTTP10, 400),
    ErrorCase("10 GB Content-Length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10000000000\r\n\r\nabc", .payloadTooLarge, 413),
    ErrorCase(
        "Content-Length overflowing Int", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999999\r\n\r\n",
        .payloadTooLarge, 413),
    // Chunked.
    ErrorCase("chunk size not hex", chunkedHead + "zz\r\n", .badChunkSize, 400),
    ErrorCase("empty chunk size", chunkedHead + "\r\nabc\r\n", .badChunkSize, 400),
    ErrorCase("chunk size then junk", chunkedHead + "5 x\r\nhello\r\n0\r\n\r\n", .badChunkSize, 400),
    ErrorCase("chunk size then garbage byte", chunkedHead + "5x\r\nhello\r\n0\r\n\r\n", .badChunkSize, 400),
    ErrorCase("negative chunk size", chunkedHead + "-5\r\nhello\r\n0\r\n\r\n", .badChunkSize, 400),
    ErrorCase("chunk size with bare LF", chunkedHead + "5\nhello\r\n0\r\n\r\n", .bareLineFeed, 400),
    ErrorCase("chunk size CR without LF", chunkedHead + "5\rhello\r\n0\r\n\r\n", .bareCarriageReturn, 400),
    ErrorCase("17 hex digits", chunkedHead + "00000000000000001\r\nx\r\n0\r\n\r\n", .chunkSizeTooLarge, 400),
    ErrorCase("16 hex digits over the body limit", chunkedHead + "ffffffffffffffff\r\nx\r\n0\r\n\r\n", .payloadTooLarge, 413),
    ErrorCase("chunk data without CRLF", chunkedHead + "5\r\nhelloXX0\r\n\r\n", .badChunkTerminator, 400),
    ErrorCase("chunk data with bare LF", chunkedHead + "5\r\nhello\n0\r\n\r\n", .badChunkTerminator, 400),
    ErrorCase("chunk data too long", chunkedHead + "3\r\nhello\r\n0\r\n\r\n", .badChunkTerminator, 400),
    ErrorCase("control byte in chunk extension", chunkedHead + "5;a=\u{1}\r\nhello\r\n0\r\n\r\n", .badChunkExtension, 400),
    ErrorCase("bare LF after chunk extension", chunkedHead + "5;a\nhello\r\n0\r\n\r\n", .bareLineFeed, 400),
    ErrorCase("chunk extension over limit", chunkedHead + "5;abcdefghi\r\nhello\r\n0\r\n\r\n", .chunkExtensionTooLong, 400, limits: shortExtensions),
    ErrorCase("whitespace before extension over limit", chunkedHead + "5         ;a\r\nhello\r\n0\r\n\r\n", .chunkExtensionTooLong, 400, limits: shortExtensions),
    ErrorCase("chunked total over the body limit", chunkedHead + "5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n", .payloadTooLarge, 413, limits: smallBody),
    ErrorCase("bad trailer name", chunkedHead + "0\r\nBad Name: x\r\n\r\n", .badHeaderName, 400),
    ErrorCase("folded trailer", chunkedHead + "0\r\nA: x\r\n y\r\n\r\n", .obsoleteLineFolding, 400),
    ErrorCase("trailer with bare LF", chunkedHead + "0\r\nA: x\n\r\n", .bareLineFeed, 400),
]

@Suite("HTTPRequestParser: malformed and oversized requests")
struct HTTPParserErrorTests {
    @Test(arguments: httpErrorCases)
    func reportsTheExactError(_ c: ErrorCase) {
        let events = collect(c.raw, limits: c.limits)
        #expect(finalError(events) == c.error)
        #expect(c.error.status == c.status)
        // Exactly one error, at the end; nothing is reported after it.
        #expect(events.filter { if case .error = $0 { true } else { false } }.count == 1)
    }

    @Test(arguments: httpErrorCases)
    func anySplitReportsTheSameError(_ c: ErrorCase) {
        let reference = collect(c.raw, limits: c.limits)
        var mismatches: [Int] = []
        for cut in 1..<c.raw.count where collect(c.raw, cuts: [cut], limits: c.limits) != reference {
            mismatches.append(cut)
        }
        #expect(mismatches == [])
        #expect(collect(c.raw, cuts: Array(0..<c.raw.count), limits: c.limits) == reference)
    }

    @Test func tenGigabyteContentLengthFailsRightAfterTheHead() {
        let headPart = "POST /topics/a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 10000000000\r\n\r\n"
        let input = httpBytes(headPart + "body bytes that must not be read")
        var parser = HTTPRequestParser()
        input.withUnsafeBytes { raw in
            // The error takes the head's place: consumed ends exactly at the head, no body byte.
            let r1 = parser.parse(raw)
            #expect(r1.consumed == headPart.utf8.count)
            #expect(r1.event == .error(.payloadTooLarge))
            let rest = UnsafeRawBufferPointer(rebasing: raw[r1.consumed...])
            #expect(parser.parse(rest) == (0, .error(.payloadTooLarge)))
        }
        // Cut one byte before the end of the head, nothing is decided yet.
        var cutParser = HTTPRequestParser()
        let early = Array(input[..<(headPart.utf8.count - 1)]).withUnsafeBytes { cutParser.parse($0) }
        #expect(early.event == .needMoreData)
        #expect(collect(input) == [.error(.payloadTooLarge)])
    }

    @Test func contentLengthAtTheLimitIsAccepted() {
        var limits = HTTPParserLimits()
        limits.maxBodyBytes = 5
        let ok = collect(httpBytes("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"), limits: limits)
        #expect(finalError(ok) == nil)
        #expect(ok.last == .end)
        let over = collect(httpBytes("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\nhello!"), limits: limits)
        #expect(over == [.error(.payloadTooLarge)])
        // Chunked: exactly the limit over several chunks is fine, one byte more is not.
        let chunkedOK = collect(httpBytes(chunkedHead + "2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n"), limits: limits)
        #expect(chunkedOK.contains(.body(httpBytes("hello"))))
        #expect(chunkedOK.last == .end)
        let chunkedOver = collect(httpBytes(chunkedHead + "2\r\nhe\r\n4\r\nllo!\r\n0\r\n\r\n"), limits: limits)
        #expect(finalError(chunkedOver) == .payloadTooLarge)
        #expect(chunkedOver.contains(.body(httpBytes("he"))))
        #expect(!chunkedOver.contains(.body(httpBytes("hello!"))))
    }

    @Test func hundredKilobyteHeaderIs431WithoutBufferingIt() {
        let big = String(repeating: "a", count: 100 * 1024)
        let input = httpBytes("GET / HTTP/1.1\r\nHost: h\r\nX-Big: \(big)\r\n\r\n")
        #expect(finalError(collect(input)) == .headersTooLarge)
        #expect(HTTPParseError.headersTooLarge.status == 431)
        // Fed in 1 KiB reads, the error comes as soon as the limit is crossed.
        var parser = HTTPRequestParser()
        var fed = 0
        var failedAfter: Int?
        while fed < input.count, failedAfter == nil {
            let piece = Array(input[fed..<min(fed + 1024, input.count)])
            fed += piece.count
            let event = piece.withUnsafeBytes { parser.parse($0).event }
            if event == .error(.headersTooLarge) { failedAfter = fed }
        }
        #expect(failedAfter != nil)
        #expect((failedAfter ?? .max) <= HTTPParserLimits().maxHeaderBytes + 1024)
        #expect(!parser.hasPartialHead && !parser.isIdle)
    }

    @Test func headerSectionSizeBoundary() {
        var limits = HTTPParserLimits()
        limits.maxHeaderBytes = 40
        // "Host: h\r\n" (9) + "X: " + value + "\r\n" + final "\r\n" (2) == 40 → value of 24 bytes.
        let exact = "GET / HTTP/1.1\r\nHost: h\r\nX: \(String(repeating: "v", count: 24))\r\n\r\n"
        #expect(parseHead(exact, limits: limits) != nil)
        let over = "GET / HTTP/1.1\r\nHost: h\r\nX: \(String(repeating: "v", count: 25))\r\n\r\n"
        #expect(finalError(collect(httpBytes(over), limits: limits)) == .headersTooLarge)
    }

    @Test func requestLineOverTheLimitIs414() {
        let longTarget = "/" + String(repeating: "t", count: 9000)
        let events = collect(httpBytes("GET \(longTarget) HTTP/1.1\r\nHost: h\r\n\r\n"))
        #expect(finalError(events) == .uriTooLong)
        #expect(HTTPParseError.uriTooLong.status == 414)
        // Boundary: a request line of exactly maxRequestLineBytes is fine, one more byte is not.
        var limits = HTTPParserLimits()
        limits.maxRequestLineBytes = 20
        #expect(parseHead("GET /012345 HTTP/1.1\r\nHost: h\r\n\r\n", limits: limits) != nil)  // 20 bytes
        let over = httpBytes("GET /0123456 HTTP/1.1\r\nHost: h\r\n\r\n")  // 21 bytes
        #expect(finalError(collect(over, limits: limits)) == .uriTooLong)
        #expect(finalError(collectBytewise(over, limits: limits)) == .uriTooLong)
        // Without any line end the parser gives up once the limit is passed.
        let endless = httpBytes("GET /" + String(repeating: "x", count: 100))
        #expect(finalError(collect(endless, limits: limits)) == .uriTooLong)
    }

    @Test func headerCountLimit() {
        var limits = HTTPParserLimits()
        limits.maxHeaderCount = 100
        func request(fields: Int) -> String {
            "GET / HTTP/1.1\r\nHost: h\r\n" + (1..<fields).map { "X-\($0): v\r\n" }.joined() + "\r\n"
        }
        #expect(parseHead(request(fields: 100), limits: limits)?.headers.count == 100)
        #expect(finalError(collect(httpBytes(request(fields: 101)), limits: limits)) == .tooManyHeaders)
        #expect(HTTPParseError.tooManyHeaders.status == 431)
    }

    @Test func trailerLimits() {
        var limits = HTTPParserLimits()
        limits.maxHeaderBytes = 60  // the head's section is 39 bytes
        limits.maxHeaderCount = 2  // Host and Transfer-Encoding
        let bigTrailer = chunkedHead + "0\r\nX-Trailer: \(String(repeating: "t", count: 60))\r\n\r\n"
        #expect(finalError(collect(httpBytes(bigTrailer), limits: limits)) == .trailersTooLarge)
        let manyTrailers = chunkedHead + "0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"
        #expect(finalError(collect(httpBytes(manyTrailers), limits: limits)) == .trailersTooLarge)
        let fine = chunkedHead + "0\r\nA: 1\r\nB: 2\r\n\r\n"
        #expect(collect(httpBytes(fine), limits: limits).last == .end)
    }

    @Test func nonHTTPBytesFailAtTheFirstByte() {
        var parser = HTTPRequestParser()
        let result = [UInt8(0x16)].withUnsafeBytes { parser.parse($0) }
        #expect(result.event == .error(.badMethod))
        // A valid method prefix keeps waiting.
        var waiting = HTTPRequestParser()
        #expect(httpBytes("PROPFI").withUnsafeBytes { waiting.parse($0) } == (6, .needMoreData))
        #expect(waiting.hasPartialHead)
    }

    @Test func longMethodWithBadByteBeyondTheLimitIs414UnderAnySplit() {
        var limits = HTTPParserLimits()
        limits.maxRequestLineBytes = 16
        for badAt in 14...20 {
            var raw = [UInt8](repeating: UInt8(ascii: "A"), count: 24)
            raw[badAt] = UInt8(ascii: "(")
            raw += httpBytes(" / HTTP/1.1\r\nHost: h\r\n\r\n")
            let reference = collect(raw, limits: limits)
            #expect(finalError(reference) == (badAt <= 17 ? .badMethod : .uriTooLong), "bad byte at \(badAt)")
            for cut in 1..<raw.count {
                #expect(collect(raw, cuts: [cut], limits: limits) == reference, "bad byte at \(badAt), cut at \(cut)")
            }
        }
    }

    @Test func validHostValues() {
        for host in ["example.com", "example.com:8080", "[::1]:8080", "127.0.0.1", "xn--bcher-kva.example", ""] {
            #expect(parseHead("GET / HTTP/1.1\r\nHost: \(host)\r\n\r\n")?.headers["host"] == host)
        }
    }

    @Test func longLinesDoNotPinMemory() {
        // A 10 KiB field line cut in two reads grows the line buffer; it is released afterwards.
        let input = httpBytes("GET / HTTP/1.1\r\nHost: h\r\nX-Big: \(String(repeating: "b", count: 10240))\r\n\r\n")
        var parser = HTTPRequestParser()
        let cut = 5000
        let first = Array(input[..<cut]).withUnsafeBytes { parser.parse($0) }
        #expect(first.event == .needMoreData)
        #expect(parser.line.capacity >= 4096)
        let second = Array(input[cut...]).withUnsafeBytes { parser.parse($0) }
        if case .head(let head) = second.event {
            #expect(head.headers["x-big"]?.utf8.count == 10240)
        } else {
            Issue.record("expected head, got \(second.event)")
        }
        #expect(parser.line.capacity <= 4096)
    }

    @Test func leadingEmptyLinesAtTheLimit() {
        let eight = String(repeating: "\r\n", count: 8) + "GET / HTTP/1.1\r\nHost: h\r\n\r\n"
        #expect(parseHead(eight) != nil)
    }

    @Test func deadParserStaysDead() {
        var parser = HTTPRequestParser()
        let bad = httpBytes("GET / HTTP/1.1\nHost: h\r\n\r\n")
        #expect(bad.withUnsafeBytes { parser.parse($0).event } == .error(.bareLineFeed))
        let good = httpBytes("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        let again = good.withUnsafeBytes { parser.parse($0) }
        #expect(again.consumed == 0)
        #expect(again.event == .error(.bareLineFeed))
        #expect(!parser.isIdle && !parser.hasPartialHead)
    }

    @Test func errorCodesAndMessages() {
        let all = HTTPParseError.allCases
        #expect(Set(all.map(\.code)).count == all.count, "codes must be distinct")
        for error in all {
            #expect(error.code.allSatisfy { $0.isLowercase || $0 == "_" || $0.isNumber }, "\(error.code)")
            #expect(error.message.contains("RFC"), "\(error) message cites no RFC")
            #expect([400, 413, 414, 431, 501, 505].contains(error.status))
        }
        #expect(HTTPParseError.badRequestLine.code == "bad_request_line")
        #expect(HTTPParseError.unsupportedTransferEncoding.status == 501)
        #expect(HTTPParseError.unsupportedVersion.status == 505)
        #expect(HTTPParseError.payloadTooLarge.status == 413)
        #expect(HTTPParseError.missingHost.status == 400)
    }
}
