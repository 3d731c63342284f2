import CPushShim
import Foundation
import Synchronization
import Testing

@testable import PushLoop

#if canImport(Glibc)
import Glibc
#endif

/// The contract of `EventLoop`, checked with real sockets on 127.0.0.1 for both backends.
@Suite("EventLoop backends")
struct EventLoopTests {
    @Test("accept, receive and echo through send", arguments: LoopBackendKind.allCases)
    func echo(kind: LoopBackendKind) throws {
        let harness = try LoopHarness(kind.choice)
        defer { harness.stop() }
        #expect(harness.kind == kind)
        let client = try connectClient(port: harness.port)
        defer { Glibc.close(client) }
        let message = Array("hello, pushd loop \(kind)".utf8)
        try writeAll(client, message)
        #expect(readExactly(client, message.count) == message)
        // The bytes can reach the client before the loop has seen the send's completion.
        #expect(waitUntil { harness.snapshot().sendResults.values.first?.isEmpty == false })

        let record = harness.snapshot()
        #expect(record.accepted.count == 1)
        let id = try #require(record.accepted.first)
        #expect(record.peers[id]?.host == "127.0.0.1")
        #expect(record.peers[id]?.port != 0)
        #expect(record.receivedBytes[id] == message.count)
        #expect(record.sendResults[id] == [message.count])
        #expect(record.connectionCount == 1)
        #expect(record.violations.isEmpty, "\(record.violations)")
    }

