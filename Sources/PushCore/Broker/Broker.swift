import DequeModule
import Synchronization

/// The node-wide publish/subscribe core shared by every loop (docs/ARCHITECTURE.md "Fan-out").
///
/// A publish, on any thread: under one lock, assign the id, encode the event once, append it to
/// the topic's replay ring, and append one reference to the inbox of each loop that has
/// subscribers of the topic; after the lock, wake those loops. Each loop then fans the event out to
/// its own subscribers (`LoopFanout`). Because ids are assigned and inboxes filled under the same
/// lock, every inbox receives events in id order — which is what lets a multi-topic subscriber get
/// its topics merged in id order, and a new subscriber's replay meet the live stream without a gap
/// or a duplicate (see `subscribe`).
public final class Broker: Sendable {
    /// Per-loop inboxes, indexed by loop number.
    public let inboxes: [LoopInbox]
    /// Replay retention applied to every topic.
    public let replayLimits: ReplayRing.Limits
    /// The first id this process may assign: a client cursor below it comes from before this run.
    public let bootID: EventID

    private struct TopicState {
        var ring: ReplayRing
        /// Subscriptions per loop.
        var interest: [Int]
    }

    private struct State {
        var ids: EventIDGenerator
        var topics: [String: TopicState] = [:]
        var published: UInt64 = 0
        /// The newest id evicted from any topic that was since forgotten (no events, no subscriber).
        /// A re-created topic starts with it as its eviction mark, so a cursor older than it still
        /// gets a gap signal: possibly a false alarm, never a silent miss.
        var forgottenEvictedThrough: EventID?

        mutating func forget(_ topic: String) {
            if let e = topics[topic]?.ring.evictedThrough, forgottenEvictedThrough.map({ e > $0 }) ?? true {
                forgottenEvictedThrough = e
            }
            topics[topic] = nil
        }

        /// Idempotency keys seen within the replay window: key → the publish they named.
        var idempotency: [String: IdempotentPublish] = [:]
        /// Keys in the order they were recorded, with their expiry (ms), for eviction.
        var idempotencyOrder: Deque<(key: String, expires: UInt64)> = []

        func newTopic(limits: ReplayRing.Limits, loops: Int) -> TopicState {
            TopicState(ring: ReplayRing(limits: limits, evictedThrough: forgottenEvictedThrough), interest: Array(repeating: 0, count: loops))
        }
    }

    private let state: Mutex<State>

    /// Creates a broker for `loopCount` loops. `idFloor` is an id every new id must exceed (the last
    /// id of a previous run, when known); `nowMilliseconds` is the current wall-clock time.
    public init(loopCount: Int, replayLimits: ReplayRing.Limits, idFloor: EventID = .zero, nowMilliseconds: UInt64) {
        self.inboxes = (0..<loopCount).map { _ in LoopInbox() }
        self.replayLimits = replayLimits
        var generator = EventIDGenerator(floor: idFloor)
        // Reserve the boot id so every id of this run is >= bootID.
        let boot = generator.next(nowMilliseconds: nowMilliseconds)
        self.bootID = boot
        self.state = Mutex(State(ids: EventIDGenerator(floor: boot)))
        // The first real id will be greater than `boot`; treat `boot` itself as "before this run".
    }

    /// Number of events published since start.
    public var publishedCount: UInt64 { state.withLock { $0.published } }

    /// Publishes one event. `fromLoop` is the calling loop (it drains its own inbox at the end of its
    /// iteration, so it is not woken through its eventfd), or nil from a non-loop thread.
    /// The topic and name must already be validated. Returns the event with its id.
    @discardableResult
    public func publish(
        topic: String, name: String?, data: SharedBytes, fromLoop: Int?, nowMilliseconds: UInt64
    ) -> EncodedEvent {
        publish(batch: [(topic, name, data)], fromLoop: fromLoop, nowMilliseconds: nowMilliseconds)[0]
    }

    /// Publishes several events atomically and in order: one id each, consecutive in the id order,
    /// all appended and queued before any other publish. Entries are (topic, name, data).
    public func publish(
        batch: [(String, String?, SharedBytes)], fromLoop: Int?, nowMilliseconds: UInt64
    ) -> [EncodedEvent] {
        guard case .published(let events) = publish(
            batch: batch, idempotencyKey: nil, fromLoop: fromLoop, nowMilliseconds: nowMilliseconds)
        else { return [] }
        return events
    }

