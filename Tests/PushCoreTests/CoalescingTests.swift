import Testing
@testable import PushCore

/// Write coalescing (`CoalescePolicy`, `LoopFanout.forEachReadySubscriber(now:_:)`): new events
/// are held back up to the delay, then go out together in one send per subscriber.
@Suite struct CoalescingTests {
    static let ms: UInt64 = 1_000_000

    /// One send pass at `now` (what `LoopWorker.iterationWillEnd` does); returns the tokens started.
    @discardableResult
    static func pass(_ h: LoopHarness, now: UInt64?) -> [UInt64] {
        h.fanout.drainInbox()
        var started: [UInt64] = []
        h.fanout.forEachReadySubscriber(now: now) { q in
            started.append(q.token)
            h.sockets[q.token]!.start()
        }
        return started
    }

    static func harness(delay: UInt64 = 5 * ms, bytes: Int = 4096, limits: QueueLimits = QueueLimits(events: 100_000, bytes: 1 << 28)) -> LoopHarness {
        let h = LoopHarness(limits: limits)
        h.fanout.coalesce = CoalescePolicy(delayNanoseconds: delay, bytes: bytes)
        return h
    }

    @Test func heldEventsGoOutTogetherAfterTheDelay() {
        let h = Self.harness()
        let (a, _) = h.subscribe(["t"])
        let (b, _) = h.subscribe(["t"])
        let t0: UInt64 = 1_000 * Self.ms
        h.publish("t", "1")
        #expect(Self.pass(h, now: t0).isEmpty)
        #expect(h.fanout.holdDeadline == t0 + 5 * Self.ms)
        h.publish("t", "2")
        #expect(Self.pass(h, now: t0 + 1 * Self.ms).isEmpty)
        // The deadline counts from the first held event, not the latest.
        #expect(h.fanout.holdDeadline == t0 + 5 * Self.ms)
        // A subscriber asking on its own (a finished send) gets nothing held either.
        #expect(!a.start())
        h.publish("t", "3")
        #expect(Set(Self.pass(h, now: t0 + 5 * Self.ms)) == [a.queue.token, b.queue.token])
        #expect(h.fanout.holdDeadline == 0)
        for s in [a, b] {
            s.complete()
            #expect(s.sends == 1)
            #expect(s.received.text == "id: \(h.published[0].id)\ndata: 1\n\nid: \(h.published[1].id)\ndata: 2\n\nid: \(h.published[2].id)\ndata: 3\n\n")
            #expect(s.queue.deliveredEvents == 3)
        }
        // Nothing held any more: the next event starts a new hold.
        h.publish("t", "4")
        #expect(Self.pass(h, now: t0 + 6 * Self.ms).isEmpty)
        #expect(h.fanout.holdDeadline == t0 + 11 * Self.ms)
    }

    @Test func aStreamWithEnoughBytesIsReleasedAtOnce() {
        let h = Self.harness(bytes: 100)
        let (a, _) = h.subscribe(["t"])
        h.publish("t", String(repeating: "x", count: 40))
        #expect(Self.pass(h, now: 1 * Self.ms).isEmpty)
        h.publish("t", String(repeating: "y", count: 40))  // two events: over 100 bytes with framing
        #expect(Self.pass(h, now: 2 * Self.ms) == [a.queue.token])
        a.complete()
        #expect(a.queue.deliveredEvents == 2)
        #expect(a.sends == 1)
    }

    @Test func aStreamNearHalfTheQueueLimitIsReleasedAtOnce() {
        // Queue limit 4 events: holding 2 would let the limit check judge a subscriber that only
        // waited for the hold, so the stream goes out at 2.
        let h = Self.harness(limits: QueueLimits(events: 4, bytes: 1 << 20))
        let (a, _) = h.subscribe(["t"])
        h.publish("t", "1")
        #expect(Self.pass(h, now: 1 * Self.ms).isEmpty)
        h.publish("t", "2")
        #expect(Self.pass(h, now: 2 * Self.ms) == [a.queue.token])
        a.complete()
        #expect(a.queue.deliveredEvents == 2)
        #expect(h.evicted.isEmpty)
    }

    @Test func eachStreamHasItsOwnDeadline() {
        let h = Self.harness()
        let (a, _) = h.subscribe(["t"])
        let (b, _) = h.subscribe(["u"])
        h.publish("t", "1")
        #expect(Self.pass(h, now: 10 * Self.ms).isEmpty)
        h.publish("u", "2")
        #expect(Self.pass(h, now: 12 * Self.ms).isEmpty)
        #expect(h.fanout.holdDeadline == 15 * Self.ms)
        #expect(Self.pass(h, now: 15 * Self.ms) == [a.queue.token])
        #expect(h.fanout.holdDeadline == 17 * Self.ms)
        #expect(Self.pass(h, now: 17 * Self.ms) == [b.queue.token])
    }

    @Test func aPassWithoutAClockReleasesEverything() {
        // Drain and shutdown flush with `now == nil`: nothing stays held.
        let h = Self.harness()
        let (a, _) = h.subscribe(["t"])
        h.publish("t", "1")
        #expect(Self.pass(h, now: 1 * Self.ms).isEmpty)
        #expect(Self.pass(h, now: nil) == [a.queue.token])
        a.complete()
        #expect(a.queue.deliveredEvents == 1)
    }

    @Test func withoutAPolicyEveryPassReleases() {
        let h = LoopHarness()
        let (a, _) = h.subscribe(["t"])
        h.publish("t", "1")
        #expect(Self.pass(h, now: 1 * Self.ms) == [a.queue.token])
        #expect(h.fanout.holdDeadline == 0)
    }

    @Test func manyEventsUnderHoldAreDeliveredInOrderWithoutLossOrDuplicates() {
        // A long run with random pass times: every subscriber receives exactly the published
        // stream, whatever the hold decided.
        let h = Self.harness(delay: 3 * Self.ms, bytes: 600, limits: QueueLimits(events: 1_000, bytes: 1 << 20))
        let subs = (0..<5).map { _ in h.subscribe(["t"]).0 }
        var now: UInt64 = Self.ms
        for i in 0..<2_000 {
            h.publish("t", "event \(i)")
            now += UInt64.random(in: 0...(2 * Self.ms))
            Self.pass(h, now: now)
            for s in subs where Bool.random() {
                s.complete()
                s.start()
            }
        }
        Self.pass(h, now: nil)
        for s in subs {
            s.complete()  // the send in flight, if any
            s.drain()
        }
        let expected = h.published.map { "id: \($0.id)\ndata: \($0.data.array.text)\n\n" }.joined()
        for s in subs {
            #expect(s.received.text == expected)
            #expect(s.queue.deliveredEvents == 2_000)
            #expect(s.sends < 2_000)  // coalesced
        }
        #expect(h.evicted.isEmpty)
    }
}
