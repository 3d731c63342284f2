/// Topic names (API.md "Topics"): 1–256 bytes from `[A-Za-z0-9._~:@!$&'()*+,;=-]` and `/`,
/// with no empty segment (no leading, trailing or doubled `/`) and no `.` or `..` segment: a
/// reverse proxy that removes dot segments (RFC 3986 §5.2.4) would map `./private/a` or
/// `private/../a` onto another topic. Names are checked after percent-decoding, so `%2e` is a dot.
public enum TopicName {
    /// Longest topic name, in bytes.
    public static let maxBytes = 256

    /// Why a topic name was refused; `message` is one human sentence for the JSON error body.
    public enum Problem: Error, Equatable, Sendable {
        case empty
        case tooLong(Int)
        case badCharacter(UInt8)
        case emptySegment
        case dotSegment
        case dotDotSegment

        public var message: String {
            switch self {
            case .empty: return "topic name is empty"
            case .tooLong(let n): return "topic name is \(n) bytes; at most \(TopicName.maxBytes) are allowed"
            case .badCharacter(let b):
                return "topic name contains byte 0x\(String(b, radix: 16)); allowed: A-Z a-z 0-9 . _ ~ : @ ! $ & ' ( ) * + , ; = - and /"
            case .emptySegment: return "topic name has an empty segment (leading, trailing or doubled '/')"
            case .dotSegment: return "topic name has a '.' segment"
            case .dotDotSegment: return "topic name has a '..' segment"
            }
        }
    }

    /// Whether byte `b` may appear in a topic name.
    @inline(__always)
    public static func isAllowed(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: ":"), UInt8(ascii: "@"),
            UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("),
            UInt8(ascii: ")"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"),
            UInt8(ascii: "="), UInt8(ascii: "-"), UInt8(ascii: "/"):
            return true
        default:
            return false
        }
    }

    /// Checks an already percent-decoded name. Returns nil when valid.
    public static func problem(in name: String) -> Problem? {
        let bytes = Array(name.utf8)
        if bytes.isEmpty { return .empty }
        if bytes.count > maxBytes { return .tooLong(bytes.count) }
        var segmentStart = 0
        for i in 0...bytes.count {
            if i == bytes.count || bytes[i] == UInt8(ascii: "/") {
                let length = i - segmentStart
                if length == 0 { return .emptySegment }
                if length == 1 && bytes[segmentStart] == UInt8(ascii: ".") { return .dotSegment }
                if length == 2 && bytes[segmentStart] == UInt8(ascii: ".") && bytes[segmentStart + 1] == UInt8(ascii: ".") {
                    return .dotDotSegment
                }
                segmentStart = i + 1
            } else if !isAllowed(bytes[i]) {
                return .badCharacter(bytes[i])
            }
        }
        return nil
    }
}

/// Event type names for the SSE `event:` field (API.md "Publish"): `[A-Za-z0-9._-]{1,64}`, not
/// starting with `pushd.` (reserved for pushd's own signals, such as `pushd.gap`, so a publisher
/// cannot forge them).
public enum EventName {
    /// Whether `name` is in pushd's reserved `pushd.` namespace.
    public static func isReserved(_ name: String) -> Bool { name.hasPrefix("pushd.") }

    /// Longest event name, in bytes.
    public static let maxBytes = 64

    /// Whether `name` is a valid event type. A name with CR, LF or NUL can never pass, so it can
    /// never break SSE framing (WHATWG HTML §9.2.6).
    public static func isValid(_ name: String) -> Bool {
        let u = name.utf8
        guard !u.isEmpty, u.count <= maxBytes, !isReserved(name) else { return false }
        for b in u {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                continue
            default:
                return false
            }
        }
        return true
    }
}