    @Test("a 4 MB send to a slow reader arrives complete through short sends", arguments: LoopBackendKind.allCases)
    func largeSendToSlowReader(kind: LoopBackendKind) throws {
        let harness = try LoopHarness(kind.choice, echo: false)
        defer { harness.stop() }
        let client = try connectClient(port: harness.port, receiveBuffer: 64 * 1024)
        defer { Glibc.close(client) }
        #expect(waitUntil { harness.snapshot().accepted.count == 1 })
        let id = try #require(harness.snapshot().accepted.first)

        let size = 4 * 1024 * 1024
        let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 12) }
        harness.run { $0.enqueue(id, payload) }
        usleep(100_000)  // let the socket buffers fill: the first send cannot finish
        let received = readExactly(client, size, chunk: 256 * 1024, pause: 500)
        #expect(received.count == size)
        #expect(received == payload)

        #expect(waitUntil { harness.snapshot().sendResults[id]?.reduce(0, +) == size })
        let results = harness.snapshot().sendResults[id] ?? []
        #expect(results.count > 1, "expected short sends, got \(results)")
        #expect(results.allSatisfy { $0 > 0 })
        #expect(harness.snapshot().violations.isEmpty)
    }

    @Test("200 concurrent connections each echo their own bytes", arguments: LoopBackendKind.allCases)
    func manyConnections(kind: LoopBackendKind) throws {
        let harness = try LoopHarness(kind.choice)
        defer { harness.stop() }
        var clients: [Int32] = []
        defer { for fd in clients { Glibc.close(fd) } }
        for _ in 0..<200 { clients.append(try connectClient(port: harness.port)) }
        let messages = clients.indices.map { Array("connection \($0) of 200: \(String(repeating: "x", count: $0))".utf8) }
        for (fd, message) in zip(clients, messages) { try writeAll(fd, message) }
        for (fd, message) in zip(clients, messages) {
            let echoed = readExactly(fd, message.count)
            #expect(echoed == message)
        }
        let record = harness.snapshot()
        #expect(record.accepted.count == 200)
        #expect(Set(record.accepted).count == 200)
        #expect(record.connectionCount == 200)
        #expect(record.violations.isEmpty, "\(record.violations)")
    }

    @Test("the peer closing gives receiveEnded(error: 0)", arguments: LoopBackendKind.allCases)
    func peerClose(kind: LoopBackendKind) throws {
        let harness = try LoopHarness(kind.choice, echo: false, closeOnReceiveEnd: true)
        defer { harness.stop() }
        let client = try connectClient(port: harness.port)
        try writeAll(client, Array("bye".utf8))
        shutdown(client, Int32(SHUT_WR))
        #expect(waitUntil { harness.snapshot().closed.count == 1 })
        let record = harness.snapshot()
        let id = try #require(record.accepted.first)
        #expect(record.receivedBytes[id] == 3)
        #expect(record.receiveEnded[id] == 0)
        #expect(record.closed == [id])
        #expect(record.connectionCount == 0)
        // The server closed its side too: the client reads end of file.
        let end = readToEnd(client)
        #expect(end.last == 0)
        Glibc.close(client)
        #expect(record.violations.isEmpty, "\(record.violations)")
    }

    @Test("pauseReceiving leaves bytes in the kernel (the peer's writes block); resumeReceiving delivers them all",
          arguments: LoopBackendKind.allCases)
    func pauseAndResumeReceiving(kind: LoopBackendKind) throws {
        let harness = try LoopHarness(kind.choice, echo: false)
        defer { harness.stop() }
        let client = try connectClient(port: harness.port)
        defer { Glibc.close(client) }
        #expect(waitUntil { harness.snapshot().accepted.count == 1 })
        let id = try #require(harness.snapshot().accepted.first)
        try writeAll(client, Array("before".utf8))
        #expect(waitUntil { harness.snapshot().receivedBytes[id] == 6 })
        let paused = DoneFlag()
        harness.run { h in
            h.loop.pauseReceiving(id)
            h.loop.pauseReceiving(id)  // idempotent
            paused.done.store(true, ordering: .releasing)
        }
        #expect(waitUntil { paused.done.load(ordering: .acquiring) })
        usleep(50_000)  // let a cancellation complete
        // Write far more than the socket buffers hold, non-blocking: the writes must stall.
        let flags = fcntl(client, F_GETFL)
        _ = fcntl(client, F_SETFL, flags | O_NONBLOCK)
        let chunk = [UInt8](repeating: 0x61, count: 65536)
        var written = 0
        var stalled = false
        for _ in 0..<2000 {  // up to 128 MiB
            let n = chunk.withUnsafeBytes { Glibc.send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EAGAIN { stalled = true; break }
                Issue.record("send failed: errno \(errno)")
                break
            }
            written += n
        }
        #expect(stalled, "the peer could write \(written) bytes while the loop was paused")
        usleep(100_000)
        let whilePaused = harness.snapshot().receivedBytes[id] ?? 0
        // Only what was already completed when the pause took effect may arrive.
        #expect(whilePaused - 6 <= 4 << 20, "\(whilePaused - 6) bytes delivered while paused")
        _ = fcntl(client, F_SETFL, flags)
        harness.run { h in
            h.loop.resumeReceiving(id)
            h.loop.resumeReceiving(id)
        }
        #expect(waitUntil(10) { harness.snapshot().receivedBytes[id] == 6 + written }, "\(harness.snapshot().receivedBytes[id] ?? 0) of \(6 + written)")
        try writeAll(client, Array("after".utf8))
        #expect(waitUntil { harness.snapshot().receivedBytes[id] == 6 + written + 5 })
        #expect(harness.snapshot().violations.isEmpty, "\(harness.snapshot().violations)")
    }

    @Test("shutdownWrite: the peer reads the bytes sent, then end of file; receiving goes on", arguments: LoopBackendKind.allCases)
    func shutdownWriteKeepsReceiving(kind: LoopBackendKind) throws {
        let harness = try LoopHarness(kind.choice, echo: false, closeOnReceiveEnd: true)
        defer { harness.stop() }
        let client = try connectClient(port: harness.port)
        defer { Glibc.close(client) }
        #expect(waitUntil { harness.snapshot().accepted.count == 1 })
        let id = try #require(harness.snapshot().accepted.first)
        harness.run { $0.enqueue(id, Array("answer".utf8)) }
        #expect(waitUntil { harness.snapshot().sendResults[id] == [6] })
        let shared = harness.shared
        harness.run { h in
            if !h.loop.shutdownWrite(id) { shared.record.withLock { $0.violations.append("shutdownWrite failed") } }
        }
        let end = readToEnd(client)
        #expect(end.bytes == Array("answer".utf8))
        #expect(end.last == 0, "a FIN, not a reset")
        // The loop still reads what the peer sends after the half-close.
        try writeAll(client, Array("still sending".utf8))
        #expect(waitUntil { harness.snapshot().receivedBytes[id] == 13 })
        #expect(harness.snapshot().closed.isEmpty)
        shutdown(client, Int32(SHUT_WR))
        #expect(waitUntil { harness.snapshot().closed == [id] })
        #expect(harness.snapshot().receiveEnded[id] == 0)
        // A stale id is refused.
        let checked = DoneFlag()
        harness.run { h in
            if h.loop.shutdownWrite(id) { shared.record.withLock { $0.violations.append("shutdownWrite on a closed id") } }
            checked.done.store(true, ordering: .releasing)
        }
        #expect(waitUntil { checked.done.load(ordering: .acquiring) })
        #expect(harness.snapshot().violations.isEmpty, "\(harness.snapshot().violations)")
    }

    @Test("a peer reset gives receiveEnded with ECONNRESET", arguments: LoopBackendKind.allCases)
    func peerReset(kind: LoopBackendKind) throws {
        let harness = try LoopHarness(kind.choice, echo: false)
        defer { harness.stop() }
        let client = try connectClient(port: harness.port)
        try writeAll(client, Array("x".utf8))
        #expect(waitUntil { harness.snapshot().receivedBytes.values.reduce(0, +) == 1 })
        var linger = linger(l_onoff: 1, l_linger: 0)
        setsockopt(client, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<linger>.size))
        Glibc.close(client)  // RST
        #expect(waitUntil { !harness.snapshot().receiveEnded.isEmpty })
        let record = harness.snapshot()
        let id = try #require(record.accepted.first)
        #expect(record.receiveEnded[id] == ECONNRESET)
        #expect(record.closed.isEmpty, "the loop must not close on its own")
        // The connection stays in the table until the handler closes it.
        #expect(harness.shared.record.withLock { $0.connectionCount } == 1)
        // A send on the reset connection fails with -errno rather than trapping or hanging.
        harness.run { $0.enqueue(id, Array("too late".utf8)) }
        #expect(waitUntil { harness.snapshot().sendResults[id] != nil })
        let result = try #require(harness.snapshot().sendResults[id]?.first)
        #expect(result == -Int(EPIPE) || result == -Int(ECONNRESET), "send after reset: \(result)")
        harness.run { $0.close(id) }
        #expect(waitUntil { harness.snapshot().closed == [id] })
        #expect(harness.snapshot().violations.isEmpty)
    }

    @Test("IPv6 listener: accept on [::1] and report the peer", arguments: LoopBackendKind.allCases)
    func ipv6(kind: LoopBackendKind) throws {
        guard let probe = try? ListeningSocket.open(host: "::1", port: 0) else { return }  // no IPv6 here
        Glibc.close(probe)
        let harness = try LoopHarness(kind.choice, host: "::1")
        defer { harness.stop() }
        let client = try connectClient(port: harness.port, ipv6: true)
        defer { Glibc.close(client) }
        try writeAll(client, Array("v6".utf8))
        #expect(readExactly(client, 2) == Array("v6".utf8))
        let record = harness.snapshot()
        let id = try #require(record.accepted.first)
        #expect(record.peers[id]?.host == "::1")
        #expect(record.peers[id]?.description.hasPrefix("[::1]:") == true)
    }

    @Test("run names the loop thread", arguments: LoopBackendKind.allCases)
    func threadName(kind: LoopBackendKind) throws {
        var options = LoopOptions()
        let name = kind == .ioUring ? "pushd-test-uring-long" : "pushd-test-epoll"
        options.threadName = name
        let harness = try LoopHarness(kind.choice, options: options)
        defer { harness.stop() }
        let expected = String(name.utf8.prefix(15))!
        let found = waitUntil(2) {
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
            return tasks.contains { task in
                let comm = try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8)
                return comm?.trimmingCharacters(in: .whitespacesAndNewlines) == expected
            }
        }
        #expect(found, "no thread named \(expected)")
    }

    @Test("close with a send and a receive outstanding gives exactly one closed and no later callbacks",
          arguments: LoopBackendKind.allCases)
    func closeCancelsOutstanding(kind: LoopBackendKind) throws {
        let harness = try LoopHarness(kind.choice, echo: false)
        defer { harness.stop() }
        let client = try connectClient(port: harness.port, receiveBuffer: 16 * 1024)
        defer { Glibc.close(client) }
        #expect(waitUntil { harness.snapshot().accepted.count == 1 })
        let id = try #require(harness.snapshot().accepted.first)
        // 8 MB to a client that does not read: the send stays outstanding.
        harness.run { $0.enqueue(id, [UInt8](repeating: 7, count: 8 * 1024 * 1024)) }
        usleep(50_000)
        harness.run { handler in
            handler.close(id)
            handler.close(id)  // idempotent
            handler.loop.send(id, UnsafeRawBufferPointer(start: nil, count: 0))  // ignored after close
        }
        #expect(waitUntil { harness.snapshot().closed.count == 1 })
        // The client keeps sending into the closed connection: no callback may follow.
        _ = try? writeAll(client, [UInt8](repeating: 1, count: 1000))
        usleep(100_000)
        let record = harness.snapshot()
        #expect(record.closed == [id])
        #expect(record.connectionCount == 0)
        #expect(record.violations.isEmpty, "\(record.violations)")
        // The server's socket is gone: the client sees end of file or a reset after the bytes sent.
        let end = readToEnd(client)
        #expect(end.last == 0 || end.errno == ECONNRESET)
    }

    @Test("closing 100 connections with sends in flight in one batch; 50 more left open at stop",
          arguments: LoopBackendKind.allCases)
    func massClose(kind: LoopBackendKind) throws {
        let harness = try LoopHarness(kind.choice, echo: false)
        var clients: [Int32] = []
        defer { for fd in clients { Glibc.close(fd) } }
        for _ in 0..<150 { clients.append(try connectClient(port: harness.port, receiveBuffer: 8 * 1024)) }
        #expect(waitUntil { harness.snapshot().accepted.count == 150 })
        let ids = harness.snapshot().accepted
        let payload = [UInt8](repeating: 0x5A, count: 1024 * 1024)
        harness.run { handler in for id in ids { handler.enqueue(id, payload) } }
        #expect(waitUntil { harness.snapshot().sendResults.count == 150 })  // first short sends in
        let toClose = Array(ids.prefix(100))
        harness.run { handler in for id in toClose { handler.close(id) } }
        #expect(waitUntil { harness.snapshot().closed.count == 100 })
        let record = harness.snapshot()
        #expect(Set(record.closed) == Set(toClose))
        #expect(record.connectionCount == 50)
        #expect(record.violations.isEmpty, "\(record.violations)")
        harness.stop()  // 50 connections with sends in flight are torn down by the loop's deinit
        #expect(harness.snapshot().closed.count == 100)
    }

    @Test("close inside accepted, then the slot is reused with a new generation", arguments: LoopBackendKind.allCases)
    func closeInsideCallbackAndReuse(kind: LoopBackendKind) throws {
        let harness = try LoopHarness(kind.choice)
        defer { harness.stop() }
        let first = try connectClient(port: harness.port)
        #expect(waitUntil { harness.snapshot().accepted.count == 1 })
        let firstID = try #require(harness.snapshot().accepted.first)
        harness.run { $0.close(firstID) }
        #expect(waitUntil { harness.snapshot().closed == [firstID] })
        #expect(readToEnd(first).last == 0)
        Glibc.close(first)

        let second = try connectClient(port: harness.port)
        defer { Glibc.close(second) }
        #expect(waitUntil { harness.snapshot().accepted.count == 2 })
        let secondID = harness.snapshot().accepted[1]
        #expect(secondID.slot == firstID.slot)
        #expect(secondID.generation != firstID.generation)
        // A stale id does nothing.
        harness.run { $0.loop.close(firstID) }
        try writeAll(second, Array("still here".utf8))
        #expect(readExactly(second, 10) == Array("still here".utf8))
        #expect(harness.snapshot().closed == [firstID])
        #expect(harness.snapshot().violations.isEmpty)
    }

    @Test("2 receive buffers of 64 bytes: receives stop on ENOBUFS and resume", arguments: LoopBackendKind.allCases)
    func scarceReceiveBuffers(kind: LoopBackendKind) throws {
        var options = LoopOptions()
        options.receiveBufferCount = 2
        options.receiveBufferSize = 64
        let counters = try echoMany(kind: kind, options: options, connections: 40, bytesEach: 3000)
        if let counters { #expect(counters.noBufferRearms > 0, "ENOBUFS path not exercised: \(counters)") }
    }

    @Test("an 8-entry ring: SQ-full submits and CQ overflow end multishots, which re-arm",
          arguments: LoopBackendKind.allCases)
    func tinyRing(kind: LoopBackendKind) throws {
        var options = LoopOptions()
        options.ringEntries = 8
        options.receiveBufferSize = 512
        let counters = try echoMany(kind: kind, options: options, connections: 60, bytesEach: 5000)
        if let counters {
            #expect(counters.earlySubmits > 0, "SQ-full path not exercised: \(counters)")
            #expect(counters.receiveRearms + counters.acceptRearms > 0, "no multishot re-arm: \(counters)")
        }
    }

    /// Every client writes `bytesEach` distinct bytes at once; each must get exactly its bytes back.
    /// Returns the io_uring loop's counters (nil for epoll).
    private func echoMany(
        kind: LoopBackendKind, options: LoopOptions, connections: Int, bytesEach: Int
    ) throws -> IOUringLoop.Counters? {
        let harness = try LoopHarness(kind.choice, options: options)
        defer { harness.stop() }
        var clients: [Int32] = []
        defer { for fd in clients { Glibc.close(fd) } }
        for _ in 0..<connections { clients.append(try connectClient(port: harness.port)) }
        let messages = (0..<connections).map { c in (0..<bytesEach).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ c) } }
        for (fd, message) in zip(clients, messages) { try writeAll(fd, message) }
        for (fd, message) in zip(clients, messages) {
            #expect(readExactly(fd, message.count) == message)
        }
        let record = harness.snapshot()
        #expect(record.accepted.count == connections)
        #expect(record.receiveEnded.isEmpty, "\(record.receiveEnded)")
        #expect(record.violations.isEmpty, "\(record.violations)")
        let counters = Mutex<IOUringLoop.Counters?>(nil)
        let done = Atomic<Bool>(false)
        harness.run { handler in
            counters.withLock { $0 = (handler.loop as? IOUringLoop)?.counters }
            done.store(true, ordering: .releasing)
        }
        #expect(waitUntil { done.load(ordering: .acquiring) })
        return counters.withLock { $0 }
    }

    @Test("sends started in iterationWillEnd and chained from sendCompleted complete without waiting for a tick",
          arguments: LoopBackendKind.allCases)
    func sendsFromIterationEnd(kind: LoopBackendKind) throws {
        var options = LoopOptions()
        options.tickMilliseconds = 10_000  // a loop that waited for the tick would stall the chain
        let harness = try LoopHarness(kind.choice, options: options, echo: false)
        defer { harness.stop() }
        let client = try connectClient(port: harness.port)
        defer { Glibc.close(client) }
        #expect(waitUntil { harness.snapshot().accepted.count == 1 })
        let id = try #require(harness.snapshot().accepted.first)
        let chunks = (0..<20).map { Array("chunk \($0);".utf8) }
        let started = Date()
        harness.run { handler in
            handler.sendAtIterationEnd = true
            for chunk in chunks { handler.enqueue(id, chunk) }
        }
        let expected = chunks.flatMap { $0 }
        #expect(readExactly(client, expected.count) == expected)
        #expect(waitUntil { harness.snapshot().sendResults[id]?.count == chunks.count })
        #expect(Date().timeIntervalSince(started) < 2, "chained sends stalled")
        #expect(harness.snapshot().violations.isEmpty, "\(harness.snapshot().violations)")
    }

    @Test("wake from another thread yields woken", arguments: LoopBackendKind.allCases)
    func wake(kind: LoopBackendKind) throws {
        let harness = try LoopHarness(kind.choice)
        defer { harness.stop() }
        usleep(20_000)
        let before = harness.snapshot().woken
        let waker = harness.waker
        let thread = Thread { waker.wake() }
        thread.start()
        #expect(waitUntil { harness.snapshot().woken > before })
        // Several wakes before the loop runs may fold into one woken; at least one arrives.
        let after = harness.snapshot().woken
        for _ in 0..<5 { harness.waker.wake() }
        #expect(waitUntil { harness.snapshot().woken > after })
    }

    @Test("wakeBy ends the next wait by its deadline, without spinning", arguments: LoopBackendKind.allCases)
    func wakeBy(kind: LoopBackendKind) throws {
        var options = LoopOptions()
        options.tickMilliseconds = 10_000  // nothing else would wake the loop
        let harness = try LoopHarness(kind.choice, options: options)
        defer { harness.stop() }
        usleep(50_000)
        let idle = harness.snapshot().iterations
        usleep(200_000)
        #expect(harness.snapshot().iterations - idle <= 2, "an idle loop iterates without a reason")
        harness.run { $0.wakeEvery = 5_000_000 }  // every 5 ms
        usleep(50_000)
        let before = harness.snapshot().iterations
        usleep(300_000)
        let woken = harness.snapshot().iterations - before
        // 300 ms / 5 ms = 60; a loop that spins would do thousands, one that ignores it ~0.
        #expect(woken >= 25 && woken <= 120, "\(woken) iterations in 300 ms with a 5 ms wakeBy")
        harness.run { $0.wakeEvery = 0 }
        usleep(50_000)
        let stopped = harness.snapshot().iterations
        usleep(200_000)
        #expect(harness.snapshot().iterations - stopped <= 2, "wakeBy is one-shot")
    }

    @Test("tick fires repeatedly at roughly the interval", arguments: LoopBackendKind.allCases)
    func tick(kind: LoopBackendKind) throws {
        var options = LoopOptions()
        options.tickMilliseconds = 20
        let harness = try LoopHarness(kind.choice, options: options)
        defer { harness.stop() }
        usleep(500_000)
        let ticks = harness.snapshot().ticks
        #expect(ticks.count >= 10 && ticks.count <= 40, "\(ticks.count) ticks in 500 ms")
        let gaps = zip(ticks.dropFirst(), ticks).map { Double($0 - $1) / 1e6 }
        let mean = gaps.reduce(0, +) / Double(max(1, gaps.count))
        #expect(mean > 12 && mean < 60, "mean tick gap \(mean) ms")
        #expect(gaps.allSatisfy { $0 > 0 })
    }

    @Test("stopAccepting leaves established connections and accepts no more", arguments: LoopBackendKind.allCases)
    func stopAccepting(kind: LoopBackendKind) throws {
        let harness = try LoopHarness(kind.choice)
        defer { harness.stop() }
        let client = try connectClient(port: harness.port)
        defer { Glibc.close(client) }
        #expect(waitUntil { harness.snapshot().accepted.count == 1 })
        let stopped = Atomic<Bool>(false)
        harness.run {
            $0.loop.stopAccepting()
            stopped.store(true, ordering: .releasing)
        }
        #expect(waitUntil { stopped.load(ordering: .acquiring) })
        usleep(20_000)
        // The listening socket is still open (the test owns it), so connect lands in its backlog.
        let late = try? connectClient(port: harness.port)
        usleep(150_000)
        #expect(harness.snapshot().accepted.count == 1)
        if let late { Glibc.close(late) }
        try writeAll(client, Array("ok".utf8))
        #expect(readExactly(client, 2) == Array("ok".utf8))
    }

    @Test("sends started in iterationWillEnd-style batches all go out", arguments: LoopBackendKind.allCases)
    func burstOfSends(kind: LoopBackendKind) throws {
        let harness = try LoopHarness(kind.choice, echo: false)
        defer { harness.stop() }
        var clients: [Int32] = []
        defer { for fd in clients { Glibc.close(fd) } }
        for _ in 0..<50 { clients.append(try connectClient(port: harness.port)) }
        #expect(waitUntil { harness.snapshot().accepted.count == 50 })
        let ids = harness.snapshot().accepted
        let message = Array("event: tick\ndata: 1\n\n".utf8)
        harness.run { handler in for id in ids { handler.enqueue(id, message) } }
        for fd in clients { #expect(readExactly(fd, message.count) == message) }
        #expect(waitUntil { harness.snapshot().sendResults.count == 50 })
        #expect(harness.snapshot().sendResults.values.allSatisfy { $0 == [message.count] })
    }
}

