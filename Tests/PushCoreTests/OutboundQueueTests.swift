import Testing
@testable import PushCore

/// Plays the kernel for one connection: takes what `nextSend()` hands out, "writes" some of it
/// (all, or at most `shortBy` bytes per send), and completes.
final class FakeSocket {
    let queue: OutboundQueue
    /// Max bytes written per send (nil: write everything handed out).
    var maxWrite: Int?
    private(set) var received: [UInt8] = []
    private(set) var sends = 0
    /// Sizes of the ranges handed out by nextSend.
    private(set) var handedOut: [Int] = []
    /// A send handed out but not completed (for "never completes" scenarios).
    private(set) var inFlight: UnsafeRawBufferPointer?

    init(_ queue: OutboundQueue, maxWrite: Int? = nil) {
        self.queue = queue
        self.maxWrite = maxWrite
    }

    /// Starts a send if possible (without completing it). Returns whether one started.
    @discardableResult
    func start() -> Bool {
        guard inFlight == nil, let b = queue.nextSend() else { return false }
        #expect(b.count > 0)
        handedOut.append(b.count)
        inFlight = b
        sends += 1
        return true
    }

    /// Completes the send in flight with up to `maxWrite` bytes. Returns the bytes written.
    @discardableResult
    func complete() -> Int {
        guard let b = inFlight else { return 0 }
        let n = min(b.count, maxWrite ?? b.count)
        received.append(contentsOf: UnsafeRawBufferPointer(rebasing: b[0..<n]))
        inFlight = nil
        queue.completed(n)
        return n
    }

    /// Sends and completes until the queue has nothing more.
    func drain(maxSends: Int = 10_000_000) {
        var n = 0
        while n < maxSends, start() {
            complete()
            n += 1
        }
    }

    var parsed: [ParsedSSEEvent] { SSEParser.parse(received).events }
}

@Suite("OutboundQueue (private segments)")
struct OutboundQueueTests {
    @Test func emptyQueueHasNothingToSend() {
        let q = OutboundQueue(token: 7)
        #expect(q.token == 7)
        #expect(q.nextSend() == nil)
        #expect(q.isIdle)
        #expect(!q.hasPendingBytes)
        #expect(!q.isSending)
        q.enqueue(SharedBytes([]))  // empty segments are ignored
        #expect(q.isIdle)
    }

    @Test func oneSegmentThenCompletedFully() {
        let q = OutboundQueue(token: 1)
        q.enqueue(bytes("hello"))
        #expect(q.queuedSegmentBytes == 5)
        #expect(q.hasPendingBytes)
        let s = FakeSocket(q)
        #expect(s.start())
        #expect(q.isSending)
        #expect(q.nextSend() == nil)  // one send at a time
        #expect(s.complete() == 5)
        #expect(!q.isSending)
        #expect(q.isIdle)
        #expect(s.received.text == "hello")
        #expect(q.bytesWritten == 5)
        #expect(q.queuedSegmentBytes == 0)
    }

    @Test func severalSegmentsCoalesceIntoOneSend() {
        let q = OutboundQueue(token: 1)
        q.enqueue(bytes("HTTP/1.1 200 OK\r\n\r\n"))
        q.enqueue(SharedBytes(SSEEncoder.prelude(retryMilliseconds: 1000)))
        q.enqueue(bytes("id: 1-0\ndata: a\n\n"))
        let s = FakeSocket(q)
        s.drain()
        #expect(s.sends == 1)
        #expect(s.received.text == "HTTP/1.1 200 OK\r\n\r\nretry: 1000\n: pushd stream open\n\nid: 1-0\ndata: a\n\n")
    }

    @Test func shortSendsResumeWhereTheyStopped() {
        let q = OutboundQueue(token: 1)
        q.enqueue(bytes("abcdef"))
        q.enqueue(bytes("ghij"))
        let s = FakeSocket(q, maxWrite: 3)
        #expect(s.start())
        #expect(s.handedOut == [10])
        s.complete()
        // Segments enqueued while a partial send is pending go after it.
        q.enqueue(bytes("KL"))
        s.drain()
        #expect(s.received.text == "abcdefghijKL")
        #expect(q.bytesWritten == 12)
        #expect(q.isIdle)
    }

    @Test func unwrittenSegmentsCountsResponsesUntilTheirLastByteIsWritten() {
        let q = OutboundQueue(token: 1)
        #expect(q.unwrittenSegments == 0)
        q.enqueue(bytes("one"))
        q.enqueue(bytes("two"))
        q.enqueue(bytes("three"))
        q.enqueue(SharedBytes([]))  // ignored: not a segment
        #expect(q.unwrittenSegments == 3)
        let s = FakeSocket(q, maxWrite: 4)
        #expect(s.start())  // the three coalesce into one send
        #expect(q.unwrittenSegments == 3)
        q.enqueue(bytes("four"))
        #expect(q.unwrittenSegments == 4)
        s.complete()  // short: 4 of 11 bytes
        #expect(q.unwrittenSegments == 4)
        s.start()
        s.complete()
        s.start()
        s.complete()  // the coalesced send is written to its end
        #expect(q.unwrittenSegments == 1)
        s.drain()
        #expect(q.unwrittenSegments == 0)
        #expect(s.received.text == "onetwothreefour")
        q.enqueue(bytes("five"))
        q.discardQueued()
        #expect(q.unwrittenSegments == 0)
    }

    @Test func oneByteAtATime() {
        let q = OutboundQueue(token: 1)
        let text = "the quick brown fox"
        q.enqueue(bytes(text))
        let s = FakeSocket(q, maxWrite: 1)
        s.drain()
        #expect(s.received.text == text)
        #expect(s.sends == text.utf8.count)
    }

    @Test func discardQueuedKeepsInFlight() {
        let q = OutboundQueue(token: 1)
        q.enqueue(bytes("first"))
        let s = FakeSocket(q)
        s.start()
        q.enqueue(bytes("second"))
        q.discardQueued()
        #expect(q.queuedSegmentBytes == 0)
        s.complete()
        #expect(q.nextSend() == nil)
        #expect(s.received.text == "first")
    }

    @Test func segmentsGoBeforeLogBytes() {
        let broker = Broker(loopCount: 1, replayLimits: roomyLimits, nowMilliseconds: 1000)
        let fanout = LoopFanout(
            loopIndex: 0, broker: broker, limits: QueueLimits(events: 100, bytes: 1 << 20), slowPolicy: .disconnect)
        let q = OutboundQueue(token: 1)
        _ = fanout.subscribe(q, topics: ["t"], format: .sse, lastEventID: nil, nowMilliseconds: 1000)
        let live = broker.publish(topic: "t", name: nil, data: bytes("live"), fromLoop: nil, nowMilliseconds: 1001)
        fanout.drainInbox()
        // Private segments queued after the live event arrived still go first, coalesced.
        q.enqueue(bytes("seg1;"))
        q.enqueue(bytes("seg2;"))
        let s = FakeSocket(q)
        s.drain()
        #expect(s.sends == 2)
        #expect(s.received.text == "seg1;seg2;" + live.sse.array.text)
    }
}
