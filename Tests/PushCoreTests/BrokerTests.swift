import Synchronization
import Testing
@testable import PushCore

final class WakeCounter: Sendable {
    let count = Atomic<Int>(0)
    var value: Int { count.load(ordering: .relaxed) }
    func attach(to inbox: LoopInbox) {
        inbox.attach { [self] in count.add(1, ordering: .relaxed) }
    }
}

func bytes(_ s: String) -> SharedBytes { SharedBytes(string: s) }

let roomyLimits = ReplayRing.Limits(events: 10_000, bytes: 1 << 30, maxAgeMilliseconds: 10_000_000)

@Suite("Broker")
struct BrokerTests {
    @Test func idsStrictlyIncreaseAndAreAboveBoot() {
        let broker = Broker(loopCount: 1, replayLimits: roomyLimits, nowMilliseconds: 1000)
        #expect(broker.bootID == EventID(milliseconds: 1000, sequence: 0))
        #expect(broker.lastID == broker.bootID)
        var previous = broker.bootID
        let clock: [UInt64] = [1000, 1000, 999, 1001, 1001, 500, 2000, 2000]
        for now in clock {
            let e = broker.publish(topic: "t", name: nil, data: bytes("x"), fromLoop: nil, nowMilliseconds: now)
            #expect(previous < e.id)
            previous = e.id
        }
        #expect(broker.lastID == previous)
        #expect(broker.publishedCount == UInt64(clock.count))
    }

    @Test func idFloorIsRespected() {
        let floor = EventID(milliseconds: 5000, sequence: 7)
        let broker = Broker(loopCount: 1, replayLimits: roomyLimits, idFloor: floor, nowMilliseconds: 100)
        #expect(floor < broker.bootID)
        let e = broker.publish(topic: "t", name: nil, data: bytes("x"), fromLoop: nil, nowMilliseconds: 100)
        #expect(broker.bootID < e.id)
    }

    @Test func publishReturnsEncodedEvent() {
        let broker = Broker(loopCount: 1, replayLimits: roomyLimits, nowMilliseconds: 1000)
        let e = broker.publish(topic: "a/b", name: "n", data: bytes("d"), fromLoop: nil, nowMilliseconds: 1001)
        #expect(e.topic == "a/b")
        #expect(e.name == "n")
        #expect(e.sse.array.text == "id: \(e.id)\nevent: n\ndata: d\n\n")
    }

    @Test func inboxReceivesOnlyTopicsWithInterest() {
        let broker = Broker(loopCount: 2, replayLimits: roomyLimits, nowMilliseconds: 1000)
        _ = broker.subscribe(loop: 0, topics: ["a"], lastEventID: nil, nowMilliseconds: 1000)
        _ = broker.subscribe(loop: 1, topics: ["b", "c"], lastEventID: nil, nowMilliseconds: 1000)
        let ea = broker.publish(topic: "a", name: nil, data: bytes("1"), fromLoop: nil, nowMilliseconds: 1001)
        let eb = broker.publish(topic: "b", name: nil, data: bytes("2"), fromLoop: nil, nowMilliseconds: 1001)
        _ = broker.publish(topic: "z", name: nil, data: bytes("3"), fromLoop: nil, nowMilliseconds: 1001)
        let ec = broker.publish(topic: "c", name: nil, data: bytes("4"), fromLoop: nil, nowMilliseconds: 1001)
        #expect(broker.inboxes[0].take().map(\.id) == [ea.id])
        #expect(broker.inboxes[1].take().map(\.id) == [eb.id, ec.id])
        #expect(broker.inboxes[0].take().isEmpty)
        // After unsubscribe nothing more arrives.
        broker.unsubscribe(loop: 0, topics: ["a"])
        _ = broker.publish(topic: "a", name: nil, data: bytes("5"), fromLoop: nil, nowMilliseconds: 1002)
        #expect(broker.inboxes[0].take().isEmpty)
    }

