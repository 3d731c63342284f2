/// What one call of ``HTTPRequestParser/parse(_:)`` found.
public enum HTTPParserEvent: Equatable, Sendable {
    /// Every byte given was consumed (buffered or skipped) without completing anything; call again
    /// when more bytes arrive.
    case needMoreData
    /// A complete request head (RFC 9112 §2.1). The body, if any, follows as ``body(_:)`` events.
    case head(HTTPRequestHead)
    /// Body bytes: this range of the buffer passed to *this* call (offsets into that buffer,
    /// always below the returned `consumed`). The parser does not keep them: copy them before the
    /// buffer is reused. Chunked framing bytes never appear in a range.
    case body(Range<Int>)
    /// The current request's message is complete. Also emitted right after ``head(_:)`` when the
    /// request has no body. The parser is then ready for the next (pipelined) request.
    case end
    /// The request is malformed or over a limit. The parser is dead from now on and reports the
    /// same error on every call: answer with `error.status` and close the connection.
    case error(HTTPParseError)
}

/// An incremental, strict HTTP/1.1 request parser (RFC 9112): a pure state machine that consumes
/// bytes and reports events. It performs no I/O and never copies body bytes.
///
/// Bytes may arrive in any split, down to one byte per call. An incomplete head is buffered
/// internally (at most the current line, bounded by the limits); body bytes are reported as
/// ranges of the caller's buffer. One call reports at most one event, so the caller loops:
///
/// ```swift
/// var offset = 0
/// while true {
///     let (consumed, event) = parser.parse(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
///     // .body(range) is relative to bytes[offset...]: copy bytes[offset + range.lowerBound ..< offset + range.upperBound]
///     offset += consumed
///     if event == .needMoreData { break }   // offset == bytes.count: read more from the socket
///     if case .error = event { break }      // answer error.status and close
///     handle(event)
/// }
/// ```
///
/// Policy (RFC 9112 unless noted):
/// - Request line `method SP request-target SP HTTP-version CRLF` with single SPs (§3). The
///   target is origin-form (`/…`), `*` for `OPTIONS`, or absolute-form with an http/https scheme
///   whose path is taken (§3.2). Only HTTP/1.0 and HTTP/1.1; other versions are 505.
/// - Every line ends in CRLF: a bare LF or bare CR anywhere in the head is a 400 (§2.2). Up to
///   ``HTTPParserLimits/maxLeadingEmptyLines`` empty lines before a request line are skipped (§2.2).
/// - Field names are tokens directly followed by `:` (§5.1); values are OWS-trimmed and may hold
///   obs-text but no control byte except HTAB; obsolete line folding is a 400 (§5.2). Values are
///   decoded as UTF-8 (invalid sequences become U+FFFD).
/// - HTTP/1.1 needs exactly one `Host`; more than one, or one whose value is not
///   `host [":" port]`, is refused for any version (§3.2).
/// - Framing (§6.3): `Content-Length` plus `Transfer-Encoding` is a 400; `Transfer-Encoding` must
///   be exactly one field `chunked` (else 501) and is refused in HTTP/1.0 (§6.1); `Content-Length`
///   is digits only, repeats must agree (`5, 5` is fine). A `Content-Length` over
///   ``HTTPParserLimits/maxBodyBytes`` is reported as ``HTTPParseError/payloadTooLarge`` as soon as
///   the head is complete, in place of ``HTTPParserEvent/head(_:)`` and before any body byte is
///   consumed: no head ever announces more content than the limit (a caller may size its body
///   buffer from it), and no `100 Continue` is sent for a body that will be refused.
/// - Chunked (§7.1): 1–16 hex digits, extensions ignored but bounded, CRLF after each chunk's
///   data checked, trailer fields validated and discarded (§7.1.2).
/// - A method byte that is not a token character fails at once, without waiting for the line end
///   (a TLS handshake on the plain port is refused at its first byte).
///
/// The parser keeps parsing pipelined requests after one with ``HTTPRequestHead/keepAlive`` false,
/// and after an `Upgrade` request: stopping there is the caller's decision. After answering
/// `101 Switching Protocols`, the bytes after that request's `.end` (the offset reached when `.end`
/// is returned) belong to the new protocol and must not be given to this parser.
public struct HTTPRequestParser: Sendable {
    enum State: Sendable, Equatable {
        /// Reading the request line and field lines.
        case head
        /// The head of a body-less request, or the last byte of a Content-Length body, was
        /// reported; the next call reports `.end`.
        case endPending
        /// Reading `remaining` more bytes of a Content-Length body.
        case fixedBody(remaining: Int)
        case chunkSize
        /// Whitespace after the chunk size: only `;` may follow (BWS before chunk-ext, §7.1.1).
        case chunkSizeWhitespace
        case chunkExtension
        /// CR of the chunk-size line seen; LF must follow.
        case chunkSizeLF
        case chunkData(remaining: Int)
        case chunkDataCR
        case chunkDataLF
        /// Reading the trailer section after the last chunk.
        case trailers
        case dead(HTTPParseError)
    }

