/// Changing a subscriber's topic set while it is connected (the WebSocket `subscribe` and
/// `unsubscribe` commands, API.md "Subscribe").
///
/// A stream log serves one (topic set, format), so a subscriber whose set changes moves to
/// another log. The move must lose nothing and repeat nothing on the topics it keeps:
///
/// 1. Drain the loop's inbox, so the old log holds every event of the old topics published so far.
/// 2. Copy the subscriber's unsent range of the old log into one private segment (it goes out
///    before anything else still to come) and note `C`, the newest event id the subscriber has
///    now been given on its old topics: the old log's last id if the log grew since the
///    subscriber attached, else the cursor the caller recorded at attach time.
/// 3. Register the new set with the Broker (before releasing the old one, so a kept topic's
///    interest never drops to zero on this loop), taking its replay snapshot after `min(C, L)`
///    (`L`: the client's cursor for the added topic) and the loop's pending inbox.
/// 4. Fan the pending inbox out (into the old log too, where this subscriber no longer reads).
/// 5. Detach from the old log, attach to the new log's head: everything after the snapshot
///    arrives there.
/// 6. Keep from the replay exactly the events the subscriber lacks: kept topics after `C`
///    (the events of step 4 — the seam), the added topic after `L` (none when no `L` was given:
///    the added topic is live from now, like a fresh subscription).
///
/// Hence: kept topics continue with no gap and no duplicate; an added topic starts at `L` or now.
/// A gap signal is reported only for a client cursor `L`; because the Broker evaluates it over the
/// whole new set after `min(C, L)`, it can be a false alarm (never a silent miss).
extension LoopFanout {
    /// What a move produced; the caller queues, in this order, `flushed`, then the replay
    /// (preceded by a gap signal when `gap` is set).
    public struct Move {
        /// The subscriber's unsent bytes of its old log (already framed), or nil.
        public var flushed: SharedBytes?
        /// Events to send before the new log's bytes, in id order.
        public var replay: [EncodedEvent]
        /// Set when the client's cursor for an added topic may have missed events.
        public var gap: Broker.Gap?
        /// An id at or after the snapshot such that every event of the new set up to it has been
        /// given (or is unwanted): store it as the next move's `sentThrough`.
        public var cursor: EventID?
        /// `queue.positionEvent` right after attaching: store it as the next move's `attachedAtEvent`.
        public var attachedAtEvent: UInt64
    }

    /// Moves `queue` from its log (if any) to the log of `topics` in `format` (no log when
    /// `topics` is empty). See the type's documentation for the algorithm.
    /// - Parameters:
    ///   - sentThrough: the cursor recorded when the subscriber last attached (nil if never).
    ///   - attachedAtEvent: the old log's `headEvent` when the subscriber attached.
    ///   - added: the topics of `topics` that are new to the subscriber.
    ///   - addedCursor: the client's `last_event_id` for the added topics, if any.
    public func resubscribe(
        _ queue: OutboundQueue, to topics: [String], format: StreamFormat, sentThrough: EventID?,
        attachedAtEvent: UInt64, added: Set<String>, addedCursor: String?, nowMilliseconds: UInt64
    ) -> Move {
        drainInbox()
        var move = Move(flushed: nil, replay: [], gap: nil, cursor: sentThrough, attachedAtEvent: 0)
        var c = sentThrough
        let old = queue.log
        if let old {
            var copy: [UInt8] = []
            var at = queue.position
            while let r = old.range(from: at) {
                copy.append(contentsOf: r.bytes)
                at = r.endOffset
            }
            if !copy.isEmpty { move.flushed = SharedBytes(copy) }
            queue.position = old.head
            queue.positionEvent = old.headEvent
            if old.headEvent > attachedAtEvent, let last = old.lastEventID, c.map({ last > $0 }) ?? true { c = last }
        }
        move.cursor = c
        guard !topics.isEmpty else {
            if let old { detach(queue, from: old) }
            return move
        }
        let kept = c.flatMap { $0 > broker.bootID ? $0 : nil }
        let l = addedCursor.flatMap { EventID(parsing: $0) }
        let snapshotCursor: String?
        if let addedCursor {
            if let kept, let l, kept < l { snapshotCursor = kept.description } else { snapshotCursor = addedCursor }
        } else {
            snapshotCursor = kept?.description
        }
        var subscription = broker.subscribe(
            loop: loopIndex, topics: topics, lastEventID: snapshotCursor, nowMilliseconds: nowMilliseconds)
        if !subscription.pendingInbox.isEmpty {
            fanOut(subscription.pendingInbox)
            subscription.pendingInbox = []
        }
        if let old { detach(queue, from: old) }
        attach(queue, key: StreamKey(topics: topics, format: format))
        move.attachedAtEvent = queue.positionEvent
        move.replay = subscription.replay.filter { e in
            if added.contains(e.topic) { return l.map { e.id > $0 } ?? false }
            return c.map { e.id > $0 } ?? false
        }
        if addedCursor != nil { move.gap = subscription.gap }
        // Every event of the new set up to the snapshot was given (old log, replay) or is not
        // wanted (an added topic without cursor); every later one arrives through the inbox into
        // the new log, so the next move's `C` comes from that log. Broker.lastID ≥ the snapshot.
        move.cursor = broker.lastID
        return move
    }

    /// Attaches `queue` at the head of the log for `key`, creating the log if needed.
    func attach(_ queue: OutboundQueue, key: StreamKey) {
        let log: StreamLog
        if let existing = logsByKey[key] {
            log = existing
        } else {
            log = StreamLog(key: key, chunkSize: chunkSize)
            logsByKey[key] = log
            for topic in key.topics { logsByTopic[topic, default: []].append(log) }
        }
        log.attach(queue)
        subscriberCount += 1
    }
}
