import Foundation
import Synchronization
import Testing
@testable import PushCore

/// One loop and its server, simulated: publishes go through the Broker, `step()` is one loop
/// iteration (drain the inbox, start sends for ready subscribers, complete sends).
final class LoopHarness {
    let broker: Broker
    let fanout: LoopFanout
    var clock: UInt64 = 10_000
    private(set) var sockets: [UInt64: FakeSocket] = [:]
    /// Sockets that never complete a send.
    var stalled: Set<UInt64> = []
    /// Sockets that complete only every `n`th step.
    var completeEvery: [UInt64: Int] = [:]
    private(set) var evicted: [OutboundQueue] = []
    private(set) var published: [EncodedEvent] = []
    private(set) var steps = 0
    private var nextToken: UInt64 = 1

    init(
        limits: QueueLimits = QueueLimits(events: 100_000, bytes: 1 << 28), policy: SlowPolicy = .disconnect,
        chunkSize: Int = 16 * 1024, replay: ReplayRing.Limits = roomyLimits
    ) {
        broker = Broker(loopCount: 1, replayLimits: replay, nowMilliseconds: clock)
        fanout = LoopFanout(loopIndex: 0, broker: broker, limits: limits, slowPolicy: policy, chunkSize: chunkSize)
    }

    /// Subscribes a new connection the way the server does: gap signal, then replay, as private
    /// segments, then live bytes from the log.
    @discardableResult
    func subscribe(_ topics: [String], lastEventID: String? = nil, maxWrite: Int? = nil) -> (FakeSocket, Broker.Subscription) {
        let q = OutboundQueue(token: nextToken)
        nextToken += 1
        let sub = fanout.subscribe(q, topics: topics, format: .sse, lastEventID: lastEventID, nowMilliseconds: clock)
        if let gap = sub.gap {
            q.enqueue(SharedBytes(SSEEncoder.gap(lastEventID: gap.lastEventID, oldestRetained: gap.oldestRetained)))
        }
        for e in sub.replay { q.enqueue(e.sse) }
        let socket = FakeSocket(q, maxWrite: maxWrite)
        sockets[q.token] = socket
        socket.start()
        return (socket, sub)
    }

    @discardableResult
    func publish(_ topic: String, _ data: String, name: String? = nil) -> EncodedEvent {
        clock += UInt64.random(in: 0...1)
        let e = broker.publish(topic: topic, name: name, data: SharedBytes(string: data), fromLoop: nil, nowMilliseconds: clock)
        published.append(e)
        return e
    }

    /// One loop iteration.
    func step() {
        steps += 1
        fanout.drainInbox()
        fanout.forEachReadySubscriber { q in
            #expect(!q.isSending)
            #expect(q.hasPendingBytes)
            sockets[q.token]!.start()
        }
        for (token, socket) in sockets where !stalled.contains(token) {
            if let n = completeEvery[token], steps % n != 0 { continue }
            socket.complete()
            socket.start()
        }
        evicted += fanout.takeEvicted()
    }

    /// Lets every non-stalled socket send everything (end of a scenario).
    func finish() {
        step()
        fanout.maintainAll()
        evicted += fanout.takeEvicted()
        for (token, socket) in sockets where !stalled.contains(token) {
            socket.complete()
            socket.drain()
        }
    }

    func expected(_ topics: Set<String>, after cursor: EventID = .zero) -> [ParsedSSEEvent] {
        published.filter { topics.contains($0.topic) && $0.id > cursor }.map {
            ParsedSSEEvent(type: $0.name ?? "message", data: normalizedNewlines($0.data.array.text), lastEventID: $0.id.description)
        }
    }

    func expectedBytes(_ topics: Set<String>, after cursor: EventID = .zero) -> [UInt8] {
        published.filter { topics.contains($0.topic) && $0.id > cursor }.flatMap(\.sse.array)
    }
}

