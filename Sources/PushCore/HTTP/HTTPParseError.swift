/// Why a request could not be parsed. After reporting one, the parser is dead: the caller answers
/// with ``status`` (and a JSON body built from ``code`` and ``message``) and closes the
/// connection, because the framing of anything that follows is unknown (RFC 9112 §9.6).
public enum HTTPParseError: Error, Equatable, Sendable, CaseIterable {
    // Request line (RFC 9112 §3).
    /// The request line is not `method SP request-target SP HTTP-version` (missing or doubled
    /// SP, empty part, no version). 400.
    case badRequestLine
    /// The method contains a byte that is not a token character (RFC 9110 §9.1). 400.
    case badMethod
    /// The request-target is not origin-form, absolute-form (http/https) or `*` with `OPTIONS`,
    /// or contains a control byte, DEL or a byte ≥ 0x80 (RFC 9112 §3.2). 400.
    case badRequestTarget
    /// The version is not `HTTP/` DIGIT `.` DIGIT, case-sensitive (RFC 9112 §2.3);
    /// `http/1.1` is this error. 400.
    case badVersion
    /// A well-formed version other than HTTP/1.0 or HTTP/1.1 (RFC 9110 §15.6.6). 505.
    case unsupportedVersion
    /// More empty lines before the request line than ``HTTPParserLimits/maxLeadingEmptyLines``
    /// (RFC 9112 §2.2). 400.
    case tooManyEmptyLines
    /// The request line is longer than ``HTTPParserLimits/maxRequestLineBytes``
    /// (RFC 9110 §15.5.15). 414.
    case uriTooLong

    // Line structure (RFC 9112 §2.2).
    /// A line of the head (or a chunk-size or trailer line) ends in LF without CR. 400.
    case bareLineFeed
    /// A CR inside a line that is not followed by LF. 400.
    case bareCarriageReturn

    // Field lines (RFC 9112 §5).
    /// A field name is empty, not a token, or followed by whitespace before `:` (RFC 9112 §5.1). 400.
    case badHeaderName
    /// A field value contains NUL or another control byte except HTAB (RFC 9110 §5.5). 400.
    case badHeaderValue
    /// A field line starts with SP or HTAB: obsolete line folding, or whitespace after the
    /// request line (RFC 9112 §5.2, §2.2). 400.
    case obsoleteLineFolding
    /// The header section is larger than ``HTTPParserLimits/maxHeaderBytes`` (RFC 6585 §5). 431.
    case headersTooLarge
    /// More field lines than ``HTTPParserLimits/maxHeaderCount`` (RFC 6585 §5). 431.
    case tooManyHeaders
    /// An HTTP/1.1 request without `Host` (RFC 9112 §3.2). 400.
    case missingHost
    /// More than one `Host` field line (RFC 9112 §3.2). 400.
    case duplicateHost
    /// A `Host` value that is not `uri-host [":" port]` (RFC 9112 §3.2, RFC 3986 §3.2.2). 400.
    case badHost

    // Framing (RFC 9112 §6).
    /// `Content-Length` is empty or not only decimal digits (RFC 9110 §8.6). 400.
    case badContentLength
    /// `Content-Length` fields or list elements with different values (RFC 9112 §6.3). 400.
    case duplicateContentLength
    /// Both `Content-Length` and `Transfer-Encoding`: a request-smuggling vector (RFC 9112 §6.3). 400.
    case contentLengthWithTransferEncoding
    /// `Transfer-Encoding` in an HTTP/1.0 request: faulty framing (RFC 9112 §6.1). 400.
    case transferEncodingInHTTP10
    /// `Transfer-Encoding` other than exactly `chunked` (RFC 9112 §6.1). 501.
    case unsupportedTransferEncoding
    /// The content is larger than ``HTTPParserLimits/maxBodyBytes`` (RFC 9110 §15.5.14). 413.
    case payloadTooLarge

    // Chunked coding (RFC 9112 §7.1).
    /// A chunk size is empty, not hexadecimal, or not followed by `;`, BWS `;` or CRLF. 400.
    case badChunkSize
    /// A chunk size has more than 16 hex digits (its value could not be represented). 400.
    case chunkSizeTooLarge
    /// A chunk extension contains a control byte (RFC 9112 §7.1.1). 400.
    case badChunkExtension
    /// The chunk extensions of one chunk are longer than
    /// ``HTTPParserLimits/maxChunkExtensionBytes`` (RFC 9112 §7.1.1). 400.
    case chunkExtensionTooLong
    /// Chunk data is not followed by CRLF (RFC 9112 §7.1). 400.
    case badChunkTerminator
    /// The trailer section is larger than ``HTTPParserLimits/maxHeaderBytes`` or has more field
    /// lines than ``HTTPParserLimits/maxHeaderCount`` (RFC 9112 §7.1.2). 431.
    case trailersTooLarge

    /// The HTTP status code to answer with: 400, 413, 414, 431, 501 or 505.
    public var status: Int {
        switch self {
        case .uriTooLong: 414
        case .headersTooLarge, .tooManyHeaders, .trailersTooLarge: 431
        case .payloadTooLarge: 413
        case .unsupportedTransferEncoding: 501
        case .unsupportedVersion: 505
        default: 400
        }
    }