    @Test func interestIsCounted() {
        let broker = Broker(loopCount: 1, replayLimits: roomyLimits, nowMilliseconds: 1000)
        _ = broker.subscribe(loop: 0, topics: ["a"], lastEventID: nil, nowMilliseconds: 1000)
        _ = broker.subscribe(loop: 0, topics: ["a"], lastEventID: nil, nowMilliseconds: 1000)
        broker.unsubscribe(loop: 0, topics: ["a"])
        _ = broker.publish(topic: "a", name: nil, data: bytes("1"), fromLoop: nil, nowMilliseconds: 1001)
        #expect(broker.inboxes[0].take().count == 1)
        broker.unsubscribe(loop: 0, topics: ["a"])
        broker.unsubscribe(loop: 0, topics: ["a"])  // extra unsubscribe does not go negative
        _ = broker.subscribe(loop: 0, topics: ["a"], lastEventID: nil, nowMilliseconds: 1000)
        broker.unsubscribe(loop: 0, topics: ["a"])
        _ = broker.publish(topic: "a", name: nil, data: bytes("2"), fromLoop: nil, nowMilliseconds: 1001)
        #expect(broker.inboxes[0].take().isEmpty)
    }

    @Test func wakeOnlyOnEmptyToNonEmptyAndNotForOwnLoop() {
        let broker = Broker(loopCount: 2, replayLimits: roomyLimits, nowMilliseconds: 1000)
        let w0 = WakeCounter(), w1 = WakeCounter()
        w0.attach(to: broker.inboxes[0])
        w1.attach(to: broker.inboxes[1])
        _ = broker.subscribe(loop: 0, topics: ["t"], lastEventID: nil, nowMilliseconds: 1000)
        _ = broker.subscribe(loop: 1, topics: ["t"], lastEventID: nil, nowMilliseconds: 1000)
        broker.publish(topic: "t", name: nil, data: bytes("1"), fromLoop: nil, nowMilliseconds: 1001)
        #expect(w0.value == 1 && w1.value == 1)
        broker.publish(topic: "t", name: nil, data: bytes("2"), fromLoop: nil, nowMilliseconds: 1001)
        #expect(w0.value == 1 && w1.value == 1)  // inboxes were not empty
        _ = broker.inboxes[0].take()
        broker.publish(topic: "t", name: nil, data: bytes("3"), fromLoop: nil, nowMilliseconds: 1001)
        #expect(w0.value == 2 && w1.value == 1)
        _ = broker.inboxes[0].take()
        _ = broker.inboxes[1].take()
        broker.publish(topic: "t", name: nil, data: bytes("4"), fromLoop: 0, nowMilliseconds: 1001)
        #expect(w0.value == 2 && w1.value == 2)  // the publishing loop is not woken
        #expect(broker.inboxes[0].take().count == 1)  // but its inbox has the event
        _ = broker.inboxes[1].take()
        // A batch wakes each loop once.
        _ = broker.publish(
            batch: [("t", nil, bytes("5")), ("t", nil, bytes("6")), ("u", nil, bytes("7"))], fromLoop: nil,
            nowMilliseconds: 1002)
        #expect(w0.value == 3 && w1.value == 3)
        // No interest, no wake.
        _ = broker.inboxes[0].take()
        _ = broker.inboxes[1].take()
        broker.publish(topic: "nobody", name: nil, data: bytes("8"), fromLoop: nil, nowMilliseconds: 1002)
        #expect(w0.value == 3 && w1.value == 3)
    }

    @Test func batchGetsConsecutiveIdsInOrder() {
        let broker = Broker(loopCount: 1, replayLimits: roomyLimits, nowMilliseconds: 1000)
        _ = broker.subscribe(loop: 0, topics: ["a", "b"], lastEventID: nil, nowMilliseconds: 1000)
        let first = broker.publish(topic: "a", name: nil, data: bytes("0"), fromLoop: nil, nowMilliseconds: 1001)
        let batch = broker.publish(
            batch: [("a", nil, bytes("1")), ("b", "x", bytes("2")), ("a", nil, bytes("3"))], fromLoop: nil,
            nowMilliseconds: 1001)
        #expect(batch.map(\.id.description) == ["1001-1", "1001-2", "1001-3"])
        #expect(batch.map(\.topic) == ["a", "b", "a"])
        #expect(broker.inboxes[0].take().map(\.id) == [first.id] + batch.map(\.id))
        #expect(broker.publishedCount == 4)
    }