func randomData(maxLength: Int, using rng: inout some RandomNumberGenerator) -> String {
    let alphabet = Array("abc xyz:\r\n{}\"0123456789")
    return String((0..<Int.random(in: 0...maxLength, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
}


/// Compares long event lists without Swift Testing's (quadratic) collection diff; reports the
/// first difference.
func expectSame(
    _ got: [ParsedSSEEvent]?, _ expected: [ParsedSSEEvent], _ what: String = "",
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let got = got ?? []
    if got == expected { return }
    let i = (0..<min(got.count, expected.count)).first { got[$0] != expected[$0] } ?? min(got.count, expected.count)
    let g = i < got.count ? got[i].description : "<end>"
    let e = i < expected.count ? expected[i].description : "<end>"
    Issue.record(
        "\(what) events differ: got \(got.count), expected \(expected.count); first difference at #\(i): got \(g), expected \(e)",
        sourceLocation: sourceLocation)
}

func expectSameBytes(_ got: [UInt8], _ expected: [UInt8], _ what: String = "", sourceLocation: SourceLocation = #_sourceLocation) {
    if got == expected { return }
    let i = (0..<min(got.count, expected.count)).first { got[$0] != expected[$0] } ?? min(got.count, expected.count)
    Issue.record(
        "\(what) bytes differ: got \(got.count), expected \(expected.count); first difference at byte \(i)",
        sourceLocation: sourceLocation)
}

@Suite("LoopFanout")
struct LoopFanoutTests {
    @Test func singleSubscriberGetsEveryEventOnceInOrder() {
        var rng = SystemRandomNumberGenerator()
        let h = LoopHarness(chunkSize: 1024)
        let (s, sub) = h.subscribe(["t"])
        #expect(sub.replay.isEmpty && sub.gap == nil)
        for _ in 0..<300 {
            for _ in 0..<Int.random(in: 0...5, using: &rng) {
                h.publish("t", randomData(maxLength: 80, using: &rng), name: Bool.random(using: &rng) ? "n" : nil)
            }
            h.step()
        }
        h.finish()
        expectSameBytes(s.received, h.expectedBytes(["t"]))
        expectSame(s.parsed, h.expected(["t"]))
        #expect(s.queue.deliveredEvents == UInt64(h.published.count))
        #expect(s.queue.bytesWritten == UInt64(s.received.count))
        #expect(h.fanout.eventsFannedOut == UInt64(h.published.count))
    }

    @Test func coalescesEverythingQueuedSinceLastSend() {
        let h = LoopHarness()
        let (s, _) = h.subscribe(["t"])
        h.stalled = [s.queue.token]  // hold the first send
        h.publish("t", "one")
        h.step()
        #expect(s.handedOut.count == 1)
        for i in 0..<10 { h.publish("t", "e\(i)") }
        h.step()
        // Complete the first send; the next one holds all ten events.
        s.complete()
        #expect(s.start())
        #expect(s.handedOut.count == 2)
        #expect(s.handedOut[1] == h.published[1...].reduce(0) { $0 + $1.sse.count })
        s.complete()
        expectSame(s.parsed, h.expected(["t"]))
    }

    @Test func manySubscribersShortSendsNeverTearOrDuplicate() {
        var rng = SystemRandomNumberGenerator()
        let h = LoopHarness(chunkSize: 256)
        let writes: [Int?] = [nil, 1, 2, 3, 7, 50, nil, 1, 13, 300]
        let subs = writes.map { h.subscribe(["t"], maxWrite: $0).0 }
        for _ in 0..<200 {
            for _ in 0..<Int.random(in: 0...4, using: &rng) {
                // Some events are bigger than the 256-byte chunk.
                let big = Int.random(in: 0..<10, using: &rng) == 0
                h.publish("t", randomData(maxLength: big ? 900 : 60, using: &rng))
            }
            h.step()
        }
        h.finish()
        let expectedBytes = h.expectedBytes(["t"])
        let expected = h.expected(["t"])
        for s in subs {
            expectSameBytes(s.received, expectedBytes, "maxWrite \(String(describing: s.maxWrite))")
            expectSame(s.parsed, expected)
            #expect(s.queue.deliveredEvents == UInt64(h.published.count))
        }
        #expect(h.evicted.isEmpty)
        // All caught up: every chunk can go.
        h.fanout.maintainAll()
        #expect(h.fanout.retainedBytes == 0)
    }

    @Test func eventsLargerThanChunkSize() {
        let h = LoopHarness(chunkSize: 64)
        let (s, _) = h.subscribe(["t"], maxWrite: 100)
        let sizes = [10, 63, 64, 65, 500, 1, 4000, 30]
        for n in sizes { h.publish("t", String(repeating: "x", count: n)) }
        h.step()
        h.finish()
        expectSame(s.parsed, h.expected(["t"]))
        expectSameBytes(s.received, h.expectedBytes(["t"]))
    }

    @Test func stalledSubscriberIsDisconnectedAndMemoryStaysBounded() {
        let limits = QueueLimits(events: 100, bytes: 16 * 1024)
        let chunk = 4096
        let h = LoopHarness(limits: limits, policy: .disconnect, chunkSize: chunk)
        let (fast1, _) = h.subscribe(["t"])
        let (stuck, _) = h.subscribe(["t"])
        let (fast2, _) = h.subscribe(["t"], maxWrite: 200)  // short sends, but faster than the publisher
        h.stalled = [stuck.queue.token]
        var maxRetained = 0
        for i in 0..<10_000 {
            h.publish("t", "event \(i) " + String(repeating: "p", count: i % 120))
            h.step()
            maxRetained = max(maxRetained, h.fanout.retainedBytes)
        }
        h.finish()
        #expect(h.evicted.map(\.token) == [stuck.queue.token])
        #expect(stuck.queue.log == nil)
        #expect(h.fanout.slowDisconnects == 1)
        #expect(h.fanout.subscriberCount == 2)
        #expect(maxRetained <= limits.bytes + 3 * chunk, "log held \(maxRetained) bytes")
        // Whatever the stuck one was handed before the disconnect is whole events (a prefix).
        let stuckEvents = SSEParser.parse(Array(stuck.inFlight.map { Array($0) } ?? [])).events
        expectSame(stuckEvents, Array(h.expected(["t"]).prefix(stuckEvents.count)))
        // The others got everything.
        expectSame(fast1.parsed, h.expected(["t"]))
        expectSame(fast2.parsed, h.expected(["t"]))
        expectSameBytes(fast1.received, fast2.received)
    }

    @Test func stalledSubscriberWithDropPolicy() {
        let limits = QueueLimits(events: 50, bytes: 8 * 1024)
        let chunk = 2048
        let h = LoopHarness(limits: limits, policy: .drop, chunkSize: chunk)
        let (fast, _) = h.subscribe(["t"])
        let (stuck, _) = h.subscribe(["t"])
        h.stalled = [stuck.queue.token]
        var maxRetained = 0
        for i in 0..<10_000 {
            h.publish("t", "e\(i)")
            h.step()
            maxRetained = max(maxRetained, h.fanout.retainedBytes)
        }
        h.finish()
        #expect(h.evicted.isEmpty)
        #expect(stuck.queue.log != nil)
        #expect(maxRetained <= limits.bytes + 3 * chunk, "log held \(maxRetained) bytes")
        expectSame(fast.parsed, h.expected(["t"]))
        // The stuck one was handed one range; everything after it was dropped, except what is still
        // queued (under the limit) behind its cursor.
        let queued = stuck.queue.log!.headEvent - stuck.queue.positionEvent
        #expect(queued <= UInt64(limits.events))
        #expect(stuck.queue.deliveredEvents + stuck.queue.droppedEvents + queued == UInt64(h.published.count))
        #expect(stuck.queue.droppedEvents > UInt64(h.published.count) - 2 * UInt64(limits.events))
        #expect(h.fanout.slowDrops == stuck.queue.droppedEvents)
    }

    @Test func slowSubscriberWithDropPolicyGetsWholeEventsOnly() {
        var rng = SystemRandomNumberGenerator()
        let limits = QueueLimits(events: 40, bytes: 4 * 1024)
        let h = LoopHarness(limits: limits, policy: .drop, chunkSize: 1024)
        let (fast, _) = h.subscribe(["t"])
        let (slow, _) = h.subscribe(["t"], maxWrite: 37)
        h.completeEvery[slow.queue.token] = 9
        for _ in 0..<400 {
            for _ in 0..<Int.random(in: 0...6, using: &rng) {
                h.publish("t", randomData(maxLength: 120, using: &rng))
            }
            h.step()
        }
        h.finish()
        let expected = h.expected(["t"])
        expectSame(fast.parsed, expected)
        #expect(fast.queue.droppedEvents == 0)
        // Whole events only: the stream parses into events that are a subsequence of the published
        // ones with nothing torn (every event's id, type and data match the published event).
        let got = slow.parsed
        let byID = Dictionary(uniqueKeysWithValues: expected.map { ($0.lastEventID, $0) })
        var lastIndex = -1
        let order = Dictionary(uniqueKeysWithValues: expected.enumerated().map { ($1.lastEventID, $0) })
        for e in got {
            #expect(byID[e.lastEventID] == e, "torn or unknown event \(e)")
            let idx = order[e.lastEventID] ?? -1
            #expect(idx > lastIndex, "out of order or duplicate \(e)")
            lastIndex = idx
        }
        // And the byte stream is exactly those events' bytes (no partial event anywhere).
        let sseByID = Dictionary(uniqueKeysWithValues: h.published.map { ($0.id.description, $0.sse.array) })
        expectSameBytes(slow.received, got.flatMap { sseByID[$0.lastEventID]! })
        #expect(slow.queue.droppedEvents > 0)
        #expect(UInt64(got.count) + slow.queue.droppedEvents == UInt64(h.published.count))
        #expect(slow.queue.deliveredEvents == UInt64(got.count))
    }

    @Test func multiTopicSubscriberGetsBothTopicsInIdOrder() {
        var rng = SystemRandomNumberGenerator()
        let h = LoopHarness(chunkSize: 512)
        let (ab, _) = h.subscribe(["a", "b"])
        let (a, _) = h.subscribe(["a"])
        let (ba, _) = h.subscribe(["b", "a", "b"])  // same key as ["a", "b"]
        #expect(h.fanout.logCount == 2)
        for i in 0..<600 {
            h.publish(["a", "b", "c"].randomElement(using: &rng)!, "\(i)")
            if i % 7 == 0 { h.step() }
        }
        h.finish()
        expectSame(ab.parsed, h.expected(["a", "b"]))
        expectSame(ba.parsed, h.expected(["a", "b"]))
        expectSame(a.parsed, h.expected(["a"]))
        let ids = ab.parsed.map { EventID(parsing: $0.lastEventID)! }
        #expect(ids == ids.sorted())
    }

    /// The seam: events published before subscribe come by replay, later ones by the log —
    /// including events still in this loop's inbox when the subscription is made.
    @Test func replayMeetsLiveWithoutGapOrDuplicateIncludingInboxEvents() {
        let h = LoopHarness(chunkSize: 300)
        let (existing, _) = h.subscribe(["t"])  // makes the inbox receive "t"
        for i in 0..<5 { h.publish("t", "before \(i)") }
        h.step()
        // Published but NOT drained: sitting in the loop's inbox.
        for i in 0..<4 { h.publish("t", "inbox \(i)") }
        let cursor = h.published[2].id
        let (late, sub) = h.subscribe(["t"], lastEventID: cursor.description)
        #expect(sub.gap == nil)
        #expect(sub.replay.map(\.id) == h.published[3...].map(\.id))
        for i in 0..<6 { h.publish("t", "after \(i)") }
        h.step()
        h.finish()
        expectSame(late.parsed, h.expected(["t"], after: cursor))
        expectSameBytes(late.received, h.expectedBytes(["t"], after: cursor))
        expectSame(existing.parsed, h.expected(["t"]))
    }

    @Test func replayMeetsLiveWhenFirstSubscriberOfLoop() {
        let h = LoopHarness()
        for i in 0..<5 { h.publish("t", "before \(i)") }
        h.step()
        let cursor = h.published[1].id
        let (late, sub) = h.subscribe(["t"], lastEventID: cursor.description)
        #expect(sub.replay.count == 3)
        for i in 0..<3 { h.publish("t", "after \(i)") }
        h.finish()
        expectSame(late.parsed, h.expected(["t"], after: cursor))
    }

    @Test func subscribeWithoutCursorStartsLiveAfterInboxEvents() {
        let h = LoopHarness()
        let (existing, _) = h.subscribe(["t"])
        h.publish("t", "in inbox")
        let (fresh, sub) = h.subscribe(["t"])
        #expect(sub.replay.isEmpty)
        let live = h.publish("t", "live")
        h.finish()
        expectSame(fresh.parsed, h.expected(["t"], after: h.published[0].id))
        #expect(fresh.parsed.map(\.lastEventID) == [live.id.description])
        expectSame(existing.parsed, h.expected(["t"]))
    }

    @Test func gapSignalComesFirstThenReplayThenLive() throws {
        let h = LoopHarness(replay: .init(events: 3, bytes: 1 << 30, maxAgeMilliseconds: 10_000_000))
        for i in 0..<6 { h.publish("t", "\(i)") }
        let cursor = h.published[0].id
        let (s, sub) = h.subscribe(["t"], lastEventID: cursor.description)
        #expect(sub.gap == Broker.Gap(lastEventID: cursor.description, oldestRetained: h.published[3].id))
        h.publish("t", "live")
        h.finish()
        let events = s.parsed
        #expect(events.first?.type == "pushd.gap")
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(events[0].data.utf8)) as? [String: String])
        #expect(json == ["last_event_id": cursor.description, "oldest_retained": h.published[3].id.description])
        #expect(Array(events.dropFirst()) == h.expected(["t"], after: h.published[2].id))
    }

    /// A real publisher thread racing the loop; a subscriber joins mid-stream with a cursor.
    @Test func seamUnderConcurrentPublishing() {
        let h = LoopHarness(chunkSize: 1024)
        let (existing, _) = h.subscribe(["t"])
        let total = 3000
        final class Shared: Sendable {
            let published = Mutex<[EncodedEvent]>([])
            let done = Atomic<Bool>(false)
        }
        let shared = Shared()
        let broker = h.broker
        let publisher = Thread {
            for i in 0..<total {
                let e = broker.publish(
                    topic: "t", name: nil, data: SharedBytes(string: "c\(i)"), fromLoop: nil,
                    nowMilliseconds: 20_000 + UInt64(i / 50))
                shared.published.withLock { $0.append(e) }
            }
            shared.done.store(true, ordering: .releasing)
        }
        publisher.start()
        var late: FakeSocket?
        var cursor = EventID.zero
        while !shared.done.load(ordering: .acquiring) || late == nil {
            if late == nil, broker.publishedCount >= UInt64(total / 3) {
                cursor = broker.lastID
                late = h.subscribe(["t"], lastEventID: cursor.description).0
            }
            h.step()
        }
        h.finish()
        let all = shared.published.withLock { $0 }
        #expect(all.count == total)
        let expected = all.filter { $0.id > cursor }.map {
            ParsedSSEEvent(type: "message", data: $0.data.array.text, lastEventID: $0.id.description)
        }
        expectSame(late?.parsed, expected)
        #expect(existing.parsed.count == total)
    }

    @Test func unsubscribeReleasesTheLog() {
        let h = LoopHarness(chunkSize: 128)
        let (s1, _) = h.subscribe(["t"])
        let (s2, _) = h.subscribe(["t", "u"])
        for i in 0..<50 { h.publish(i % 2 == 0 ? "t" : "u", "\(i)") }
        h.step()
        #expect(h.fanout.logCount == 2)
        #expect(h.fanout.subscriberCount == 2)
        #expect(h.fanout.retainedBytes > 0)
        h.fanout.unsubscribe(s1.queue)
        h.fanout.unsubscribe(s1.queue)  // idempotent
        #expect(s1.queue.log == nil)
        #expect(h.fanout.logCount == 1)
        #expect(h.fanout.subscriberCount == 1)
        h.fanout.unsubscribe(s2.queue)
        #expect(h.fanout.logCount == 0)
        #expect(h.fanout.subscriberCount == 0)
        #expect(h.fanout.retainedBytes == 0)
        // The Broker no longer routes these topics to the loop.
        h.publish("t", "x")
        h.publish("u", "y")
        #expect(h.broker.inboxes[0].take().isEmpty)
        // No ready subscribers are reported for the released logs.
        var ready = 0
        h.fanout.forEachReadySubscriber { _ in ready += 1 }
        #expect(ready == 0)
    }

    @Test func readySubscribersAreIdleOnesWithUnsentBytes() {
        let h = LoopHarness()
        let (a, _) = h.subscribe(["t"])
        let (b, _) = h.subscribe(["t"])
        let (c, _) = h.subscribe(["other"])
        h.publish("t", "1")
        h.fanout.drainInbox()
        b.start()  // b is already sending
        var ready: [UInt64] = []
        h.fanout.forEachReadySubscriber { ready.append($0.token) }
        #expect(ready == [a.queue.token])
        // Nothing new: nobody is reported again.
        ready = []
        h.fanout.forEachReadySubscriber { ready.append($0.token) }
        #expect(ready.isEmpty)
        _ = c
    }

    @Test func disconnectEvictsOnlyTheSlowOneAmongMany() {
        let limits = QueueLimits(events: 20, bytes: 1 << 20)
        let h = LoopHarness(limits: limits, policy: .disconnect, chunkSize: 512)
        let subs = (0..<6).map { _ in h.subscribe(["t"]).0 }
        h.stalled = [subs[2].queue.token, subs[4].queue.token]
        for i in 0..<500 {
            h.publish("t", "\(i)")
            h.step()
        }
        h.finish()
        #expect(Set(h.evicted.map(\.token)) == [subs[2].queue.token, subs[4].queue.token])
        for i in [0, 1, 3, 5] { expectSame(subs[i].parsed, h.expected(["t"])) }
        #expect(h.fanout.subscriberCount == 4)
        // Evicted ones are already unsubscribed; unsubscribing again is a no-op.
        h.fanout.unsubscribe(subs[2].queue)
        #expect(h.fanout.subscriberCount == 4)
    }
}
