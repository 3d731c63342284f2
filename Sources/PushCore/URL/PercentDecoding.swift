/// Percent-decoding of URL path segments and query components (RFC 3986 §2.1) and query-string
/// splitting (WHATWG URL "application/x-www-form-urlencoded" parsing, where `+` means space).
public enum PercentDecoding {
    /// Decodes `%XX` escapes. Returns nil for a malformed escape or when the result is not UTF-8.
    /// With `plusIsSpace`, `+` decodes to a space (query strings).
    public static func decode(_ text: some StringProtocol, plusIsSpace: Bool = false) -> String? {
        let u = Array(text.utf8)
        if !u.contains(UInt8(ascii: "%")) && !(plusIsSpace && u.contains(UInt8(ascii: "+"))) {
            return String(text)
        }
        var out: [UInt8] = []
        out.reserveCapacity(u.count)
        var i = 0
        while i < u.count {
            let b = u[i]
            if b == UInt8(ascii: "%") {
                guard i + 2 < u.count, let hi = hexValue(u[i + 1]), let lo = hexValue(u[i + 2]) else { return nil }
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(plusIsSpace && b == UInt8(ascii: "+") ? UInt8(ascii: " ") : b)
                i += 1
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    private static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// Splits a raw query (`a=1&b=2&a=3`) into decoded (name, value) pairs in order. A component
    /// that fails to decode is returned as nil so the caller can answer 400.
    public static func queryItems(_ query: String?) -> [(name: String, value: String)]? {
        guard let query, !query.isEmpty else { return [] }
        var items: [(String, String)] = []
        for part in query.split(separator: "&", omittingEmptySubsequences: true) {
            let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = decode(pieces[0], plusIsSpace: true) else { return nil }
            let value: String
            if pieces.count > 1 {
                guard let v = decode(pieces[1], plusIsSpace: true) else { return nil }
                value = v
            } else {
                value = ""
            }
            items.append((name, value))
        }
        return items
    }
}
