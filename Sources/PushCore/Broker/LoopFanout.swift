/// One loop's share of the fan-out: its stream logs, its subscribers, and the drain of its inbox.
///
/// Per event, the work here is one copy into each of this loop's logs that carry the event's
/// topic — not one per subscriber. Subscribers are cursors; `forEachReadySubscriber` yields the
/// ones that have unsent bytes and no send in flight, and the server starts one send for each.
/// Single-threaded: everything runs on the owning loop's thread.
public final class LoopFanout {
    public let loopIndex: Int
    public let broker: Broker
    public var limits: QueueLimits
    public var slowPolicy: SlowPolicy
    let chunkSize: Int

    var logsByKey: [StreamKey: StreamLog] = [:]
    var logsByTopic: [String: [StreamLog]] = [:]
    private var dirtyLogs: [StreamLog] = []
    /// Logs whose queue-limit check is due at the next `fanOut`.
    private var pendingMaintenance: [StreamLog] = []

    /// Subscribers the `disconnect` policy detached since the last `takeEvicted()`.
    private var evicted: [OutboundQueue] = []

    /// One firing of the slow-subscriber policy, for the server to log.
    public struct SlowReport {
        /// The subscriber.
        public var queue: OutboundQueue
        /// Its topics.
        public var topics: [String]
        /// What happened: `disconnect`, or `drop` with `skippedEvents`.
        public var policy: SlowPolicy
        public var skippedEvents: UInt64
    }
    private var slowReports: [SlowReport] = []

    /// Slow-policy firings per topic and reason since start: `disconnects` counts subscribers
    /// disconnected, `droppedEvents` counts events skipped under `drop`.
    public private(set) var slowByTopic: [String: (disconnects: UInt64, droppedEvents: UInt64)] = [:]

    /// Write coalescing; nil (the default) releases everything at every send pass. See
    /// `CoalescePolicy`.
    public var coalesce: CoalescePolicy?
    /// After a send pass that held streams back: the time (CLOCK_MONOTONIC ns) by which the next
    /// pass must run to release them; 0 when nothing is held.
    public private(set) var holdDeadline: UInt64 = 0

    /// Counters (this loop only).
    public private(set) var eventsFannedOut: UInt64 = 0
    public private(set) var slowDisconnects: UInt64 = 0
    public private(set) var slowDrops: UInt64 = 0
    public internal(set) var subscriberCount = 0

    public init(loopIndex: Int, broker: Broker, limits: QueueLimits, slowPolicy: SlowPolicy, chunkSize: Int = 16 * 1024) {
        self.loopIndex = loopIndex
        self.broker = broker
        self.limits = limits
        self.slowPolicy = slowPolicy
        self.chunkSize = chunkSize
    }

    /// Takes this loop's inbox and appends each event to the logs that carry its topic.
    public func drainInbox() {
        let events = broker.inboxes[loopIndex].take()
        if !events.isEmpty { fanOut(events) }
    }

    /// Appends `events` (in id order) to this loop's logs.
    public func fanOut(_ events: [EncodedEvent]) {
        // Queue limits are checked before appending the new batch, not after: by now every
        // subscriber without a send in flight has had the chance to hand its backlog to the kernel,
        // so a subscriber is judged slow only when it really did not keep up — never because one
        // iteration's batch was large.
        for log in dirtyLogs where log.maintenanceDue(limits: limits) { maintain(log) }
        for log in pendingMaintenance where log.maintenanceDue(limits: limits) { maintain(log) }
        pendingMaintenance.removeAll(keepingCapacity: true)
        for event in events {
            guard let logs = logsByTopic[event.topic] else { continue }
            for log in logs {
                if !log.dirty { dirtyLogs.append(log) }
                switch log.key.format {
                case .sse: log.append(event.sse.buffer)
                case .webSocket(let format): log.append(event.webSocketFrame(format).buffer)
                }
                log.lastEventID = event.id
            }
            eventsFannedOut &+= 1
        }
    }

    /// Calls `body` for every subscriber of a log that received events since the last call and
    /// that has unsent bytes and no send in flight. `body` should start that subscriber's send.
    ///
    /// With `now` (CLOCK_MONOTONIC ns) and a `coalesce` policy, a log whose unreleased events are
    /// fewer than the policy's bytes (and under half the queue limits) is held back — skipped by
    /// this pass and kept for the next — until they have waited `CoalescePolicy.delay`; then its
    /// subscribers get everything in one send each. `holdDeadline` tells when. Without `now`
    /// (drain, tests) everything is released at once.
    public func forEachReadySubscriber(now: UInt64? = nil, _ body: (OutboundQueue) -> Void) {
        holdDeadline = 0
        guard !dirtyLogs.isEmpty else { return }
        let logs = dirtyLogs
        dirtyLogs.removeAll(keepingCapacity: true)
        let policy = coalesce
        for log in logs {
            if let policy, let now, shouldHold(log, policy, now: now) {
                dirtyLogs.append(log)  // still dirty: fanOut must not add it twice
                continue
            }
            if log.maintenanceDue(limits: limits) { pendingMaintenance.append(log) }
            log.dirty = false
            log.heldSince = 0
            log.releasedHead = log.head
            log.releasedHeadEvent = log.headEvent
            log.passHead = log.head
            log.passHeadEvent = log.headEvent
            for s in log.subscribers where !s.isSending && s.position < log.releasedHead {
                body(s)
            }
        }
    }

