/// Byte classes and small helpers of the HTTP/1.1 grammar (RFC 9110 §5.6, RFC 9112 §2–§7).
/// Internal: the parser works on bytes, never on `String` characters.
enum HTTPSyntax {
    static let cr: UInt8 = 0x0D
    static let lf: UInt8 = 0x0A
    static let sp: UInt8 = 0x20
    static let htab: UInt8 = 0x09
    static let colon = UInt8(ascii: ":")
    static let semicolon = UInt8(ascii: ";")
    static let comma = UInt8(ascii: ",")
    static let question = UInt8(ascii: "?")
    static let slash = UInt8(ascii: "/")

    /// `tchar` (RFC 9110 §5.6.2): the bytes of a token (method, field name).
    @inline(__always)
    static func isTokenChar(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
            UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// A byte allowed in a request-target: visible ASCII (0x21–0x7E). Control bytes, SP, DEL and
    /// bytes ≥ 0x80 are refused (RFC 9112 §3.2); other visible ASCII that RFC 3986 would want
    /// percent-encoded is tolerated, as clients send it and routing sees the raw target anyway.
    @inline(__always)
    static func isTargetChar(_ b: UInt8) -> Bool { b > 0x20 && b < 0x7F }

    /// `field-vchar / SP / HTAB` (RFC 9110 §5.5): VCHAR, obs-text (0x80–0xFF), SP, HTAB.
    @inline(__always)
    static func isFieldValueChar(_ b: UInt8) -> Bool { (b >= 0x20 && b != 0x7F) || b == htab }

    /// `OWS` bytes (RFC 9110 §5.6.3).
    @inline(__always)
    static func isWhitespace(_ b: UInt8) -> Bool { b == sp || b == htab }

    /// The value of a hex digit, or nil.
    @inline(__always)
    static func hexValue(_ b: UInt8) -> UInt64? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt64(b &- UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt64(b &- UInt8(ascii: "a") &+ 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt64(b &- UInt8(ascii: "A") &+ 10)
        default: return nil
        }
    }

    @inline(__always)
    static func lowercased(_ b: UInt8) -> UInt8 {
        b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z") ? b | 0x20 : b
    }

    /// ASCII case-insensitive equality of two byte sequences (field names and tokens are ASCII).
    static func equalsIgnoringCase<A: Collection<UInt8>, B: Collection<UInt8>>(_ a: A, _ b: B) -> Bool {
        guard a.count == b.count else { return false }
        var ib = b.startIndex
        for x in a {
            if lowercased(x) != lowercased(b[ib]) { return false }
            ib = b.index(after: ib)
        }
        return true
    }

    /// Calls `body` with each element of a comma-separated list (RFC 9110 §5.6.1), OWS-trimmed,
    /// empty elements skipped; stops early when `body` returns false. Returns false if stopped.
    @discardableResult
    static func forEachListElement(
        _ value: String, _ body: (Substring.UTF8View) -> Bool
    ) -> Bool {
        let u = value.utf8
        var start = u.startIndex
        while true {
            let end = u[start...].firstIndex(of: comma) ?? u.endIndex
            var lo = start
            var hi = end
            while lo < hi, isWhitespace(u[lo]) { lo = u.index(after: lo) }
            while hi > lo, isWhitespace(u[u.index(before: hi)]) { hi = u.index(before: hi) }
            if lo < hi, !body(u[lo..<hi]) { return false }
            if end == u.endIndex { return true }
            start = u.index(after: end)
        }
    }
}
