#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Parsers for the value forms of docs/CONFIGURATION.md. All of them take the raw text of a value
/// (YAML scalars, environment variables and flags all arrive as text) and return nil when the text
/// is not of the form or out of range; the caller words the error.
enum ValueForms {
    // MARK: Exact decimals

    /// A non-negative decimal `123`, `0.5`, `.5` or `5.` as `mantissa / 10^scale`, exactly.
    /// At most 18 digits, so the mantissa never overflows.
    static func decimal(_ text: Substring) -> (mantissa: Int, scale: Int)? {
        var mantissa = 0
        var scale = 0
        var digits = 0
        var seenPoint = false
        for ch in text.utf8 {
            if ch == UInt8(ascii: ".") {
                if seenPoint { return nil }
                seenPoint = true
            } else if ch >= UInt8(ascii: "0") && ch <= UInt8(ascii: "9") {
                digits += 1
                if digits > 18 { return nil }
                mantissa = mantissa * 10 + Int(ch - UInt8(ascii: "0"))
                if seenPoint { scale += 1 }
            } else {
                return nil
            }
        }
        return digits == 0 ? nil : (mantissa, scale)
    }

    /// `mantissa / 10^scale × multiplier` when it is a whole number that fits in an Int.
    static func scaled(_ value: (mantissa: Int, scale: Int), by multiplier: Int) -> Int? {
        let (product, overflow) = value.mantissa.multipliedReportingOverflow(by: multiplier)
        if overflow { return nil }
        var divisor = 1
        for _ in 0..<value.scale { divisor *= 10 }
        return product % divisor == 0 ? product / divisor : nil
    }

    /// Splits `15s`, `15 s` or `64KiB` into number and unit (the unit starts at the first letter).
    static func numberAndUnit(_ text: String) -> (number: Substring, unit: String) {
        let trimmed = text.trimmingWhitespace()
        guard let unitStart = trimmed.firstIndex(where: { $0.isLetter }) else { return (trimmed[...], "") }
        let number = trimmed[..<unitStart]
        let unit = String(trimmed[unitStart...])
        return (number.trimmingWhitespaceSubstring(), unit)
    }

    // MARK: Integers

    /// A plain integer (`42`, `+42`, `-3`) within `range`.
    static func integer(_ text: String, in range: ClosedRange<Int>) -> Int? {
        guard let value = Int(text.trimmingWhitespace()), range.contains(value) else { return nil }
        return value
    }

    // MARK: Durations

    /// The unit a duration given as a bare number is in.
    enum PlainUnit: Sendable {
        case seconds
        case milliseconds
    }

    /// Nanoseconds per duration unit.
    static let durationUnits: [String: Int] = [
        "ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
        "m": 60_000_000_000, "h": 3_600_000_000_000,
    ]

    /// A duration in whole nanoseconds: a bare number in `plain` units, or a number with a unit
    /// `ms`, `s`, `m` or `h` (also `us`, `ns`). Negative durations are not a form.
    static func durationNanoseconds(_ text: String, plain: PlainUnit) -> Int? {
        let (number, unit) = numberAndUnit(text)
        let multiplier: Int
        if unit.isEmpty {
            multiplier = plain == .seconds ? 1_000_000_000 : 1_000_000
        } else if let known = durationUnits[unit.lowercased()] {
            multiplier = known
        } else {
            return nil
        }
        guard let value = decimal(number) else { return nil }
        return scaled(value, by: multiplier)
    }

    /// A duration in seconds within `range` (in seconds).
    static func seconds(_ text: String, plain: PlainUnit = .seconds, in range: ClosedRange<Double>) -> Double? {
        guard let ns = durationNanoseconds(text, plain: plain) else { return nil }
        let seconds = Double(ns) / 1e9
        return range.contains(seconds) ? seconds : nil
    }

    /// A duration in whole milliseconds within `range` (in milliseconds).
    static func milliseconds(_ text: String, plain: PlainUnit, in range: ClosedRange<Int>) -> Int? {
        guard let ns = durationNanoseconds(text, plain: plain), ns % 1_000_000 == 0 else { return nil }
        let ms = ns / 1_000_000
        return range.contains(ms) ? ms : nil
    }