    /// Whether `log`'s unreleased events wait for more (see `forEachReadySubscriber(now:_:)`);
    /// updates `holdDeadline`.
    private func shouldHold(_ log: StreamLog, _ policy: CoalescePolicy, now: UInt64) -> Bool {
        let bytes = log.head - log.passHead
        let events = log.headEvent - log.passHeadEvent
        guard bytes < UInt64(min(policy.bytes, limits.bytes / 2)), events < UInt64(max(1, limits.events / 2)) else {
            return false
        }
        if log.heldSince == 0 {
            // Start holding: take back what `append` released since the last pass. Nothing was
            // handed out from it unless a send started between the append and this pass (a
            // subscriber that finished a send then); such a cursor is simply ahead of the mark.
            log.heldSince = now
            log.releasedHead = log.passHead
            log.releasedHeadEvent = log.passHeadEvent
        }
        let deadline = log.heldSince &+ policy.delayNanoseconds
        guard now < deadline else { return false }
        holdDeadline = holdDeadline == 0 ? deadline : min(holdDeadline, deadline)
        return true
    }

    /// Subscribes `queue` to `topics` (already validated, at most the configured count).
    ///
    /// Order of operations, which makes the replay/live seam exact: register with the Broker and
    /// take the replay snapshot together with whatever sat in this loop's inbox (atomically with
    /// publishes); fan the taken inbox out to the existing subscribers; only then attach the new
    /// subscriber at the log's head. Everything up to the snapshot comes from the replay; everything
    /// after it arrives through the inbox into the log, past the new cursor.
    ///
    /// The caller enqueues the returned gap signal and replay events on `queue` (before any live
    /// byte: private segments always go first).
    public func subscribe(
        _ queue: OutboundQueue, topics: [String], format: StreamFormat, lastEventID: String?, nowMilliseconds: UInt64
    ) -> Broker.Subscription {
        var subscription = broker.subscribe(
            loop: loopIndex, topics: topics, lastEventID: lastEventID, nowMilliseconds: nowMilliseconds)
        if !subscription.pendingInbox.isEmpty {
            fanOut(subscription.pendingInbox)
            subscription.pendingInbox = []
        }
        attach(queue, key: StreamKey(topics: topics, format: format))
        return subscription
    }

    /// Detaches `queue` from its log and unregisters it from the Broker. Idempotent.
    public func unsubscribe(_ queue: OutboundQueue) {
        guard let log = queue.log else { return }
        detach(queue, from: log)
    }

    func detach(_ queue: OutboundQueue, from log: StreamLog) {
        log.detach(queue)
        subscriberCount -= 1
        broker.unsubscribe(loop: loopIndex, topics: log.key.topics)
        if log.subscribers.isEmpty {
            logsByKey[log.key] = nil
            for topic in log.key.topics {
                logsByTopic[topic]?.removeAll { $0 === log }
                if logsByTopic[topic]?.isEmpty == true { logsByTopic[topic] = nil }
            }
            dirtyLogs.removeAll { $0 === log }
            pendingMaintenance.removeAll { $0 === log }
        }
    }

    private func maintain(_ log: StreamLog) {
        log.maintain(limits: limits) { s in
            switch slowPolicy {
            case .disconnect:
                slowDisconnects &+= 1
                for t in log.key.topics { slowByTopic[t, default: (0, 0)].disconnects &+= 1 }
                slowReports.append(SlowReport(queue: s, topics: log.key.topics, policy: .disconnect, skippedEvents: 0))
                evicted.append(s)
                detach(s, from: log)
            case .drop:
                let skipped = s.skipToHead()
                slowDrops &+= skipped
                for t in log.key.topics { slowByTopic[t, default: (0, 0)].droppedEvents &+= skipped }
                slowReports.append(SlowReport(queue: s, topics: log.key.topics, policy: .drop, skippedEvents: skipped))
            }
        }
    }

    /// Runs queue-limit checks and frees chunks on every log (from the loop's periodic tick).
    public func maintainAll() {
        for log in Array(logsByKey.values) { maintain(log) }
    }

    /// Subscribers the `disconnect` policy removed since the last call; the server closes them
    /// (after their send in flight, if any, completes).
    public func takeEvicted() -> [OutboundQueue] {
        if evicted.isEmpty { return [] }
        defer { evicted.removeAll() }
        return evicted
    }

    /// Policy firings since the last call (for logging with topic and peer address).
    public func takeSlowReports() -> [SlowReport] {
        if slowReports.isEmpty { return [] }
        defer { slowReports.removeAll() }
        return slowReports
    }

    /// Calls `body` for every attached subscriber (heartbeats, drain).
    public func forEachSubscriber(_ body: (OutboundQueue) -> Void) {
        for log in logsByKey.values { for s in log.subscribers { body(s) } }
    }

    /// Bytes held by this loop's logs.
    public var retainedBytes: Int { logsByKey.values.reduce(0) { $0 + $1.retainedBytes } }
    /// Number of logs.
    public var logCount: Int { logsByKey.count }
}
