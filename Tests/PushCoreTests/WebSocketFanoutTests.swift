import Glibc
import Testing
@testable import PushCore

/// WebSocket stream formats on the shared fan-out: frames built once per event and format,
/// permessage-deflate (RFC 7692) compression and inflation, and moving a subscriber between logs.
@Suite struct WebSocketFanoutTests {
    static let limits = ReplayRing.Limits(events: 10_000, bytes: 1 << 26, maxAgeMilliseconds: 3_600_000)

    /// Server frames (unmasked, RFC 6455 §5.2) from a byte stream: (rsv1, opcode, payload).
    static func frames(_ bytes: [UInt8]) -> [(Bool, UInt8, [UInt8])] {
        var out: [(Bool, UInt8, [UInt8])] = []
        var i = 0
        while i < bytes.count {
            let b0 = bytes[i], b1 = bytes[i + 1]
            var n = Int(b1 & 0x7F)
            var at = i + 2
            if n == 126 {
                n = Int(bytes[at]) << 8 | Int(bytes[at + 1])
                at += 2
            } else if n == 127 {
                n = 0
                for k in 0..<8 { n = n << 8 | Int(bytes[at + k]) }
                at += 8
            }
            out.append((b0 & 0x40 != 0, b0 & 0x0F, Array(bytes[at..<(at + n)])))
            i = at + n
        }
        return out
    }

    /// Everything the queue has to send, as one array (every send completed in full).
    static func drain(_ q: OutboundQueue) -> [UInt8] {
        var all: [UInt8] = []
        while let b = q.nextSend() {
            all += Array(b)
            q.completed(b.count)
        }
        return all
    }