    /// What a publish with an `Idempotency-Key` did.
    public enum PublishOutcome: Sendable {
        /// The events were published now.
        case published([EncodedEvent])
        /// The key was seen before (within `idempotencyWindowMilliseconds`) for the same topics:
        /// nothing was published; these are the ids and topics the first publish got.
        case replayed([(id: EventID, topic: String)])
        /// The key was seen before for other topics: nothing was published.
        case keyConflict
    }

    /// A remembered publish, answered again when its `Idempotency-Key` is retried.
    struct IdempotentPublish {
        var results: [(id: EventID, topic: String)]
    }

    /// How long and how many `Idempotency-Key`s are remembered.
    public var idempotencyWindowMilliseconds: UInt64 { replayLimits.maxAgeMilliseconds }
    /// At most this many keys are remembered; the oldest are forgotten first.
    public static let maxIdempotencyKeys = 100_000

    /// Publishes `batch` (see `publish(batch:fromLoop:nowMilliseconds:)`) unless `idempotencyKey`
    /// names a publish already made within the replay window (API.md "Publish"): then nothing is
    /// published and the first publish's ids are returned. The check and the publish happen under
    /// one lock, so two concurrent retries publish once.
    public func publish(
        batch: [(String, String?, SharedBytes)], idempotencyKey: String?, fromLoop: Int?, nowMilliseconds: UInt64
    ) -> PublishOutcome {
        var wake = [Bool](repeating: false, count: inboxes.count)
        let outcome: PublishOutcome = state.withLock { s in
            if let key = idempotencyKey {
                while let first = s.idempotencyOrder.first,
                    first.expires <= nowMilliseconds || s.idempotencyOrder.count > Broker.maxIdempotencyKeys
                {
                    s.idempotencyOrder.removeFirst()
                    s.idempotency[first.key] = nil
                }
                if let seen = s.idempotency[key] {
                    return seen.results.map(\.topic) == batch.map(\.0) ? .replayed(seen.results) : .keyConflict
                }
            }
            var out: [EncodedEvent] = []
            out.reserveCapacity(batch.count)
            for (topic, name, data) in batch {
                let id = s.ids.next(nowMilliseconds: nowMilliseconds)
                let event = EncodedEvent(id: id, topic: topic, name: name, data: data)
                out.append(event)
                s.published &+= 1
                if s.topics[topic] == nil { s.topics[topic] = s.newTopic(limits: replayLimits, loops: inboxes.count) }
                s.topics[topic]!.ring.append(event, nowMilliseconds: nowMilliseconds)
                let interest = s.topics[topic]!.interest
                for loop in 0..<interest.count where interest[loop] > 0 {
                    if inboxes[loop].push(event) && loop != fromLoop { wake[loop] = true }
                }
            }
            if let key = idempotencyKey {
                s.idempotency[key] = IdempotentPublish(results: out.map { ($0.id, $0.topic) })
                s.idempotencyOrder.append((key, nowMilliseconds &+ max(1, replayLimits.maxAgeMilliseconds)))
            }
            return .published(out)
        }
        for loop in 0..<wake.count where wake[loop] { inboxes[loop].wake() }
        return outcome
    }

    /// What a new subscription starts with.
    public struct Subscription: Sendable {
        /// Retained events newer than the client's cursor, in id order (empty without a cursor).
        public var replay: [EncodedEvent]
        /// Set when the client may have missed events: its cursor, and the oldest id still retained.
        public var gap: Gap?
        /// Events that were in the loop's inbox when the subscription was registered. The loop must
        /// fan these out (to its existing subscribers) BEFORE adding the new subscriber, so the new
        /// subscriber's live stream starts exactly after its replay snapshot.
        public var pendingInbox: [EncodedEvent]
    }

    /// A gap signal's content (API.md "Event ids and replay").
    public struct Gap: Sendable, Equatable {
        /// The cursor the client sent, as sent.
        public var lastEventID: String
        /// The oldest id retained on the subscribed topics, or nil when none is retained.
        public var oldestRetained: EventID?
    }

