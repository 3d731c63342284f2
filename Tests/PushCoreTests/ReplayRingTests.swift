import Testing
@testable import PushCore

func makeEvent(_ ms: UInt64, _ seq: UInt64 = 0, topic: String = "t", data: String = "x") -> EncodedEvent {
    EncodedEvent(id: EventID(milliseconds: ms, sequence: seq), topic: topic, name: nil, data: SharedBytes(string: data))
}

@Suite("ReplayRing")
struct ReplayRingTests {
    @Test func countEviction() {
        var ring = ReplayRing(limits: .init(events: 3, bytes: 1 << 30, maxAgeMilliseconds: 1_000_000))
        for ms in UInt64(1)...3 { ring.append(makeEvent(ms), nowMilliseconds: ms) }
        #expect(ring.events.map(\.id.milliseconds) == [1, 2, 3])
        #expect(ring.evictedThrough == nil)
        ring.append(makeEvent(4), nowMilliseconds: 4)
        #expect(ring.events.map(\.id.milliseconds) == [2, 3, 4])
        #expect(ring.evictedThrough == EventID(milliseconds: 1, sequence: 0))
        #expect(ring.oldest == EventID(milliseconds: 2, sequence: 0))
        #expect(ring.newest == EventID(milliseconds: 4, sequence: 0))
        for ms in UInt64(5)...10 { ring.append(makeEvent(ms), nowMilliseconds: ms) }
        #expect(ring.events.map(\.id.milliseconds) == [8, 9, 10])
        #expect(ring.evictedThrough == EventID(milliseconds: 7, sequence: 0))
    }

    @Test func byteEviction() {
        let size = makeEvent(1).retainedBytes
        var ring = ReplayRing(limits: .init(events: 1000, bytes: size * 2, maxAgeMilliseconds: 1_000_000))
        ring.append(makeEvent(1), nowMilliseconds: 1)
        ring.append(makeEvent(2), nowMilliseconds: 2)
        #expect(ring.bytes == size * 2)
        #expect(ring.events.count == 2)
        ring.append(makeEvent(3), nowMilliseconds: 3)
        #expect(ring.events.map(\.id.milliseconds) == [2, 3])
        #expect(ring.bytes == size * 2)
        #expect(ring.evictedThrough == EventID(milliseconds: 1, sequence: 0))
        // A bigger event pushes out several small ones (2 * 82 bytes allowed; this one is 160).
        let big = makeEvent(4, data: String(repeating: "y", count: 40))
        #expect(big.retainedBytes <= size * 2 && big.retainedBytes > size)
        ring.append(big, nowMilliseconds: 4)
        #expect(ring.events.map(\.id.milliseconds) == [4])
        #expect(ring.bytes == big.retainedBytes)
        #expect(ring.evictedThrough == EventID(milliseconds: 3, sequence: 0))
        // An event larger than the whole byte budget is not retained at all (and counts as evicted).
        let huge = makeEvent(5, data: String(repeating: "z", count: size * 2))
        ring.append(huge, nowMilliseconds: 5)
        #expect(ring.events.isEmpty)
        #expect(ring.bytes == 0)
        #expect(ring.evictedThrough == huge.id)
    }

    @Test func ageEviction() {
        var ring = ReplayRing(limits: .init(events: 1000, bytes: 1 << 30, maxAgeMilliseconds: 100))
        ring.append(makeEvent(1000), nowMilliseconds: 1000)
        ring.append(makeEvent(1050), nowMilliseconds: 1050)
        ring.append(makeEvent(1100), nowMilliseconds: 1100)  // 1000 is exactly 100 ms old: kept
        #expect(ring.events.count == 3)
        ring.evict(nowMilliseconds: 1101)
        #expect(ring.events.map(\.id.milliseconds) == [1050, 1100])
        #expect(ring.evictedThrough == EventID(milliseconds: 1000, sequence: 0))
        ring.evict(nowMilliseconds: 5000)
        #expect(ring.events.isEmpty)
        #expect(ring.bytes == 0)
        #expect(ring.oldest == nil)
        #expect(ring.evictedThrough == EventID(milliseconds: 1100, sequence: 0))
        // Early clock (now < max age) evicts nothing.
        var young = ReplayRing(limits: .init(events: 10, bytes: 1 << 30, maxAgeMilliseconds: 100))
        young.append(makeEvent(0), nowMilliseconds: 50)
        #expect(young.events.count == 1)
    }

    @Test func eventsAfterBoundaries() {
        var ring = ReplayRing(limits: .init(events: 100, bytes: 1 << 30, maxAgeMilliseconds: 1_000_000))
        let ids: [(UInt64, UInt64)] = [(10, 0), (10, 1), (12, 0), (15, 3)]
        for (ms, seq) in ids { ring.append(makeEvent(ms, seq), nowMilliseconds: 20) }
        func after(_ ms: UInt64, _ seq: UInt64) -> [String] {
            ring.events(after: EventID(milliseconds: ms, sequence: seq)).map(\.id.description)
        }
        #expect(after(0, 0) == ["10-0", "10-1", "12-0", "15-3"])
        #expect(after(9, 999) == ["10-0", "10-1", "12-0", "15-3"])
        #expect(after(10, 0) == ["10-1", "12-0", "15-3"])
        #expect(after(10, 1) == ["12-0", "15-3"])
        #expect(after(11, 0) == ["12-0", "15-3"])
        #expect(after(15, 2) == ["15-3"])
        #expect(after(15, 3) == [])
        #expect(after(99, 0) == [])
        let empty = ReplayRing(limits: .init())
        #expect(empty.events(after: .zero).isEmpty)
    }
}