    @Test func subscribeWithoutCursorHasNoReplayNoGap() {
        let broker = Broker(loopCount: 1, replayLimits: roomyLimits, nowMilliseconds: 1000)
        broker.publish(topic: "t", name: nil, data: bytes("1"), fromLoop: nil, nowMilliseconds: 1001)
        let s = broker.subscribe(loop: 0, topics: ["t"], lastEventID: nil, nowMilliseconds: 1001)
        #expect(s.replay.isEmpty)
        #expect(s.gap == nil)
        #expect(s.pendingInbox.isEmpty)
    }

    @Test func subscribeWithCursorReplaysNewerInOrder() {
        let broker = Broker(loopCount: 1, replayLimits: roomyLimits, nowMilliseconds: 1000)
        let e = (0..<5).map { i in
            broker.publish(topic: "t", name: nil, data: bytes("\(i)"), fromLoop: nil, nowMilliseconds: 1001 + UInt64(i))
        }
        broker.publish(topic: "other", name: nil, data: bytes("o"), fromLoop: nil, nowMilliseconds: 1010)
        let s = broker.subscribe(loop: 0, topics: ["t"], lastEventID: e[1].id.description, nowMilliseconds: 1010)
        #expect(s.gap == nil)
        #expect(s.replay.map(\.id) == [e[2].id, e[3].id, e[4].id])
        let latest = broker.subscribe(loop: 0, topics: ["t"], lastEventID: e[4].id.description, nowMilliseconds: 1010)
        #expect(latest.gap == nil)
        #expect(latest.replay.isEmpty)
        // A cursor from another topic's event between two of ours.
        let other = broker.lastID
        let mid = broker.subscribe(loop: 0, topics: ["t"], lastEventID: other.description, nowMilliseconds: 1010)
        #expect(mid.gap == nil && mid.replay.isEmpty)
    }

    @Test func multiTopicReplayIsMergedById() {
        let broker = Broker(loopCount: 1, replayLimits: roomyLimits, nowMilliseconds: 1000)
        var all: [EncodedEvent] = []
        for i in 0..<12 {
            let topic = ["a", "b", "c"][i * 7 % 3]
            all.append(broker.publish(topic: topic, name: nil, data: bytes("\(i)"), fromLoop: nil, nowMilliseconds: 1001))
        }
        let s = broker.subscribe(loop: 0, topics: ["b", "a"], lastEventID: all[2].id.description, nowMilliseconds: 1001)
        #expect(s.gap == nil)
        let expected = all[3...].filter { $0.topic == "a" || $0.topic == "b" }.map(\.id)
        #expect(s.replay.map(\.id) == expected)
    }

    @Test func gapForMalformedCursor() {
        let broker = Broker(loopCount: 1, replayLimits: roomyLimits, nowMilliseconds: 1000)
        let e = broker.publish(topic: "t", name: nil, data: bytes("1"), fromLoop: nil, nowMilliseconds: 1001)
        for bad in ["", "junk", "12", "1-2-3", " 1001-0"] {
            let s = broker.subscribe(loop: 0, topics: ["t"], lastEventID: bad, nowMilliseconds: 1001)
            #expect(s.gap == Broker.Gap(lastEventID: bad, oldestRetained: e.id))
        }
    }

    @Test func gapForCursorBeforeBoot() {
        let broker = Broker(loopCount: 1, replayLimits: roomyLimits, nowMilliseconds: 1000)
        let e = broker.publish(topic: "t", name: nil, data: bytes("1"), fromLoop: nil, nowMilliseconds: 1001)
        let s = broker.subscribe(loop: 0, topics: ["t"], lastEventID: "999-5", nowMilliseconds: 1001)
        #expect(s.gap == Broker.Gap(lastEventID: "999-5", oldestRetained: e.id))
        #expect(s.replay.map(\.id) == [e.id])  // this run's events are still replayed after the signal
    }

    /// `Broker.init` says "treat `boot` itself as 'before this run'": no event of this run has the
    /// boot id, so a client holding exactly that id got it from a previous run and may have missed
    /// events after it. Expected: a gap.
    @Test func gapForCursorEqualToBootID() {
        let broker = Broker(loopCount: 1, replayLimits: roomyLimits, nowMilliseconds: 1000)
        let e = broker.publish(topic: "t", name: nil, data: bytes("1"), fromLoop: nil, nowMilliseconds: 1001)
        let s = broker.subscribe(loop: 0, topics: ["t"], lastEventID: broker.bootID.description, nowMilliseconds: 1001)
        #expect(s.gap == Broker.Gap(lastEventID: broker.bootID.description, oldestRetained: e.id))
        #expect(s.replay.map(\.id) == [e.id])
    }