    /// The limits this parser enforces.
    public let limits: HTTPParserLimits
    var state: State = .head
    /// The incomplete current line of a head or trailer section (CR included once seen).
    var line: [UInt8] = []

    // The head being built.
    var haveRequestLine = false
    /// The method of the current request line has been scanned up to its SP (or a CR), so the
    /// early check in ``scanMethod(_:from:to:)`` is over for this line.
    var methodScanDone = false
    var emptyLines = 0
    /// Bytes of the header (or trailer) section so far, CRLFs included.
    var sectionBytes = 0
    /// Field lines of the trailer section so far.
    var trailerCount = 0
    var method: HTTPMethod = .get
    var target = ""
    var path = ""
    var query: String?
    var versionMinor = 1
    var fields: [HTTPHeaders.Element] = []

    // Chunked body.
    var chunkSize: UInt64 = 0
    var chunkDigits = 0
    var chunkExtensionBytes = 0
    var bodyBytes = 0

    /// A parser waiting for the first byte of a request.
    public init(limits: HTTPParserLimits = .init()) {
        self.limits = limits
    }

    /// True between messages: nothing of a next request has arrived yet (empty lines that may
    /// precede a request line do not count, RFC 9112 §2.2). Use it to apply the keep-alive idle
    /// timeout. False while a head, body or pending event is in progress and after an error.
    public var isIdle: Bool { state == .head && !headStarted }

    /// True while bytes of an incomplete request head are buffered (the request line has started
    /// or was read, but the empty line ending the head has not arrived). Use it to apply a header
    /// read timeout against slow senders (slowloris).
    public var hasPartialHead: Bool { state == .head && headStarted }

    private var headStarted: Bool {
        haveRequestLine || line.count > 1 || (line.count == 1 && line[0] != HTTPSyntax.cr)
    }

    /// Consumes bytes from the front of `buffer` and reports how many it consumed and what it found.
    ///
    /// Call repeatedly with the unconsumed rest of the buffer until it returns
    /// ``HTTPParserEvent/needMoreData`` (then `consumed == buffer.count`) or
    /// ``HTTPParserEvent/error(_:)``. Stopping when the buffer is empty is not enough: the `.end`
    /// of a body-less or Content-Length request is reported with `consumed == 0`, typically after
    /// the head or body has consumed the whole buffer, so an empty buffer is a valid argument. The
    /// `.end` of a chunked body consumes the last chunk's trailer section. The parser keeps no
    /// pointer into `buffer` after returning.
    /// - Returns: `consumed` bytes (0…`buffer.count`) and the event; for
    ///   ``HTTPParserEvent/body(_:)`` the range lies within `0..<consumed` of this `buffer`.
    public mutating func parse(_ buffer: UnsafeRawBufferPointer) -> (consumed: Int, event: HTTPParserEvent) {
        switch state {
        case .head, .trailers:
            return parseLines(buffer)
        case .fixedBody(let remaining):
            let n = min(remaining, buffer.count)
            if n == 0 { return (0, .needMoreData) }
            state = n == remaining ? .endPending : .fixedBody(remaining: remaining - n)
            return (n, .body(0..<n))
        case .endPending:
            state = .head
            return (0, .end)
        case .dead(let error):
            return (0, .error(error))
        case .chunkSize, .chunkSizeWhitespace, .chunkExtension, .chunkSizeLF, .chunkData, .chunkDataCR,
            .chunkDataLF:
            return parseChunked(buffer)
        }
    }