    /// `2h`, `10m`, `15s`, `1.5s`, `500ms`: the shortest exact spelling of a number of seconds.
    static func formatDuration(seconds: Double) -> String {
        let ms = (seconds * 1000).rounded()
        if ms == 0 { return "0s" }
        if ms.truncatingRemainder(dividingBy: 3_600_000) == 0 { return "\(Int(ms / 3_600_000))h" }
        if ms.truncatingRemainder(dividingBy: 60_000) == 0 { return "\(Int(ms / 60_000))m" }
        if ms.truncatingRemainder(dividingBy: 1000) == 0 { return "\(Int(ms / 1000))s" }
        if ms < 1000 { return "\(Int(ms))ms" }
        return "\(seconds)s"
    }

    /// Milliseconds spelt like `formatDuration`.
    static func formatDuration(milliseconds: Int) -> String {
        formatDuration(seconds: Double(milliseconds) / 1000)
    }

    // MARK: Sizes

    /// Bytes per size unit. Every multiple is binary: `k`, `K`, `KB` and `KiB` all mean 1024.
    static let sizeUnits: [String: Int] = [
        "b": 1,
        "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
        "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
        "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
    ]

    /// A size in bytes within `range`: an integer of bytes, or a number with a unit (case-insensitive,
    /// binary multiples: `64KiB`, `64k`, `64KB`, `1.5MiB`, `1G`). The result must be whole bytes.
    static func bytes(_ text: String, in range: ClosedRange<Int>) -> Int? {
        let (number, unit) = numberAndUnit(text)
        let multiplier: Int
        if unit.isEmpty {
            multiplier = 1
        } else if let known = sizeUnits[unit.lowercased()] {
            multiplier = known
        } else {
            return nil
        }
        guard let value = decimal(number), let bytes = scaled(value, by: multiplier), range.contains(bytes)
        else { return nil }
        return bytes
    }

    /// `1GiB`, `64KiB`, `100B`: the largest binary unit that divides `bytes`.
    static func formatSize(_ bytes: Int) -> String {
        if bytes != 0 && bytes % (1 << 30) == 0 { return "\(bytes >> 30)GiB" }
        if bytes != 0 && bytes % (1 << 20) == 0 { return "\(bytes >> 20)MiB" }
        if bytes != 0 && bytes % (1 << 10) == 0 { return "\(bytes >> 10)KiB" }
        return "\(bytes)B"
    }

    // MARK: Listen addresses

    /// A `ListenAddress` text whose host is a numeric IPv4 or IPv6 address or `localhost`.
    static func isValidListenHost(_ host: String) -> Bool {
        if host == "localhost" { return true }
        var buffer = (UInt64(0), UInt64(0))
        return withUnsafeMutableBytes(of: &buffer) { raw in
            inet_pton(AF_INET, host, raw.baseAddress) == 1 || inet_pton(AF_INET6, host, raw.baseAddress) == 1
        }
    }
}

extension String {
    /// The string without leading and trailing spaces, tabs and newlines.
    func trimmingWhitespace() -> String {
        String(self[...].trimmingWhitespaceSubstring())
    }
}

extension String {
    /// The string without leading and trailing `characters`.
    func stripping(_ characters: String) -> String {
        var result = self[...]
        while let first = result.first, characters.contains(first) { result = result.dropFirst() }
        while let last = result.last, characters.contains(last) { result = result.dropLast() }
        return String(result)
    }
}

extension Substring {
    /// The substring without leading and trailing `characters`.
    func stripping(_ characters: String) -> String { String(self).stripping(characters) }

    /// The substring without leading and trailing spaces, tabs and newlines.
    func trimmingWhitespaceSubstring() -> Substring {
        var result = self
        while let first = result.first, first.isWhitespace { result = result.dropFirst() }
        while let last = result.last, last.isWhitespace { result = result.dropLast() }
        return result
    }
}
