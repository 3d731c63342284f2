/// An incremental UTF-8 validator (RFC 3629 §4, as required for text messages and Close reasons
/// by RFC 6455 §8.1 and §5.5.1).
///
/// Feed bytes in any split; the state carries an incomplete sequence over to the next call, so a
/// character may be cut across frames or reads. Validation fails as soon as the bytes seen can no
/// longer be a prefix of valid UTF-8 (fail fast, as §8.1 asks): the second byte of a sequence is
/// range-checked against its lead byte, so overlong forms (`C0`, `E0 80`, `F0 80`), surrogates
/// (`ED A0`) and code points above U+10FFFF (`F4 90`, `F5`) are refused at the first byte that
/// proves it. Allocation-free.
public struct WebSocketUTF8Validator: Sendable, Equatable {
    /// Continuation bytes still expected for the current character (0 at a character boundary).
    var remaining: UInt8 = 0
    /// Inclusive bounds for the next continuation byte.
    var lower: UInt8 = 0x80
    var upper: UInt8 = 0xBF

    /// A validator at the start of a text.
    public init() {}

    /// True when the bytes fed so far end on a character boundary. A text that ends while this
    /// is false ends inside a character and is invalid (1007).
    public var isAtCharacterBoundary: Bool { remaining == 0 }

    /// Back to the start state, for the next message.
    public mutating func reset() { self = WebSocketUTF8Validator() }

    /// Feeds `bytes`. Returns false as soon as the text fed so far cannot be the beginning of
    /// valid UTF-8; the validator's state is then unspecified until ``reset()``.
    /// Returns true when everything is valid so far (check ``isAtCharacterBoundary`` at the end).
    public mutating func validate(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let n = bytes.count
        var i = 0
        while i < n {
            if remaining == 0 {
                // ASCII fast path: eight bytes at a time while no high bit is set.
                while i + 8 <= n,
                    bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 == 0
                {
                    i += 8
                }
                if i == n { break }
                let b = bytes[i]
                i += 1
                if b < 0x80 { continue }
                switch b {
                case 0xC2...0xDF: remaining = 1
                case 0xE0: remaining = 2; lower = 0xA0  // no overlong 3-byte forms
                case 0xE1...0xEC, 0xEE...0xEF: remaining = 2
                case 0xED: remaining = 2; upper = 0x9F  // no surrogates U+D800–U+DFFF
                case 0xF0: remaining = 3; lower = 0x90  // no overlong 4-byte forms
                case 0xF1...0xF3: remaining = 3
                case 0xF4: remaining = 3; upper = 0x8F  // nothing above U+10FFFF
                default: return false  // continuation byte, C0/C1 (overlong), F5–FF
                }
            } else {
                let b = bytes[i]
                i += 1
                guard b >= lower, b <= upper else { return false }
                remaining -= 1
                lower = 0x80
                upper = 0xBF
            }
        }
        return true
    }

    /// Convenience: whether `bytes` is, as a whole, valid UTF-8.
    public static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var v = WebSocketUTF8Validator()
        return v.validate(bytes) && v.isAtCharacterBoundary
    }

    /// Convenience: whether `bytes` is, as a whole, valid UTF-8.
    public static func isValid(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { isValid($0) }
    }
}
