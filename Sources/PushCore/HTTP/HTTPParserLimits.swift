/// Size and count limits enforced by ``HTTPRequestParser`` while it reads one request.
///
/// Every limit is checked as bytes arrive, so a client can never make the parser buffer more
/// than `maxRequestLineBytes` (request line) or `maxHeaderBytes` (field section) of a head, and a
/// too-large body is refused before its excess bytes are read (RFC 9112 §6.3, RFC 9110 §15.5.14).
public struct HTTPParserLimits: Sendable, Equatable {
    /// Longest request line in bytes, not counting its CRLF (RFC 9112 §3). Exceeded:
    /// ``HTTPParseError/uriTooLong`` (414).
    public var maxRequestLineBytes = 8192
    /// Largest header section in bytes: every field line with its CRLF plus the empty line that
    /// ends the head (RFC 9112 §2.1). Exceeded: ``HTTPParseError/headersTooLarge`` (431).
    /// Also bounds the trailer section of a chunked body (``HTTPParseError/trailersTooLarge``).
    public var maxHeaderBytes = 16384
    /// Most field lines in the header section. Exceeded: ``HTTPParseError/tooManyHeaders`` (431).
    /// Also bounds the number of trailer field lines.
    public var maxHeaderCount = 100
    /// Largest request content in bytes. A `Content-Length` above it is refused with
    /// ``HTTPParseError/payloadTooLarge`` (413) as soon as the head is complete, in place of the
    /// head and before any body byte; a chunked body is refused as soon as its running total of
    /// chunk sizes exceeds it (the chunks before were already reported).
    public var maxBodyBytes = 1 << 20
    /// Most bytes of chunk extensions on one chunk-size line (RFC 9112 §7.1.1); the parser ignores
    /// extensions but bounds them. Exceeded: ``HTTPParseError/chunkExtensionTooLong`` (400).
    public var maxChunkExtensionBytes = 4096
    /// Most empty lines (CRLF) ignored before a request line (RFC 9112 §2.2 asks a server to
    /// ignore at least one). Exceeded: ``HTTPParseError/tooManyEmptyLines`` (400).
    public var maxLeadingEmptyLines = 8

    /// The defaults: 8 KiB request line, 16 KiB header section, 100 fields, 1 MiB body.
    public init() {}

    /// Limits with the four main values given; the chunk-extension and empty-line bounds keep
    /// their defaults. Every value must be positive (not checked: a zero limit refuses everything).
    public init(maxRequestLineBytes: Int, maxHeaderBytes: Int, maxHeaderCount: Int, maxBodyBytes: Int) {
        self.maxRequestLineBytes = maxRequestLineBytes
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderCount = maxHeaderCount
        self.maxBodyBytes = maxBodyBytes
    }
}
