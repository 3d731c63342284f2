/// An event id, `<unix-ms>-<seq>` (API.md "Event ids and replay"; the shape of a Redis stream id).
///
/// Ids are ordered first by milliseconds, then by sequence; the order is total across topics,
/// so a multi-topic stream can be merged by id.
public struct EventID: Comparable, Hashable, Sendable, CustomStringConvertible {
    /// Milliseconds since the Unix epoch when the id was assigned (never less than the previous id's).
    public var milliseconds: UInt64
    /// Sequence within the millisecond, from 0.
    public var sequence: UInt64

    public init(milliseconds: UInt64, sequence: UInt64) {
        self.milliseconds = milliseconds
        self.sequence = sequence
    }

    /// The smallest id; every assigned id is greater.
    public static let zero = EventID(milliseconds: 0, sequence: 0)

    public static func < (a: EventID, b: EventID) -> Bool {
        a.milliseconds != b.milliseconds ? a.milliseconds < b.milliseconds : a.sequence < b.sequence
    }

    public var description: String { "\(milliseconds)-\(sequence)" }

    /// Parses `<digits>-<digits>` (each at most 20 digits and within UInt64). Anything else —
    /// empty, spaces, signs, a missing part — returns nil.
    public init?(parsing text: some StringProtocol) {
        var ms: UInt64 = 0
        var seq: UInt64 = 0
        var sawDash = false
        var digits = 0
        for b in text.utf8 {
            if b == UInt8(ascii: "-") {
                if sawDash || digits == 0 { return nil }
                sawDash = true
                digits = 0
                continue
            }
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return nil }
            digits += 1
            if digits > 20 { return nil }
            let d = UInt64(b - UInt8(ascii: "0"))
            if sawDash {
                let (m, o1) = seq.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.addingReportingOverflow(d)
                if o1 || o2 { return nil }
                seq = s
            } else {
                let (m, o1) = ms.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.addingReportingOverflow(d)
                if o1 || o2 { return nil }
                ms = s
            }
        }
        guard sawDash, digits > 0 else { return nil }
        self.init(milliseconds: ms, sequence: seq)
    }

    /// The id's ASCII bytes.
    public var utf8: [UInt8] { Array(description.utf8) }
}

/// Assigns strictly increasing ids from a wall clock that may step backwards.
///
/// When the clock reads a millisecond after the last id's, the id is `<now>-0`; otherwise (same
/// millisecond, or the clock went back) it is `<last ms>-<last seq + 1>`, so ids never decrease.
/// Not thread-safe: the Broker calls it under its lock.
public struct EventIDGenerator: Sendable {
    /// The last id assigned (or the floor given at init).
    public private(set) var last: EventID

    /// Starts above `floor` (e.g. the last id persisted before a restart).
    public init(floor: EventID = .zero) { self.last = floor }

    /// The next id for wall-clock time `nowMilliseconds`.
    public mutating func next(nowMilliseconds: UInt64) -> EventID {
        if nowMilliseconds > last.milliseconds {
            last = EventID(milliseconds: nowMilliseconds, sequence: 0)
        } else if last.sequence == .max {
            last = EventID(milliseconds: last.milliseconds + 1, sequence: 0)
        } else {
            last = EventID(milliseconds: last.milliseconds, sequence: last.sequence + 1)
        }
        return last
    }
}
