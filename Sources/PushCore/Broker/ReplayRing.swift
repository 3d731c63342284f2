import DequeModule

/// A topic's retained events for `Last-Event-ID` resumption (API.md "Event ids and replay").
///
/// Bounded by a count, a byte total and an age; the oldest event is evicted first. It keeps the
/// already-encoded events, so replay re-encodes nothing. Not thread-safe (the Broker's lock guards it).
public struct ReplayRing: Sendable {
    /// Retention limits: events, bytes (`EncodedEvent.retainedBytes`), age in milliseconds.
    public struct Limits: Sendable, Equatable {
        public var events: Int
        public var bytes: Int
        public var maxAgeMilliseconds: UInt64
        public init(events: Int = 1000, bytes: Int = 1 << 20, maxAgeMilliseconds: UInt64 = 3_600_000) {
            self.events = events
            self.bytes = bytes
            self.maxAgeMilliseconds = maxAgeMilliseconds
        }
    }

    public private(set) var events: Deque<EncodedEvent> = []
    /// Sum of `retainedBytes` of the retained events.
    public private(set) var bytes = 0
    /// The newest id ever evicted from this ring, if any: a cursor below it may have missed events.
    public private(set) var evictedThrough: EventID?
    public let limits: Limits

    /// `evictedThrough` seeds the eviction mark (for a topic re-created after being forgotten).
    public init(limits: Limits, evictedThrough: EventID? = nil) {
        self.limits = limits
        self.evictedThrough = evictedThrough
    }

    /// The oldest retained id.
    public var oldest: EventID? { events.first?.id }
    /// The newest retained id.
    public var newest: EventID? { events.last?.id }

    /// Appends `event` (ids must increase) and evicts what exceeds the limits.
    public mutating func append(_ event: EncodedEvent, nowMilliseconds: UInt64) {
        events.append(event)
        bytes += event.retainedBytes
        evict(nowMilliseconds: nowMilliseconds)
    }

    /// Evicts events over the count or byte limit, or older than the age limit.
    public mutating func evict(nowMilliseconds: UInt64) {
        let ageFloor = nowMilliseconds > limits.maxAgeMilliseconds ? nowMilliseconds - limits.maxAgeMilliseconds : 0
        while let first = events.first,
            events.count > limits.events || bytes > limits.bytes || first.id.milliseconds < ageFloor
        {
            events.removeFirst()
            bytes -= first.retainedBytes
            evictedThrough = first.id
        }
    }

    /// Retained events with an id greater than `cursor`, oldest first.
    public func events(after cursor: EventID) -> ArraySlice<EncodedEvent> {
        // Binary search for the first id > cursor.
        var lo = 0
        var hi = events.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if events[mid].id <= cursor { lo = mid + 1 } else { hi = mid }
        }
        return ArraySlice(events[lo...])
    }
}
