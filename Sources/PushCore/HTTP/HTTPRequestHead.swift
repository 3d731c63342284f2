/// How the content of a request is delimited (RFC 9112 §6.3).
public enum HTTPBodyFraming: Equatable, Sendable {
    /// No content: neither `Content-Length` nor `Transfer-Encoding` was sent (RFC 9112 §6.3 rule 6).
    case none
    /// Exactly this many bytes follow the head (`Content-Length`, RFC 9112 §6.2). Never more than
    /// ``HTTPParserLimits/maxBodyBytes``: a larger value is ``HTTPParseError/payloadTooLarge``
    /// instead of a head, so the count can size a buffer.
    case contentLength(Int)
    /// `Transfer-Encoding: chunked` (RFC 9112 §7.1); the total is known only at the last chunk.
    case chunked
}

/// A parsed request line and header section (RFC 9112 §3, §5), with the framing and
/// connection decisions already derived from it.
public struct HTTPRequestHead: Sendable, Equatable {
    /// The request method (RFC 9112 §3.1).
    public var method: HTTPMethod
    /// The request-target exactly as sent, e.g. `"/subscribe?topic=a&topic=b"` (RFC 9112 §3.2).
    /// Always visible ASCII.
    public var target: String
    /// The path: the target up to `?`, still percent-encoded. For absolute-form
    /// (`http://host/p?q`) it is the URI's path (`"/p"`, or `"/"` when empty); for the
    /// asterisk-form of `OPTIONS *` it is `"*"`.
    public var path: String
    /// Everything after the first `?`, raw (percent-encoded, `+` not decoded); nil when the target
    /// has no `?`, `""` when it ends with one.
    public var query: String?
    /// The HTTP minor version: 1 for `HTTP/1.1`, 0 for `HTTP/1.0` (RFC 9112 §2.3).
    public var versionMinor: Int
    /// The header fields in received order, values OWS-trimmed (RFC 9112 §5).
    public var headers: HTTPHeaders
    /// How the content is delimited (RFC 9112 §6.3).
    public var framing: HTTPBodyFraming
    /// Whether the connection may stay open after this exchange (RFC 9112 §9.3): for HTTP/1.1
    /// true unless `Connection` lists `close`; for HTTP/1.0 true only when `Connection` lists
    /// `keep-alive` (and not `close`). When false, the caller closes the connection after the
    /// response and ignores any request pipelined behind this one.
    public var keepAlive: Bool
    /// Whether the client sent `Expect: 100-continue` (RFC 9110 §10.1.1) and is waiting for a
    /// `100 Continue` before sending the body. Always false for HTTP/1.0, where the expectation
    /// must be ignored (RFC 9110 §10.1.1).
    public var expectsContinue: Bool

    /// A head built from parts, for tests and for code that synthesises requests.
    public init(
        method: HTTPMethod, target: String, path: String, query: String?, versionMinor: Int,
        headers: HTTPHeaders, framing: HTTPBodyFraming, keepAlive: Bool, expectsContinue: Bool
    ) {
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.versionMinor = versionMinor
        self.headers = headers
        self.framing = framing
        self.keepAlive = keepAlive
        self.expectsContinue = expectsContinue
    }
}
