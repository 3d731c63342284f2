// SIGTERM: graceful drain (docs/OPERATIONS.md "Stopping").
//
// `Server.drain` flags the server as draining and wakes every loop. Each loop then, on every wake
// and tick until it is empty: stops accepting, closes idle HTTP connections after a short grace
// (a request in progress, or arriving within the grace, is answered first, with
// `Connection: close`; the close lingers), and ends each stream once everything queued for it
// was written — an SSE stream ends with a FIN after its last complete event, which EventSource
// clients treat as "reconnect". `/healthz` answers 503 meanwhile.
//
// No acknowledged event is lost: from the moment a loop sees the drain it refuses publishes
// (503 `draining`, WebSocket `draining`), and streams end only once every loop has seen it
// (`LoopMetrics.drainSeen`), after the inboxes were drained — so every event answered 200 on any
// loop is queued to every stream before that stream ends.
#if canImport(Glibc)
import Glibc
#endif
import PushCore

extension Server {
    /// Drains the server: stops accepting, lets every subscriber's queue flush, closes every
    /// connection cleanly. Returns when every loop is empty (`true`) or after `timeout` seconds
    /// (`false`: the caller then calls `stop()`, which cuts what is left). Call from one thread.
    @discardableResult
    public func drain(timeout: Double) -> Bool {
        shared.setDraining()
        for inbox in shared.broker.inboxes { inbox.wake() }
        let deadline = Clock.monotonicNanoseconds() + UInt64(max(0, timeout) * 1e9)
        while true {
            if shared.loopMetrics.allSatisfy({ $0.drained.load(ordering: .acquiring) }) { return true }
            if Clock.monotonicNanoseconds() >= deadline { return false }
            usleep(10_000)
        }
    }

    /// Connections still open (all loops).
    public var openConnections: Int { shared.stats.connections }
}

extension LoopWorker {
    /// One drain step (on each wake and tick while the server drains).
    func drainStep() {
        if !drainStarted {
            drainStarted = true
            drainStartedAt = now
            loop.stopAccepting()
            // Publishes are handled within an iteration and refused from here on: whatever this
            // loop accepted is already in every loop's inbox.
            loopMetrics.drainSeen.store(true, ordering: .releasing)
            logger.debug("draining", metadata: ["connections": "\(loop.connectionCount)"])
        }
        // Streams end only once no loop can accept a publish any more (each wakes the others'
        // inboxes when it publishes, and ticks every `loop.tick_ms` anyway).
        let streamsMayEnd = shared.loopMetrics.allSatisfy { $0.drainSeen.load(ordering: .acquiring) }
        // Events already published reach this loop's subscribers before their streams end.
        fanout.drainInbox()
        fanout.forEachReadySubscriber { queue in
            if let c = connection(Connection.id(fromToken: queue.token)) { startSend(c) }
        }
        for case let c? in connections where !c.closing && (streamsMayEnd || c.mode == .http) { drain(c) }
        if loop.connectionCount == 0 { loopMetrics.drained.store(true, ordering: .releasing) }
    }

    /// How long idle keep-alive connections stay open after a drain begins, in nanoseconds.
    static let drainIdleGrace: UInt64 = 250_000_000

    /// Ends one connection as soon as that is clean.
    ///
    /// A WebSocket gets a Close 1001 (going away) once and closes after it is written.
    func drain(_ c: Connection) {
        switch c.mode {
        case .eventStream:
            // End after the last queued byte: `sendCompleted` closes a flushed `closeAfterFlush`
            // connection; one with nothing in flight is closed here.
            c.closeAfterFlush = true
            if c.out.isIdle { finish(c) } else if !c.out.isSending { startSend(c) }
        case .webSocket:
            webSocketDrain(c)
        case .http:
            // A lingering close ends by itself within `limits.linger_timeout` (Linger.swift).
            if c.lingerUntil != 0 { return }
            // A request in progress gets its answer (with `Connection: close`, as every answer
            // while draining) and then the connection closes. An idle keep-alive connection is
            // kept for `drainIdleGrace` first, so a request already on its way (sent before the
            // client could know) is answered too. Either way the connection ends with a
            // lingering close (FIN, then discard until the client's FIN): a close with unread
            // input would send RST, which can destroy an answer not yet read, and a request
            // crossing the FIN meets a clean end instead of a reset.
            c.lingerOnClose = true
            if c.head == nil, c.phaseStarted == 0, c.out.isIdle, now &- drainStartedAt >= Self.drainIdleGrace {
                finish(c)
            }
        }
    }
}
