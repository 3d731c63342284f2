import Testing
@testable import PushCore

extension StreamLog {
    func append(_ s: String) { Array(s.utf8).withUnsafeBytes { append($0) } }
}

@Suite("StreamLog")
struct StreamLogTests {
    @Test func streamKeySortsAndDeduplicates() {
        let k = StreamKey(topics: ["b", "a", "b"], format: .sse)
        #expect(k.topics == ["a", "b"])
        #expect(k == StreamKey(topics: ["a", "b"], format: .sse))
    }

    @Test func appendAdvancesHeadAndChunks() {
        let log = StreamLog(key: StreamKey(topics: ["t"], format: .sse), chunkSize: 16)
        #expect(log.head == 0 && log.headEvent == 0 && log.chunkCount == 0 && log.tail == 0)
        log.append("0123456789")  // 10
        log.append("abcde")  // 15, same chunk
        #expect(log.chunkCount == 1)
        log.append("XY")  // does not fit (1 left): new chunk
        #expect(log.chunkCount == 2)
        #expect(log.head == 17 && log.headEvent == 3)
        log.append(String(repeating: "z", count: 40))  // bigger than a chunk: own chunk
        #expect(log.chunkCount == 3)
        #expect(log.retainedBytes == 16 + 16 + 40)
        #expect(log.head == 57 && log.headEvent == 4)
    }

    @Test func rangesEndOnChunkAndEventBoundaries() throws {
        let log = StreamLog(key: StreamKey(topics: ["t"], format: .sse), chunkSize: 16)
        log.append("0123456789")
        log.append("abcde")
        log.append("XY")
        log.append(String(repeating: "z", count: 40))
        let r0 = try #require(log.range(from: 0))
        #expect(Array(r0.bytes).text == "0123456789abcde")
        #expect(r0.endOffset == 15 && r0.endEvent == 2)
        let mid = try #require(log.range(from: 10))
        #expect(Array(mid.bytes).text == "abcde" && mid.endEvent == 2)
        let r1 = try #require(log.range(from: 15))
        #expect(Array(r1.bytes).text == "XY" && r1.endOffset == 17 && r1.endEvent == 3)
        let r2 = try #require(log.range(from: 17))
        #expect(r2.bytes.count == 40 && r2.endOffset == 57 && r2.endEvent == 4)
        #expect(log.range(from: 57) == nil)
    }

    @Test func maintainFreesChunksBehindSlowestCursor() {
        let log = StreamLog(key: StreamKey(topics: ["t"], format: .sse), chunkSize: 8)
        let a = OutboundQueue(token: 1), b = OutboundQueue(token: 2)
        log.attach(a)
        log.attach(b)
        for _ in 0..<6 { log.append("1234") }  // 3 chunks of 8
        #expect(log.chunkCount == 3)
        let limits = QueueLimits(events: 1000, bytes: 1000)
        var slow: [OutboundQueue] = []
        log.maintain(limits: limits) { slow.append($0) }
        #expect(slow.isEmpty)
        #expect(log.chunkCount == 3)
        // a reads everything, b one chunk.
        let sa = FakeSocket(a)
        sa.drain()
        let sb = FakeSocket(b)
        sb.start()
        sb.complete()
        #expect(b.position == 8)
        log.maintain(limits: limits) { slow.append($0) }
        #expect(log.chunkCount == 2)
        #expect(log.tail == 8)
        sb.drain()
        log.maintain(limits: limits) { slow.append($0) }
        #expect(slow.isEmpty)
        #expect(sa.received == sb.received)
        #expect(sa.received.text == String(repeating: "1234", count: 6))
        #expect(a.deliveredEvents == 6 && b.deliveredEvents == 6)
    }

    @Test func maintainReportsSubscribersOverLimits() {
        let log = StreamLog(key: StreamKey(topics: ["t"], format: .sse), chunkSize: 64)
        let fast = OutboundQueue(token: 1), slowQ = OutboundQueue(token: 2)
        log.attach(fast)
        log.attach(slowQ)
        for _ in 0..<5 { log.append("abcd") }
        FakeSocket(fast).drain()
        var reported: [UInt64] = []
        // 20 bytes and 5 events behind: events limit 4 is exceeded.
        log.maintain(limits: QueueLimits(events: 4, bytes: 1000)) { s in
            reported.append(s.token)
            log.detach(s)
        }
        #expect(reported == [2])
        #expect(log.subscribers.map(\.token) == [1])
        #expect(slowQ.log == nil)
        // Byte limit.
        let other = OutboundQueue(token: 3)
        log.attach(other)
        for _ in 0..<3 { log.append("abcd") }
        reported = []
        log.maintain(limits: QueueLimits(events: 1000, bytes: 11)) { s in
            reported.append(s.token)
            log.detach(s)
        }
        #expect(Set(reported) == [1, 3])
        #expect(log.subscribers.isEmpty)
    }

    @Test func detachSwapsLastIntoPlace() {
        let log = StreamLog(key: StreamKey(topics: ["t"], format: .sse))
        let qs = (0..<4).map { OutboundQueue(token: UInt64($0)) }
        for q in qs { log.attach(q) }
        log.detach(qs[1])
        #expect(Set(log.subscribers.map(\.token)) == [0, 2, 3])
        for (i, s) in log.subscribers.enumerated() { #expect(s.indexInLog == i) }
        log.detach(qs[1])  // not attached any more: no-op
        #expect(log.subscribers.count == 3)
        log.detach(qs[3])
        log.detach(qs[0])
        log.detach(qs[2])
        #expect(log.subscribers.isEmpty)
    }

    @Test func attachStartsAtHead() {
        let log = StreamLog(key: StreamKey(topics: ["t"], format: .sse))
        log.append("before")
        let q = OutboundQueue(token: 1)
        log.attach(q)
        #expect(q.position == log.head && q.positionEvent == 1)
        #expect(q.nextSend() == nil)
        log.append("after")
        let s = FakeSocket(q)
        s.drain()
        #expect(s.received.text == "after")
        #expect(q.deliveredEvents == 1)
    }
}