    /// A short snake_case machine code for the JSON error body, e.g. `"bad_request_line"`.
    public var code: String {
        switch self {
        case .badRequestLine: "bad_request_line"
        case .badMethod: "bad_method"
        case .badRequestTarget: "bad_request_target"
        case .badVersion: "bad_version"
        case .unsupportedVersion: "unsupported_version"
        case .tooManyEmptyLines: "too_many_empty_lines"
        case .uriTooLong: "uri_too_long"
        case .bareLineFeed: "bare_line_feed"
        case .bareCarriageReturn: "bare_carriage_return"
        case .badHeaderName: "bad_header_name"
        case .badHeaderValue: "bad_header_value"
        case .obsoleteLineFolding: "obsolete_line_folding"
        case .headersTooLarge: "headers_too_large"
        case .tooManyHeaders: "too_many_headers"
        case .missingHost: "missing_host"
        case .duplicateHost: "duplicate_host"
        case .badHost: "bad_host"
        case .badContentLength: "bad_content_length"
        case .duplicateContentLength: "duplicate_content_length"
        case .contentLengthWithTransferEncoding: "content_length_with_transfer_encoding"
        case .transferEncodingInHTTP10: "transfer_encoding_in_http10"
        case .unsupportedTransferEncoding: "unsupported_transfer_encoding"
        case .payloadTooLarge: "payload_too_large"
        case .badChunkSize: "bad_chunk_size"
        case .chunkSizeTooLarge: "chunk_size_too_large"
        case .badChunkExtension: "bad_chunk_extension"
        case .chunkExtensionTooLong: "chunk_extension_too_long"
        case .badChunkTerminator: "bad_chunk_terminator"
        case .trailersTooLarge: "trailers_too_large"
        }
    }

    /// One human sentence for the JSON error body, citing the RFC section.
    public var message: String {
        switch self {
        case .badRequestLine:
            "request line is not 'METHOD SP request-target SP HTTP/1.x' (RFC 9112 §3)"
        case .badMethod:
            "method is not a token (RFC 9112 §3.1, RFC 9110 §9.1)"
        case .badRequestTarget:
            "request-target is not origin-form, absolute-form or '*' for OPTIONS, or contains a control, space or non-ASCII byte (RFC 9112 §3.2)"
        case .badVersion:
            "HTTP-version is not 'HTTP/' DIGIT '.' DIGIT, case-sensitive (RFC 9112 §2.3)"
        case .unsupportedVersion:
            "only HTTP/1.0 and HTTP/1.1 are supported (RFC 9110 §15.6.6)"
        case .tooManyEmptyLines:
            "too many empty lines before the request line (RFC 9112 §2.2)"
        case .uriTooLong:
            "request line is longer than this server accepts (RFC 9110 §15.5.15)"
        case .bareLineFeed:
            "line ends in a bare LF instead of CRLF (RFC 9112 §2.2)"
        case .bareCarriageReturn:
            "CR not followed by LF inside a line (RFC 9112 §2.2)"
        case .badHeaderName:
            "field name is not a token directly followed by ':' (RFC 9112 §5.1)"
        case .badHeaderValue:
            "field value contains a control character (RFC 9110 §5.5)"
        case .obsoleteLineFolding:
            "field line starts with whitespace (obsolete line folding) (RFC 9112 §5.2)"
        case .headersTooLarge:
            "header section is larger than this server accepts (RFC 6585 §5)"
        case .tooManyHeaders:
            "header section has more fields than this server accepts (RFC 6585 §5)"
        case .missingHost:
            "HTTP/1.1 request has no Host header field (RFC 9112 §3.2)"
        case .duplicateHost:
            "request has more than one Host header field (RFC 9112 §3.2)"
        case .badHost:
            "Host header field is not 'host[:port]' (RFC 9112 §3.2)"
        case .badContentLength:
            "Content-Length is not a non-negative decimal integer (RFC 9110 §8.6)"
        case .duplicateContentLength:
            "Content-Length values differ (RFC 9112 §6.3)"
        case .contentLengthWithTransferEncoding:
            "request has both Content-Length and Transfer-Encoding (RFC 9112 §6.3)"
        case .transferEncodingInHTTP10:
            "Transfer-Encoding is not allowed in an HTTP/1.0 request (RFC 9112 §6.1)"
        case .unsupportedTransferEncoding:
            "only 'Transfer-Encoding: chunked' is supported (RFC 9112 §6.1)"
        case .payloadTooLarge:
            "request content is larger than this server accepts (RFC 9110 §15.5.14)"
        case .badChunkSize:
            "chunk size is not hexadecimal digits followed by CRLF (RFC 9112 §7.1)"
        case .chunkSizeTooLarge:
            "chunk size has more than 16 hexadecimal digits (RFC 9112 §7.1)"
        case .badChunkExtension:
            "chunk extension contains a control character (RFC 9112 §7.1.1)"
        case .chunkExtensionTooLong:
            "chunk extension is longer than this server accepts (RFC 9112 §7.1.1)"
        case .badChunkTerminator:
            "chunk data is not followed by CRLF (RFC 9112 §7.1)"
        case .trailersTooLarge:
            "trailer section is larger than this server accepts (RFC 9112 §7.1.2)"
        }
    }
}