    @Test func gapForFutureCursor() {
        let broker = Broker(loopCount: 1, replayLimits: roomyLimits, nowMilliseconds: 1000)
        let e = broker.publish(topic: "t", name: nil, data: bytes("1"), fromLoop: nil, nowMilliseconds: 1001)
        let future = EventID(milliseconds: e.id.milliseconds, sequence: e.id.sequence + 1).description
        let s = broker.subscribe(loop: 0, topics: ["t"], lastEventID: future, nowMilliseconds: 1001)
        #expect(s.gap == Broker.Gap(lastEventID: future, oldestRetained: e.id))
        #expect(s.replay.isEmpty)
        // The newest assigned id exactly is not a gap.
        let exact = broker.subscribe(loop: 0, topics: ["t"], lastEventID: e.id.description, nowMilliseconds: 1001)
        #expect(exact.gap == nil)
    }

    @Test func gapBoundariesAroundEviction() {
        let broker = Broker(
            loopCount: 1, replayLimits: .init(events: 3, bytes: 1 << 30, maxAgeMilliseconds: 10_000_000),
            nowMilliseconds: 1000)
        let e = (0..<6).map { i in
            broker.publish(topic: "t", name: nil, data: bytes("\(i)"), fromLoop: nil, nowMilliseconds: 1001)
        }
        // Retained: e3 e4 e5; evicted through e2.
        func sub(_ cursor: EventID) -> Broker.Subscription {
            broker.subscribe(loop: 0, topics: ["t"], lastEventID: cursor.description, nowMilliseconds: 1001)
        }
        // Cursor exactly at the oldest retained: no gap, the rest is replayed.
        let atOldest = sub(e[3].id)
        #expect(atOldest.gap == nil)
        #expect(atOldest.replay.map(\.id) == [e[4].id, e[5].id])
        // Cursor at the last evicted event (one before the oldest): the client saw it, nothing missed.
        let atEvicted = sub(e[2].id)
        #expect(atEvicted.gap == nil)
        #expect(atEvicted.replay.map(\.id) == [e[3].id, e[4].id, e[5].id])
        // Cursor older than an evicted event: gap, and everything retained is replayed.
        let older = sub(e[1].id)
        #expect(older.gap == Broker.Gap(lastEventID: e[1].id.description, oldestRetained: e[3].id))
        #expect(older.replay.map(\.id) == [e[3].id, e[4].id, e[5].id])
    }

    @Test func gapWhenOneOfSeveralTopicsEvicted() {
        let broker = Broker(
            loopCount: 1, replayLimits: .init(events: 2, bytes: 1 << 30, maxAgeMilliseconds: 10_000_000),
            nowMilliseconds: 1000)
        let a0 = broker.publish(topic: "a", name: nil, data: bytes("a0"), fromLoop: nil, nowMilliseconds: 1001)
        let b0 = broker.publish(topic: "b", name: nil, data: bytes("b0"), fromLoop: nil, nowMilliseconds: 1001)
        let b1 = broker.publish(topic: "b", name: nil, data: bytes("b1"), fromLoop: nil, nowMilliseconds: 1001)
        let b2 = broker.publish(topic: "b", name: nil, data: bytes("b2"), fromLoop: nil, nowMilliseconds: 1001)
        // "b" evicted b0; a cursor at a0 missed b0.
        let s = broker.subscribe(loop: 0, topics: ["a", "b"], lastEventID: a0.id.description, nowMilliseconds: 1001)
        #expect(s.gap == Broker.Gap(lastEventID: a0.id.description, oldestRetained: a0.id))
        #expect(s.replay.map(\.id) == [b1.id, b2.id])
        _ = b0
    }