    /// Registers one subscriber of `topics` on `loop` and takes the replay snapshot, atomically with
    /// respect to publishes: every event is either in the snapshot (or the returned pending inbox)
    /// or arrives later through the loop's inbox — never both, never neither.
    ///
    /// `lastEventID` is the client's cursor (`Last-Event-ID` header or `last_event_id` query), nil
    /// when the client sent none. A cursor that is malformed, from before this run, newer than any
    /// id assigned, or older than an evicted event of one of the topics yields a `gap`.
    public func subscribe(loop: Int, topics requested: [String], lastEventID: String?, nowMilliseconds: UInt64) -> Subscription {
        // Each topic once: interest is released once per distinct topic (`StreamKey.topics`), and a
        // repeated topic must not replay its events twice.
        let topics = StreamKey(topics: requested, format: .sse).topics
        return state.withLock { s in
            for topic in topics {
                if s.topics[topic] == nil { s.topics[topic] = s.newTopic(limits: replayLimits, loops: inboxes.count) }
                s.topics[topic]!.interest[loop] += 1
            }
            let pending = inboxes[loop].take()
            guard let cursorText = lastEventID else {
                return Subscription(replay: [], gap: nil, pendingInbox: pending)
            }
            var oldest: EventID?
            var gap = false
            for topic in topics {
                s.topics[topic]!.ring.evict(nowMilliseconds: nowMilliseconds)
                if let o = s.topics[topic]!.ring.oldest, oldest == nil || o < oldest! { oldest = o }
            }
            guard let cursor = EventID(parsing: cursorText) else {
                return Subscription(replay: [], gap: Gap(lastEventID: cursorText, oldestRetained: oldest), pendingInbox: pending)
            }
            if cursor <= bootID || cursor > s.ids.last { gap = true }
            var replay: [EncodedEvent] = []
            for topic in topics {
                let ring = s.topics[topic]!.ring
                if let evicted = ring.evictedThrough, evicted > cursor { gap = true }
                replay.append(contentsOf: ring.events(after: cursor))
            }
            if topics.count > 1 { replay.sort { $0.id < $1.id } }
            return Subscription(
                replay: replay, gap: gap ? Gap(lastEventID: cursorText, oldestRetained: oldest) : nil,
                pendingInbox: pending)
        }
    }

    /// Removes one subscriber of `topics` on `loop`.
    public func unsubscribe(loop: Int, topics: [String]) {
        state.withLock { s in
            for topic in topics {
                guard var t = s.topics[topic] else { continue }
                t.interest[loop] = max(0, t.interest[loop] - 1)
                s.topics[topic] = t
                if t.ring.events.isEmpty && t.interest.allSatisfy({ $0 == 0 }) { s.forget(topic) }
            }
        }
    }

    /// Evicts aged events from every ring and forgets topics with nothing retained and no
    /// subscriber. Call now and then (each loop's tick calls it for a share of the work).
    public func expire(nowMilliseconds: UInt64) {
        state.withLock { s in
            var dead: [String] = []
            for key in s.topics.keys {
                s.topics[key]!.ring.evict(nowMilliseconds: nowMilliseconds)
                let t = s.topics[key]!
                if t.ring.events.isEmpty && t.interest.allSatisfy({ $0 == 0 }) { dead.append(key) }
            }
            for key in dead { s.forget(key) }
        }
    }

    /// Topics currently known (with retained events or subscribers).
    public var topicCount: Int { state.withLock { $0.topics.count } }

    /// The last id assigned (or the boot id before any publish).
    public var lastID: EventID { state.withLock { $0.ids.last } }
}

/// One loop's inbox of events to fan out, filled by publishers on any thread, drained by the loop.
public final class LoopInbox: Sendable {
    private let events = Mutex<[EncodedEvent]>([])
    private let waker = Mutex<(@Sendable () -> Void)?>(nil)

    public init() {}

    /// Sets how to wake the owning loop (its eventfd). Call once when the loop starts.
    public func attach(waker wake: @escaping @Sendable () -> Void) {
        waker.withLock { $0 = wake }
    }

    /// Appends `event`; returns true when the inbox was empty (the loop needs a wake-up).
    func push(_ event: EncodedEvent) -> Bool {
        events.withLock { e in
            e.append(event)
            return e.count == 1
        }
    }

    /// Takes everything queued, oldest first.
    public func take() -> [EncodedEvent] {
        events.withLock { e in
            if e.isEmpty { return [] }
            var out: [EncodedEvent] = []
            out.reserveCapacity(e.count)
            swap(&out, &e)
            return out
        }
    }

    /// Wakes the owning loop now (also used for control messages such as stop).
    public func wake() {
        let w = waker.withLock { $0 }
        w?()
    }
}
