import Testing
@testable import PushCore

@Suite("EventID parse / format / order")
struct EventIDTests {
    @Test(arguments: [
        ("0-0", EventID(milliseconds: 0, sequence: 0)),
        ("1-0", EventID(milliseconds: 1, sequence: 0)),
        ("1700000000000-42", EventID(milliseconds: 1_700_000_000_000, sequence: 42)),
        ("18446744073709551615-18446744073709551615", EventID(milliseconds: .max, sequence: .max)),
    ])
    func parsesValid(text: String, expected: EventID) {
        #expect(EventID(parsing: text) == expected)
        // Parsing a Substring works the same.
        #expect(EventID(parsing: ("x" + text).dropFirst()) == expected)
    }

    @Test(arguments: [
        "", "-", "1", "1-", "-1", "--1", "1--1", "1-1-1", "-1-1", "+1-1", "1-+1",
        " 1-1", "1-1 ", "1 -1", "1- 1", "1-1\n", "a-b", "1-a", "0x1-0", "1.5-0", "１-1",
        // overflow of either part (UInt64.max + 1)
        "18446744073709551616-0", "0-18446744073709551616", "99999999999999999999-0",
        "184467440737095516150-0",
    ])
    func rejectsGarbage(text: String) {
        #expect(EventID(parsing: text) == nil, "\(text.debugDescription) must not parse")
    }

    @Test func formatRoundTrips() {
        let ids = [
            EventID(milliseconds: 0, sequence: 0), EventID(milliseconds: 1_700_000_000_123, sequence: 7),
            EventID(milliseconds: .max, sequence: .max),
        ]
        for id in ids {
            #expect(EventID(parsing: id.description) == id)
            #expect(id.utf8 == Array(id.description.utf8))
        }
        #expect(EventID(milliseconds: 12, sequence: 3).description == "12-3")
        #expect(EventID.zero.description == "0-0")
    }

    @Test func orderIsMillisecondsThenSequence() {
        let a = EventID(milliseconds: 5, sequence: 9)
        let b = EventID(milliseconds: 6, sequence: 0)
        let c = EventID(milliseconds: 6, sequence: 1)
        #expect(a < b)
        #expect(b < c)
        #expect(a < c)
        #expect(!(b < b))
        #expect(!(c < a))
        #expect([c, a, b].sorted() == [a, b, c])
        // Numeric, not lexicographic: 10-0 > 9-0 and 1-10 > 1-9.
        #expect(EventID(parsing: "9-0")! < EventID(parsing: "10-0")!)
        #expect(EventID(parsing: "1-9")! < EventID(parsing: "1-10")!)
        #expect(EventID.zero < EventID(milliseconds: 0, sequence: 1))
    }

    /// The doc comment of `EventID.init(parsing:)` says each part has "at most 20 digits".
    /// Leading zeros make a 21+ digit part that still fits in UInt64; it is accepted.
    @Test func rejectsPartsLongerThanTwentyDigits() {
        #expect(EventID(parsing: "000000000000000000001-0") == nil)
        #expect(EventID(parsing: "1-000000000000000000001") == nil)
    }
}

@Suite("EventIDGenerator")
struct EventIDGeneratorTests {
    @Test func advancingClockStartsSequenceAtZero() {
        var g = EventIDGenerator()
        #expect(g.last == .zero)
        #expect(g.next(nowMilliseconds: 100) == EventID(milliseconds: 100, sequence: 0))
        #expect(g.next(nowMilliseconds: 101) == EventID(milliseconds: 101, sequence: 0))
        #expect(g.next(nowMilliseconds: 500) == EventID(milliseconds: 500, sequence: 0))
        #expect(g.last == EventID(milliseconds: 500, sequence: 0))
    }

    @Test func sameMillisecondIncrementsSequence() {
        var g = EventIDGenerator()
        #expect(g.next(nowMilliseconds: 100) == EventID(milliseconds: 100, sequence: 0))
        #expect(g.next(nowMilliseconds: 100) == EventID(milliseconds: 100, sequence: 1))
        #expect(g.next(nowMilliseconds: 100) == EventID(milliseconds: 100, sequence: 2))
    }

    @Test func clockSteppingBackKeepsIdsIncreasing() {
        var g = EventIDGenerator()
        _ = g.next(nowMilliseconds: 1000)
        #expect(g.next(nowMilliseconds: 400) == EventID(milliseconds: 1000, sequence: 1))
        #expect(g.next(nowMilliseconds: 999) == EventID(milliseconds: 1000, sequence: 2))
        #expect(g.next(nowMilliseconds: 1000) == EventID(milliseconds: 1000, sequence: 3))
        #expect(g.next(nowMilliseconds: 1001) == EventID(milliseconds: 1001, sequence: 0))
    }

    @Test func floorIsNeverReached() {
        let floor = EventID(milliseconds: 2000, sequence: 5)
        var g = EventIDGenerator(floor: floor)
        #expect(g.last == floor)
        #expect(g.next(nowMilliseconds: 10) == EventID(milliseconds: 2000, sequence: 6))
        #expect(g.next(nowMilliseconds: 2000) == EventID(milliseconds: 2000, sequence: 7))
        #expect(g.next(nowMilliseconds: 2001) == EventID(milliseconds: 2001, sequence: 0))
    }

    /// At the largest sequence the next id must move to the next millisecond, not trap on
    /// A sequence at UInt64.max carries into the next millisecond instead of overflowing.
    @Test func sequenceOverflowCarriesIntoMilliseconds() {
        var g = EventIDGenerator(floor: EventID(milliseconds: 5, sequence: .max))
        #expect(g.next(nowMilliseconds: 5) == EventID(milliseconds: 6, sequence: 0))
    }

    @Test func randomClockIsStrictlyIncreasing() {
        var rng = SystemRandomNumberGenerator()
        var g = EventIDGenerator(floor: EventID(milliseconds: 5000, sequence: 0))
        var previous = g.last
        var clock: UInt64 = 5000
        for _ in 0..<20_000 {
            // Mostly forward, sometimes same ms, sometimes backwards by up to 3 s.
            switch Int.random(in: 0..<10, using: &rng) {
            case 0..<5: clock += UInt64.random(in: 0...2, using: &rng)
            case 5..<8: break
            default: clock -= min(clock, UInt64.random(in: 1...3000, using: &rng))
            }
            let id = g.next(nowMilliseconds: clock)
            #expect(previous < id)
            if previous.milliseconds < clock {
                #expect(id == EventID(milliseconds: clock, sequence: 0))
            }
            previous = id
        }
    }
}