    /// The ids in envelope frames.
    static func ids(_ bytes: [UInt8]) -> [String] {
        frames(bytes).compactMap { _, _, payload in
            let s = String(decoding: payload, as: UTF8.self)
            guard s.hasPrefix(#"{"id":""#) else { return nil }
            return String(s.dropFirst(7).prefix { $0 != "\"" })
        }
    }

    @Test("an event's frame is built once per format and shared")
    func frameBuiltOnce() {
        let e = EncodedEvent(id: EventID(milliseconds: 5, sequence: 1), topic: "t", name: "n", data: SharedBytes(string: "hi \"x\""))
        let env = WebSocketFrameFormat(message: .envelope)
        let a = e.webSocketFrame(env)
        #expect(a === e.webSocketFrame(env))
        let f = Self.frames(a.array)
        #expect(f.count == 1 && f[0].1 == 0x1 && !f[0].0)
        #expect(String(decoding: f[0].2, as: UTF8.self) == #"{"id":"5-1","topic":"t","event":"n","data":"hi \"x\""}"#)
        let raw = Self.frames(e.webSocketFrame(WebSocketFrameFormat(message: .raw)).array)
        #expect(raw[0].2 == Array("hi \"x\"".utf8))
        let binary = EncodedEvent(id: EventID(milliseconds: 5, sequence: 2), topic: "t", name: nil, data: SharedBytes([0xFF, 0x00]))
        #expect(Self.frames(binary.webSocketFrame(WebSocketFrameFormat(message: .raw)).array)[0].1 == 0x2)
        let z = e.webSocketFrame(WebSocketFrameFormat(message: .envelope, deflateWindowBits: 15))
        #expect(Self.frames(z.array)[0].0, "RSV1 marks a compressed message (RFC 7692 §6)")
        #expect(e.webSocketFrames.retainedBytes > 0)
    }

    @Test("deflate: compressed messages inflate back, deterministically, for every window")
    func deflateRoundTrip() throws {
        let text = Array(String(repeating: "pushd fans events out; ", count: 200).utf8) + Array(0..<255)
        for bits in 9...15 {
            let z = try #require(PerMessageDeflateCodec.compress(text, windowBits: bits))
            #expect(z == PerMessageDeflateCodec.compress(text, windowBits: bits), "no context: same bytes for everyone")
            #expect(z.count < text.count)
            #expect(Array(z.suffix(4)) != [0, 0, 0xFF, 0xFF], "the sync-flush tail is removed (§7.2.1)")
            let inflater = PerMessageInflater(windowBits: bits, noContextTakeover: false)
            #expect(inflater.inflate(z, limit: 1 << 20) == .success(text))
            // The same inflater again (context takeover on its side is harmless).
            #expect(inflater.inflate(z, limit: 1 << 20) == .success(text))
        }
        let empty = try #require(PerMessageDeflateCodec.compress([], windowBits: 15))
        #expect(PerMessageInflater(windowBits: 15, noContextTakeover: true).inflate(empty, limit: 10) == .success([]))
    }

    @Test("inflation stops at the limit (1009) and refuses garbage (1007)")
    func inflateLimits() throws {
        let bomb = try #require(PerMessageDeflateCodec.compress([UInt8](repeating: 0, count: 1 << 20), windowBits: 15))
        #expect(bomb.count < 2048)
        let i = PerMessageInflater(windowBits: 15, noContextTakeover: true)
        #expect(i.inflate(bomb, limit: 64 * 1024) == .failure(.tooBig))
        #expect(i.inflate([0xFF, 0xFF, 0xFF, 0xFF], limit: 1024) == .failure(.corrupt))
        // Still usable after a failure.
        #expect(i.inflate(try #require(PerMessageDeflateCodec.compress([1, 2, 3], windowBits: 15)), limit: 10) == .success([1, 2, 3]))
    }

    @Test("WebSocket subscribers of one format share one log; formats get separate logs")
    func sharedLogs() {
        let broker = Broker(loopCount: 1, replayLimits: Self.limits, nowMilliseconds: 1000)
        let fanout = LoopFanout(loopIndex: 0, broker: broker, limits: QueueLimits(events: 1000, bytes: 1 << 20), slowPolicy: .disconnect)
        let env = StreamFormat.webSocket(WebSocketFrameFormat(message: .envelope))
        let q1 = OutboundQueue(token: 1), q2 = OutboundQueue(token: 2), q3 = OutboundQueue(token: 3)
        _ = fanout.subscribe(q1, topics: ["t"], format: env, lastEventID: nil, nowMilliseconds: 1000)
        _ = fanout.subscribe(q2, topics: ["t"], format: env, lastEventID: nil, nowMilliseconds: 1000)
        _ = fanout.subscribe(q3, topics: ["t"], format: .sse, lastEventID: nil, nowMilliseconds: 1000)
        #expect(fanout.logCount == 2)
        var published: [String] = []
        for k in 0..<50 {
            published.append(broker.publish(topic: "t", name: nil, data: SharedBytes(string: "e\(k)"), fromLoop: 0, nowMilliseconds: 1001).id.description)
        }
        fanout.drainInbox()
        #expect(q1.log === q2.log && q1.log !== q3.log)
        #expect(Self.ids(Self.drain(q1)) == published)
        #expect(Self.ids(Self.drain(q2)) == published)
    }

    @Test("resubscribe: kept topics continue without gap or duplicate; added topics start now or at the cursor")
    func resubscribeSeam() {
        let broker = Broker(loopCount: 1, replayLimits: Self.limits, nowMilliseconds: 1000)
        let fanout = LoopFanout(loopIndex: 0, broker: broker, limits: QueueLimits(events: 100_000, bytes: 1 << 26), slowPolicy: .disconnect, chunkSize: 256)
        let format = StreamFormat.webSocket(WebSocketFrameFormat(message: .envelope))
        let q = OutboundQueue(token: 1)
        let other = OutboundQueue(token: 2)  // keeps the old log alive after the move
        _ = fanout.subscribe(other, topics: ["a"], format: format, lastEventID: nil, nowMilliseconds: 1000)
        var move = fanout.resubscribe(q, to: ["a"], format: format, sentThrough: nil, attachedAtEvent: 0, added: ["a"], addedCursor: nil, nowMilliseconds: 1000)
        var received: [UInt8] = []
        func pub(_ t: String) -> String {
            broker.publish(topic: t, name: nil, data: SharedBytes(string: "\(t)-data"), fromLoop: 0, nowMilliseconds: 1001).id.description
        }
        var wantA: [String] = []
        let bBefore = pub("b")  // published before b is added without a cursor: not delivered
        for _ in 0..<20 { wantA.append(pub("a")) }
        fanout.drainInbox()
        // Send part of the log only (a send in flight), then more events stay in the inbox.
        if let b = q.nextSend() { received += Array(b); q.completed(b.count) }
        for _ in 0..<5 { wantA.append(pub("a")) }
        var wantB: [String] = []
        let step = { (m: LoopFanout.Move) in
            if let f = m.flushed { q.enqueue(f) }
            for e in m.replay { q.enqueue(e.webSocketFrame(WebSocketFrameFormat(message: .envelope))) }
        }
        move = fanout.resubscribe(q, to: ["a", "b"], format: format, sentThrough: move.cursor, attachedAtEvent: move.attachedAtEvent, added: ["b"], addedCursor: nil, nowMilliseconds: 1002)
        step(move)
        for _ in 0..<3 { wantB.append(pub("b")); wantA.append(pub("a")) }
        fanout.drainInbox()
        received += Self.drain(q)
        // Drop b again while a keeps flowing; a cursor for b re-adds it with a replay.
        let cursorB = wantB[0]
        move = fanout.resubscribe(q, to: ["a"], format: format, sentThrough: move.cursor, attachedAtEvent: move.attachedAtEvent, added: [], addedCursor: nil, nowMilliseconds: 1003)
        step(move)
        for _ in 0..<2 { wantA.append(pub("a")) }
        let missedB = pub("b")
        move = fanout.resubscribe(q, to: ["a", "b"], format: format, sentThrough: move.cursor, attachedAtEvent: move.attachedAtEvent, added: ["b"], addedCursor: cursorB, nowMilliseconds: 1004)
        step(move)
        #expect(move.gap == nil)
        fanout.drainInbox()
        received += Self.drain(q)
        let got = Self.ids(received)
        let gotA = got.filter { wantA.contains($0) }
        #expect(gotA == wantA)
        #expect(!got.contains(bBefore))
        // b: the three while subscribed, then the replay after cursorB (wantB[1...] again and missedB).
        #expect(got.filter { !wantA.contains($0) } == wantB + Array(wantB.dropFirst()) + [missedB])
        #expect(fanout.subscriberCount == 2)
    }
}

/// Cost of building an event's frame vs finding it built (the argument for building lazily once
/// per format, docs/ARCHITECTURE.md). Prints figures; runs only with PUSHD_MEASURE=1.
@Suite struct WebSocketFrameCostMeasurement {
    @Test("frame build and cached lookup, ns per event", .enabled(if: ProcessInfoLite.measure))
    func measure() {
        for size in [64, 1024] {
            let data = SharedBytes(String(repeating: "price update 1234.56; ", count: size / 22 + 1).utf8.prefix(size))
            let n = 2000
            let events = (0..<n).map { EncodedEvent(id: EventID(milliseconds: 1, sequence: UInt64($0)), topic: "t", name: nil, data: data) }
            for (label, format) in [("envelope", WebSocketFrameFormat(message: .envelope)),
                                    ("envelope+deflate15", WebSocketFrameFormat(message: .envelope, deflateWindowBits: 15))] {
                var t0 = ContinuousClock.now
                for e in events { _ = e.webSocketFrame(format) }
                let build = (ContinuousClock.now - t0) / n
                t0 = ContinuousClock.now
                for e in events { _ = e.webSocketFrame(format) }
                let lookup = (ContinuousClock.now - t0) / n
                print("measure: \(size) B data, \(label): build \(build), cached lookup \(lookup) per event")
            }
        }
    }
}

enum ProcessInfoLite {
    static let measure: Bool = getenv("PUSHD_MEASURE").map { String(cString: $0) == "1" } ?? false
}