@Suite("Loop factory and listening sockets")
struct LoopFactoryTests {
    @Test("two loops (io_uring and epoll) share one port through SO_REUSEPORT")
    func twoLoopsOnePort() throws {
        let first = try LoopHarness(.ioUring)
        defer { first.stop() }
        let second = try LoopHarness(.epoll, port: first.port)  // the second binds the first's port
        defer { second.stop() }
        #expect(second.port == first.port)
        var clients: [Int32] = []
        defer { for fd in clients { Glibc.close(fd) } }
        for _ in 0..<64 { clients.append(try connectClient(port: first.port)) }
        for (i, fd) in clients.enumerated() {
            let message = Array("loop share \(i)".utf8)
            try writeAll(fd, message)
            #expect(readExactly(fd, message.count) == message)
        }
        let a = first.snapshot().accepted.count
        let b = second.snapshot().accepted.count
        #expect(a + b == 64)
        #expect(a > 0 && b > 0, "the kernel spread 64 connections as \(a) + \(b)")
    }

    @Test(".auto returns a loop (io_uring on this kernel)")
    func autoReturnsLoop() throws {
        let harness = try LoopHarness(.auto)
        defer { harness.stop() }
        let client = try connectClient(port: harness.port)
        defer { Glibc.close(client) }
        try writeAll(client, Array("auto".utf8))
        #expect(readExactly(client, 4) == Array("auto".utf8))
        if harness.kind == .epoll {
            #expect(LoopFactory.lastFallbackReason != nil, "fell back without a reason")
        }
    }

