/// Pure helpers for pushd's TLS termination (the OpenSSL side lives in PushServer/TLS*.swift):
/// what can be decided from bytes alone, without a TLS library, so it is unit-tested here.
public enum TLSWire {
    /// The one application protocol pushd speaks over TLS, as ALPN names it (RFC 7301 §6,
    /// IANA "TLS Application-Layer Protocol Negotiation (ALPN) Protocol IDs").
    public static let http11 = Array("http/1.1".utf8)

    /// Picks `wanted` from a client's ALPN `ProtocolNameList` (RFC 7301 §3.1): a sequence of
    /// non-empty names, each prefixed by its one-byte length. Returns the range of the name inside
    /// `list`, or nil when the client does not offer it or the list is malformed (a zero-length
    /// name, or a length running past the end). The server then answers with the fatal
    /// `no_application_protocol` alert (RFC 7301 §3.2).
    public static func selectProtocol(_ wanted: [UInt8], from list: UnsafeRawBufferPointer) -> Range<Int>? {
        var at = 0
        var found: Range<Int>?
        while at < list.count {
            let length = Int(list[at])
            let start = at + 1
            let end = start + length
            guard length > 0, end <= list.count else { return nil }
            if found == nil, length == wanted.count, list[start..<end].elementsEqual(wanted) {
                found = start..<end
            }
            at = end
        }
        return found
    }

    /// Whether the first bytes a client sent are a plaintext HTTP request rather than a TLS
    /// record. A TLS client's first record is a handshake record, content type 22 (RFC 8446 §5.1;
    /// an SSLv2-compatible hello starts with a byte ≥ 0x80); an HTTP/1.1 request starts with its
    /// method, an upper-case token (RFC 9112 §3, RFC 9110 §9). pushd answers such a client with a
    /// plaintext 400 instead of a TLS alert it could not read.
    public static func looksLikePlaintextHTTP(_ first: UnsafeRawBufferPointer) -> Bool {
        guard let byte = first.first else { return false }
        return byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")
    }

    /// The plaintext answer to an HTTP request sent to a TLS port.
    public static let plaintextRequestResponse: [UInt8] = Array(
        ("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 43\r\n"
            + "Connection: close\r\n\r\nthis port speaks HTTPS: use https:// (TLS)\n").utf8)
}

/// `tls.min_version`: the oldest TLS version pushd accepts.
public enum TLSMinimumVersion: String, Sendable, CaseIterable {
    /// TLS 1.2 (RFC 5246), the default: every maintained client speaks it.
    case tls12 = "1.2"
    /// TLS 1.3 (RFC 8446) only.
    case tls13 = "1.3"
}