    @Test func gapAfterAgeEvictionAtSubscribe() {
        let broker = Broker(
            loopCount: 1, replayLimits: .init(events: 100, bytes: 1 << 30, maxAgeMilliseconds: 1000),
            nowMilliseconds: 1000)
        let e0 = broker.publish(topic: "t", name: nil, data: bytes("0"), fromLoop: nil, nowMilliseconds: 1001)
        let e1 = broker.publish(topic: "t", name: nil, data: bytes("1"), fromLoop: nil, nowMilliseconds: 1500)
        // At 2200, e0 (1001) is older than 1000 ms; subscribe evicts it first.
        let s = broker.subscribe(loop: 0, topics: ["t"], lastEventID: "1000-5", nowMilliseconds: 2200)
        #expect(s.gap == Broker.Gap(lastEventID: "1000-5", oldestRetained: e1.id))
        #expect(s.replay.map(\.id) == [e1.id])
        let ok = broker.subscribe(loop: 0, topics: ["t"], lastEventID: e0.id.description, nowMilliseconds: 2200)
        #expect(ok.gap == nil)
        #expect(ok.replay.map(\.id) == [e1.id])
    }

    /// A topic whose ring emptied (age) and that had no subscriber is forgotten by `expire`,
    /// and with it the ring's `evictedThrough`. A client that saw the first event and reconnects
    /// must be told it missed the rest; it is not.
    @Test func gapSurvivesTopicBeingForgotten() {
        let broker = Broker(
            loopCount: 1, replayLimits: .init(events: 100, bytes: 1 << 30, maxAgeMilliseconds: 1000),
            nowMilliseconds: 1000)
        let e0 = broker.publish(topic: "t", name: nil, data: bytes("0"), fromLoop: nil, nowMilliseconds: 1001)
        broker.publish(topic: "t", name: nil, data: bytes("1"), fromLoop: nil, nowMilliseconds: 1002)
        broker.publish(topic: "t", name: nil, data: bytes("2"), fromLoop: nil, nowMilliseconds: 1003)
        broker.expire(nowMilliseconds: 5000)
        #expect(broker.topicCount == 0)
        let s = broker.subscribe(loop: 0, topics: ["t"], lastEventID: e0.id.description, nowMilliseconds: 5000)
        #expect(s.replay.isEmpty)
        #expect(s.gap == Broker.Gap(lastEventID: e0.id.description, oldestRetained: nil))
    }

    /// `GET /subscribe?topic=a&topic=a`: duplicate topics must not duplicate replayed events, and
    /// unsubscribing (LoopFanout passes the de-duplicated `StreamKey.topics`) must release all interest.
    @Test func duplicateTopicsInSubscribe() {
        let broker = Broker(loopCount: 1, replayLimits: roomyLimits, nowMilliseconds: 1000)
        let e0 = broker.publish(topic: "a", name: nil, data: bytes("0"), fromLoop: nil, nowMilliseconds: 1001)
        let e1 = broker.publish(topic: "a", name: nil, data: bytes("1"), fromLoop: nil, nowMilliseconds: 1001)
        let fanout = LoopFanout(
            loopIndex: 0, broker: broker, limits: QueueLimits(events: 100, bytes: 1 << 20), slowPolicy: .disconnect)
        let q = OutboundQueue(token: 1)
        let s = fanout.subscribe(q, topics: ["a", "a"], format: .sse, lastEventID: e0.id.description, nowMilliseconds: 1001)
        #expect(s.replay.map(\.id) == [e1.id])
        fanout.unsubscribe(q)
        broker.publish(topic: "a", name: nil, data: bytes("2"), fromLoop: nil, nowMilliseconds: 1002)
        #expect(broker.inboxes[0].take().isEmpty)
    }

    @Test func expireForgetsOnlyDeadTopics() {
        let broker = Broker(
            loopCount: 1, replayLimits: .init(events: 100, bytes: 1 << 30, maxAgeMilliseconds: 1000),
            nowMilliseconds: 1000)
        broker.publish(topic: "old", name: nil, data: bytes("0"), fromLoop: nil, nowMilliseconds: 1001)
        broker.publish(topic: "watched", name: nil, data: bytes("0"), fromLoop: nil, nowMilliseconds: 1001)
        broker.publish(topic: "fresh", name: nil, data: bytes("0"), fromLoop: nil, nowMilliseconds: 4500)
        _ = broker.subscribe(loop: 0, topics: ["watched"], lastEventID: nil, nowMilliseconds: 1001)
        #expect(broker.topicCount == 3)
        broker.expire(nowMilliseconds: 5000)
        #expect(broker.topicCount == 2)  // "old" gone; "watched" has a subscriber; "fresh" retained
    }
}