    @Test(".auto falls back to epoll and reports why; .ioUring does not fall back")
    func fallback() throws {
        let failing: (LoopOptions) throws -> any EventLoop = { _ in
            throw LoopError.ioUringUnavailable(errno: EPERM, reason: "simulated io_uring_disabled")
        }
        var reason: LoopError?
        let loop = try makeEventLoop(.auto, options: LoopOptions(), fallbackReason: &reason, makeIOUring: failing)
        #expect(loop.kind == .epoll)
        guard case .ioUringUnavailable(let code, _) = reason else {
            Issue.record("no fallback reason: \(String(describing: reason))")
            return
        }
        #expect(code == EPERM)
        #expect(throws: LoopError.self) {
            var unused: LoopError?
            _ = try makeEventLoop(.ioUring, options: LoopOptions(), fallbackReason: &unused, makeIOUring: failing)
        }
    }

    @Test("the real factory reports no fallback when io_uring works")
    func realFactory() throws {
        var reason: LoopError?
        let loop = try makeEventLoop(.ioUring, options: LoopOptions(), fallbackReason: &reason)
        #expect(loop.kind == .ioUring)
        #expect(reason == nil)
        let uring = try #require(loop as? IOUringLoop)
        #expect(uring.setupFlags & UInt32(IORING_SETUP_SINGLE_ISSUER) != 0)
    }

    @Test("listening sockets: IPv4, IPv6, localhost, SO_REUSEPORT twins, bad hosts")
    func listeningSockets() throws {
        let v4 = try ListeningSocket.open(host: "127.0.0.1", port: 0)
        defer { Glibc.close(v4) }
        let port = try #require(ListeningSocket.localPort(of: v4))
        #expect(port != 0)
        let twin = try ListeningSocket.open(host: "127.0.0.1", port: port)
        #expect(ListeningSocket.localPort(of: twin) == port)
        Glibc.close(twin)
        #expect(fcntl(v4, F_GETFL) & O_NONBLOCK != 0)
        #expect(fcntl(v4, F_GETFD) & FD_CLOEXEC != 0)

        let local = try ListeningSocket.open(host: "localhost", port: 0)
        #expect(ListeningSocket.localPort(of: local) != nil)
        Glibc.close(local)

        if let v6 = try? ListeningSocket.open(host: "::1", port: 0) {  // IPv6 may be disabled
            var only: Int32 = 0
            var length = socklen_t(4)
            getsockopt(v6, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &only, &length)
            #expect(only == 1)
            #expect(ListeningSocket.localPort(of: v6) != nil)
            Glibc.close(v6)
        }
        #expect(throws: LoopError.self) { _ = try ListeningSocket.open(host: "not-an-address", port: 0) }
        #expect(throws: LoopError.self) {
            _ = try ListeningSocket.open(host: "127.0.0.1", port: port, reusePort: false)
        }
        #expect(ListeningSocket.localPort(of: -1) == nil)
    }
}

/// Set on the loop thread when a command ran (the test thread waits for it).
private final class DoneFlag: Sendable {
    let done = Atomic<Bool>(false)
}