    private mutating func fail(_ error: HTTPParseError) -> HTTPParserEvent {
        state = .dead(error)
        line = []
        fields = []
        return .error(error)
    }

    // MARK: - Lines of the head and the trailer section

    /// Splits `buffer` into CRLF-terminated lines. A line entirely inside `buffer` is parsed in
    /// place; only a line cut by the end of `buffer` is copied into `line`.
    private mutating func parseLines(_ buffer: UnsafeRawBufferPointer) -> (consumed: Int, event: HTTPParserEvent) {
        let n = buffer.count
        var i = 0
        while i < n {
            var j = i
            while j < n, buffer[j] != HTTPSyntax.lf { j += 1 }
            // The early method check, then the limits, on what is known so far: the same checks
            // in the same order whether a line is complete or cut, so any split reports the same
            // error.
            if state == .head, !haveRequestLine, !methodScanDone, let error = scanMethod(buffer, from: i, to: j) {
                return (i, fail(error))
            }
            if let error = lineLimitError(lineLength: line.count + (j - i)) {
                return (i, fail(error))
            }
            if j == n {
                line.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[i..<n]))
                return (n, .needMoreData)
            }
            let lastByte = j > i ? buffer[j - 1] : line.last
            guard lastByte == HTTPSyntax.cr else { return (j, fail(.bareLineFeed)) }
            let event: HTTPParserEvent?
            if line.isEmpty {
                event = processLine(UnsafeRawBufferPointer(rebasing: buffer[i..<(j - 1)]))
            } else {
                var whole: [UInt8] = []
                swap(&whole, &line)
                whole.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[i..<j]))
                event = whole.withUnsafeBytes { bytes in
                    processLine(UnsafeRawBufferPointer(rebasing: bytes[..<(bytes.count - 1)]))
                }
                // Reuse the buffer, unless one long line grew it: that must not pin memory on
                // an idle keep-alive connection.
                if whole.capacity <= 4096 {
                    whole.removeAll(keepingCapacity: true)
                    swap(&whole, &line)
                }
            }
            methodScanDone = false
            i = j + 1
            if let event { return (i, event) }
        }
        return (n, .needMoreData)
    }

    /// Checks the method bytes of a request line as they arrive, so that a peer speaking something
    /// else (a TLS ClientHello on the plain port, binary junk) is refused at its first byte rather
    /// than after `maxRequestLineBytes` or a LF. Stops at the SP ending the method or at a CR
    /// (left to ``parseRequestLine(_:)``), and never looks past the position where the 414 check
    /// would fire, so that both checks agree under any split.
    private mutating func scanMethod(_ buffer: UnsafeRawBufferPointer, from i: Int, to j: Int) -> HTTPParseError? {
        let positionLimit = limits.maxRequestLineBytes + 2
        var k = i
        var position = line.count
        while k < j, position < positionLimit {
            let c = buffer[k]
            if c == HTTPSyntax.sp || c == HTTPSyntax.cr {
                methodScanDone = true
                return nil
            }
            if !HTTPSyntax.isTokenChar(c) { return .badMethod }
            k += 1
            position += 1
        }
        return nil
    }

    /// The limit error for a line of which `lineLength` bytes (CR included, LF excluded) are known.
    private func lineLimitError(lineLength: Int) -> HTTPParseError? {
        if state == .trailers {
            return sectionBytes + lineLength + 1 > limits.maxHeaderBytes ? .trailersTooLarge : nil
        }
        if !haveRequestLine {
            // The line's content is at least lineLength - 1 bytes (the last byte may be its CR).
            return lineLength - 1 > limits.maxRequestLineBytes ? .uriTooLong : nil
        }
        return sectionBytes + lineLength + 1 > limits.maxHeaderBytes ? .headersTooLarge : nil
    }

    /// Handles one complete line, CRLF excluded. Returns an event to report, or nil to go on.
    private mutating func processLine(_ content: UnsafeRawBufferPointer) -> HTTPParserEvent? {
        if state == .trailers { return processTrailerLine(content) }
        if !haveRequestLine {
            if content.isEmpty {
                emptyLines += 1
                return emptyLines > limits.maxLeadingEmptyLines ? fail(.tooManyEmptyLines) : nil
            }
            do throws(HTTPParseError) {
                try parseRequestLine(content)
            } catch {
                return fail(error)
            }
            haveRequestLine = true
            return nil
        }
        sectionBytes += content.count + 2
        if content.isEmpty { return finishHead() }
        if fields.count >= limits.maxHeaderCount { return fail(.tooManyHeaders) }
        do throws(HTTPParseError) {
            let (nameEnd, valueStart, valueEnd) = try Self.parseFieldLine(content)
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: content[..<nameEnd]), as: UTF8.self)
            let value = String(
                decoding: UnsafeRawBufferPointer(rebasing: content[valueStart..<valueEnd]), as: UTF8.self)
            fields.append((name, value))
        } catch {
            return fail(error)
        }
        return nil
    }

    private mutating func processTrailerLine(_ content: UnsafeRawBufferPointer) -> HTTPParserEvent? {
        sectionBytes += content.count + 2
        if content.isEmpty {
            state = .head
            sectionBytes = 0
            trailerCount = 0
            return .end
        }
        trailerCount += 1
        if trailerCount > limits.maxHeaderCount { return fail(.trailersTooLarge) }
        do throws(HTTPParseError) {
            _ = try Self.parseFieldLine(content)
        } catch {
            return fail(error)
        }
        return nil
    }

    /// Parses `method SP request-target SP HTTP-version` (RFC 9112 §3) into the head fields.
    private mutating func parseRequestLine(_ b: UnsafeRawBufferPointer) throws(HTTPParseError) {
        let n = b.count
        var i = 0
        while i < n, HTTPSyntax.isTokenChar(b[i]) { i += 1 }
        guard i < n else { throw .badRequestLine }
        guard b[i] == HTTPSyntax.sp else {
            throw b[i] == HTTPSyntax.cr ? .bareCarriageReturn : .badMethod
        }
        guard i > 0 else { throw .badRequestLine }
        let methodEnd = i
        i += 1
        let targetStart = i
        var questionMark = -1
        while i < n, b[i] != HTTPSyntax.sp {
            let c = b[i]
            guard HTTPSyntax.isTargetChar(c) else {
                throw c == HTTPSyntax.cr ? .bareCarriageReturn : .badRequestTarget
            }
            if c == HTTPSyntax.question, questionMark < 0 { questionMark = i }
            i += 1
        }
        guard i > targetStart, i < n else { throw .badRequestLine }
        let targetEnd = i
        let version = try Self.parseVersion(UnsafeRawBufferPointer(rebasing: b[(i + 1)...]))

        let method = HTTPMethod(
            token: String(decoding: UnsafeRawBufferPointer(rebasing: b[..<methodEnd]), as: UTF8.self))
        let pathEnd = questionMark < 0 ? targetEnd : questionMark
        let path: String
        if b[targetStart] == HTTPSyntax.slash {
            path = String(decoding: UnsafeRawBufferPointer(rebasing: b[targetStart..<pathEnd]), as: UTF8.self)
        } else if targetEnd - targetStart == 1, b[targetStart] == UInt8(ascii: "*") {
            guard method == .options else { throw .badRequestTarget }
            path = "*"
        } else {
            let pathStart =
                try targetStart
                + Self.absoluteFormPathStart(UnsafeRawBufferPointer(rebasing: b[targetStart..<pathEnd]))
            path =
                pathStart == pathEnd
                ? "/"
                : String(decoding: UnsafeRawBufferPointer(rebasing: b[pathStart..<pathEnd]), as: UTF8.self)
        }
        self.method = method
        self.versionMinor = version
        self.target = String(decoding: UnsafeRawBufferPointer(rebasing: b[targetStart..<targetEnd]), as: UTF8.self)
        self.path = path
        self.query =
            questionMark < 0
            ? nil
            : String(decoding: UnsafeRawBufferPointer(rebasing: b[(questionMark + 1)..<targetEnd]), as: UTF8.self)
    }

    /// `HTTP/1.0` → 0, `HTTP/1.1` → 1; another well-formed version → 505; anything else → 400
    /// (RFC 9112 §2.3: the version is case-sensitive).
    private static func parseVersion(_ v: UnsafeRawBufferPointer) throws(HTTPParseError) -> Int {
        let zero = UInt8(ascii: "0")
        let nine = UInt8(ascii: "9")
        guard v.count == 8, v[0] == UInt8(ascii: "H"), v[1] == UInt8(ascii: "T"), v[2] == UInt8(ascii: "T"),
            v[3] == UInt8(ascii: "P"), v[4] == HTTPSyntax.slash, v[5] >= zero, v[5] <= nine,
            v[6] == UInt8(ascii: "."), v[7] >= zero, v[7] <= nine
        else { throw .badVersion }
        guard v[5] == UInt8(ascii: "1"), v[7] <= UInt8(ascii: "1") else { throw .unsupportedVersion }
        return Int(v[7] &- zero)
    }

    /// For an absolute-form target without its query (`http://authority/path`), the offset of the
    /// path, or `t.count` when the path is empty. Only the http and https schemes are accepted,
    /// with a non-empty authority and no userinfo (RFC 9112 §3.2.2, RFC 9110 §4.2.4).
    private static func absoluteFormPathStart(_ t: UnsafeRawBufferPointer) throws(HTTPParseError) -> Int {
        var i = 0
        while i < t.count, t[i] != HTTPSyntax.colon { i += 1 }
        let scheme = UnsafeRawBufferPointer(rebasing: t[..<i])
        guard HTTPSyntax.equalsIgnoringCase(scheme, "http".utf8) || HTTPSyntax.equalsIgnoringCase(scheme, "https".utf8),
            t.count >= i + 3, t[i + 1] == HTTPSyntax.slash, t[i + 2] == HTTPSyntax.slash
        else { throw .badRequestTarget }
        i += 3
        let authorityStart = i
        while i < t.count, t[i] != HTTPSyntax.slash {
            if t[i] == UInt8(ascii: "@") || t[i] == UInt8(ascii: "#") { throw .badRequestTarget }
            i += 1
        }
        guard i > authorityStart else { throw .badRequestTarget }
        return i
    }

    /// Validates `field-name ":" OWS field-value OWS` (RFC 9112 §5) and returns the end of the name
    /// and the bounds of the trimmed value.
    private static func parseFieldLine(
        _ b: UnsafeRawBufferPointer
    ) throws(HTTPParseError) -> (nameEnd: Int, valueStart: Int, valueEnd: Int) {
        let n = b.count
        guard !HTTPSyntax.isWhitespace(b[0]) else { throw .obsoleteLineFolding }
        var i = 0
        while i < n, HTTPSyntax.isTokenChar(b[i]) { i += 1 }
        guard i > 0, i < n, b[i] == HTTPSyntax.colon else {
            throw i < n && b[i] == HTTPSyntax.cr ? .bareCarriageReturn : .badHeaderName
        }
        let nameEnd = i
        i += 1
        while i < n, HTTPSyntax.isWhitespace(b[i]) { i += 1 }
        let valueStart = i
        var valueEnd = i
        while i < n {
            let c = b[i]
            guard HTTPSyntax.isFieldValueChar(c) else {
                throw c == HTTPSyntax.cr ? .bareCarriageReturn : .badHeaderValue
            }
            i += 1
            if !HTTPSyntax.isWhitespace(c) { valueEnd = i }
        }
        return (nameEnd, valueStart, valueEnd)
    }

    // MARK: - End of head: framing and connection decisions

    private mutating func finishHead() -> HTTPParserEvent {
        let headers = HTTPHeaders(fields)
        fields = []
        var hostCount = 0
        var transferEncodingCount = 0
        var transferEncodingIsChunked = false
        var contentLength: Int?
        var contentLengthError: HTTPParseError?
        for (name, value) in headers {
            let u = name.utf8
            if HTTPSyntax.equalsIgnoringCase(u, "host".utf8) {
                hostCount += 1
            } else if HTTPSyntax.equalsIgnoringCase(u, "content-length".utf8) {
                if contentLengthError == nil {
                    do throws(HTTPParseError) {
                        try Self.parseContentLength(value, into: &contentLength)
                    } catch {
                        contentLengthError = error
                    }
                }
            } else if HTTPSyntax.equalsIgnoringCase(u, "transfer-encoding".utf8) {
                transferEncodingCount += 1
                transferEncodingIsChunked = HTTPSyntax.equalsIgnoringCase(value.utf8, "chunked".utf8)
            }
        }
        let sawContentLength = contentLength != nil || contentLengthError != nil
        // The order of these checks decides which error a request with several faults gets; the
        // framing ones come after Host so that a smuggling attempt is named as such.

        if versionMinor == 1, hostCount == 0 { return fail(.missingHost) }
        if hostCount > 1 { return fail(.duplicateHost) }
        if hostCount == 1, let host = headers["host"], !Self.isValidHost(host) { return fail(.badHost) }
        var framing = HTTPBodyFraming.none
        if transferEncodingCount > 0 {
            if sawContentLength { return fail(.contentLengthWithTransferEncoding) }
            if versionMinor == 0 { return fail(.transferEncodingInHTTP10) }
            guard transferEncodingCount == 1, transferEncodingIsChunked else {
                return fail(.unsupportedTransferEncoding)
            }
            framing = .chunked
        } else if sawContentLength {
            if let contentLengthError { return fail(contentLengthError) }
            let length = contentLength ?? 0
            // Refused before any body byte and before the caller sees a head announcing it.
            if length > limits.maxBodyBytes { return fail(.payloadTooLarge) }
            framing = .contentLength(length)
        }

        let keepAlive =
            versionMinor == 1
            ? !headers.containsToken("close", in: "connection")
            : headers.containsToken("keep-alive", in: "connection")
                && !headers.containsToken("close", in: "connection")
        let expectsContinue = versionMinor == 1 && headers.containsToken("100-continue", in: "expect")
        let head = HTTPRequestHead(
            method: method, target: target, path: path, query: query, versionMinor: versionMinor,
            headers: headers, framing: framing, keepAlive: keepAlive, expectsContinue: expectsContinue)

        haveRequestLine = false
        emptyLines = 0
        sectionBytes = 0
        target = ""
        path = ""
        query = nil
        switch framing {
        case .none, .contentLength(0):
            state = .endPending
        case .contentLength(let length):
            state = .fixedBody(remaining: length)
        case .chunked:
            chunkSize = 0
            chunkDigits = 0
            chunkExtensionBytes = 0
            bodyBytes = 0
            state = .chunkSize
        }
        return .head(head)
    }

    /// Whether a Host value is `uri-host [ ":" port ]` (RFC 9112 §3.2, RFC 3986 §3.2.2): only the
    /// bytes of a reg-name, IP literal or IPv4 address and a port; empty is allowed (§3.2). This
    /// refuses whitespace, lists (`,`), userinfo (`@`) and paths, which proxies and virtual hosting
    /// could read differently.
    static func isValidHost(_ host: String) -> Bool {
        for c in host.utf8 {
            switch c {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"):
                continue
            case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "%"),
                UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("),
                UInt8(ascii: ")"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ";"), UInt8(ascii: "="),
                UInt8(ascii: ":"), UInt8(ascii: "["), UInt8(ascii: "]"):
                continue
            default:
                return false
            }
        }
        return true
    }

    /// Parses one Content-Length field value: a comma-separated list of decimal integers that must
    /// all be equal, to each other and to `current` (RFC 9112 §6.3, RFC 9110 §8.6). Values too
    /// large for `Int` saturate to `Int.max`, which always exceeds the body limit (413).
    private static func parseContentLength(_ value: String, into current: inout Int?) throws(HTTPParseError) {
        let u = value.utf8
        var start = u.startIndex
        while true {
            let end = u[start...].firstIndex(of: HTTPSyntax.comma) ?? u.endIndex
            var length = 0
            var digits = 0
            var sawNonWhitespace = false
            var trailing = false
            for c in u[start..<end] {
                if HTTPSyntax.isWhitespace(c) {
                    if sawNonWhitespace { trailing = true }
                    continue
                }
                guard !trailing, c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { throw .badContentLength }
                sawNonWhitespace = true
                digits += 1
                let (times10, o1) = length.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(Int(c &- UInt8(ascii: "0")))
                length = o1 || o2 ? Int.max : sum
            }
            guard digits > 0 else { throw .badContentLength }
            if let current, current != length { throw .duplicateContentLength }
            current = length
            if end == u.endIndex { return }
            start = u.index(after: end)
        }
    }

    // MARK: - Chunked body (RFC 9112 §7.1)

    private mutating func parseChunked(_ b: UnsafeRawBufferPointer) -> (consumed: Int, event: HTTPParserEvent) {
        let n = b.count
        var i = 0
        while i < n {
            switch state {
            case .chunkData(let remaining):
                let k = min(remaining, n - i)
                state = k == remaining ? .chunkDataCR : .chunkData(remaining: remaining - k)
                return (i + k, .body(i..<(i + k)))
            case .trailers:
                let (consumed, event) = parseLines(UnsafeRawBufferPointer(rebasing: b[i...]))
                return (i + consumed, event)
            default:
                break
            }
            let c = b[i]
            i += 1
            switch state {
            case .chunkSize:
                if let digit = HTTPSyntax.hexValue(c) {
                    chunkDigits += 1
                    guard chunkDigits <= 16 else { return (i, fail(.chunkSizeTooLarge)) }
                    chunkSize = chunkSize << 4 | digit
                } else if chunkDigits == 0 {
                    return (i, fail(.badChunkSize))
                } else if c == HTTPSyntax.cr {
                    state = .chunkSizeLF
                } else if c == HTTPSyntax.semicolon {
                    state = .chunkExtension
                } else if HTTPSyntax.isWhitespace(c) {
                    chunkExtensionBytes += 1
                    state = .chunkSizeWhitespace
                } else {
                    return (i, fail(c == HTTPSyntax.lf ? .bareLineFeed : .badChunkSize))
                }
            case .chunkSizeWhitespace:
                chunkExtensionBytes += 1
                guard chunkExtensionBytes <= limits.maxChunkExtensionBytes else {
                    return (i, fail(.chunkExtensionTooLong))
                }
                if c == HTTPSyntax.semicolon {
                    state = .chunkExtension
                } else if !HTTPSyntax.isWhitespace(c) {
                    return (i, fail(c == HTTPSyntax.lf ? .bareLineFeed : .badChunkSize))
                }
            case .chunkExtension:
                if c == HTTPSyntax.cr {
                    state = .chunkSizeLF
                } else if c == HTTPSyntax.lf {
                    return (i, fail(.bareLineFeed))
                } else {
                    guard HTTPSyntax.isFieldValueChar(c) else { return (i, fail(.badChunkExtension)) }
                    chunkExtensionBytes += 1
                    guard chunkExtensionBytes <= limits.maxChunkExtensionBytes else {
                        return (i, fail(.chunkExtensionTooLong))
                    }
                }
            case .chunkSizeLF:
                guard c == HTTPSyntax.lf else { return (i, fail(.bareCarriageReturn)) }
                if chunkSize == 0 {
                    state = .trailers
                    sectionBytes = 0
                    trailerCount = 0
                    continue
                }
                guard chunkSize <= UInt64(max(0, limits.maxBodyBytes - bodyBytes)) else {
                    return (i, fail(.payloadTooLarge))
                }
                bodyBytes += Int(chunkSize)
                state = .chunkData(remaining: Int(chunkSize))
            case .chunkDataCR:
                guard c == HTTPSyntax.cr else { return (i, fail(.badChunkTerminator)) }
                state = .chunkDataLF
            case .chunkDataLF:
                guard c == HTTPSyntax.lf else { return (i, fail(.badChunkTerminator)) }
                chunkSize = 0
                chunkDigits = 0
                chunkExtensionBytes = 0
                state = .chunkSize
            default:
                preconditionFailure("parseChunked called in state \(state)")
            }
        }
        return (n, .needMoreData)
    }
}
