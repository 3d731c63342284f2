// What every loop does on each tick for operations: prove it turns (watchdog heartbeat), measure
// its lag, publish its counters for /metrics and STATUS=, pick up a reloaded configuration.
#if canImport(Glibc)
import Glibc
#endif

extension LoopWorker {
    /// Called first thing on every `tick`.
    func serviceTick(now: UInt64) {
        let period = UInt64(max(1, config.loop.tickMilliseconds)) * 1_000_000
        if lastTick != 0, now > lastTick {
            let elapsed = now - lastTick
            loopMetrics.recordLag(elapsed > period ? elapsed - period : 0)
        }
        lastTick = now
        watchSaturation(now: now)
        // Single writer: a plain load and store, no read-modify-write.
        loopMetrics.heartbeat.store(loopMetrics.heartbeat.load(ordering: .relaxed) &+ 1, ordering: .releasing)
        publishLoopMetrics()
        pickUpConfiguration()
        if stallAt != 0, now >= stallAt { stallForTest() }
    }

    /// Samples this thread's running and run-queue times (`ThreadLoad`); when the loop becomes
    /// saturated or stops being so, switches
    /// the fan-out's coalescing (`subscriber.busy_coalesce_delay`, `SaturationMonitor`).
    private func watchSaturation(now: UInt64) {
        if threadLoad == nil { threadLoad = ThreadLoad() }  // opened on this loop's thread
        guard let times = threadLoad?.times(),
            saturation.sample(wall: now, running: times.running, waiting: times.waiting)
        else { return }
        let saturated = saturation.isSaturated
        loopMetrics.saturated.store(saturated, ordering: .relaxed)
        fanout.coalesce = config.subscriber.coalescePolicy(saturated: saturated)
        let busy = Int((saturation.lastShare * 100).rounded())
        let ran = Int((saturation.lastRunShare * 100).rounded())
        let delay = config.subscriber.busyCoalesceDelayMilliseconds
        let holds = delay > 0 && config.subscriber.coalesceDelayMilliseconds == 0
        if saturated {
            logger.notice(
                holds
                    ? "loop \(index) saturated (busy \(busy)% of the time, running \(ran)%): holding sends up to \(delay) ms to coalesce them"
                    : "loop \(index) saturated (busy \(busy)% of the time, running \(ran)%)")
        } else {
            logger.notice(
                holds
                    ? "loop \(index) no longer saturated (busy \(busy)% of the time): sending at once"
                    : "loop \(index) no longer saturated (busy \(busy)% of the time)")
        }
    }

    /// The test-only stall: this loop stops turning (no tick, no I/O) until the server stops.
    private func stallForTest() {
        stallAt = 0
        logger.warning("\(TestStall.variable): stalling this loop on purpose (test only)")
        while !shared.stopRequested { usleep(20_000) }
    }
}

/// A test-only hook: `TEST_PUSHD_STALL_LOOP_AFTER_S=SECONDS` makes loop 0 stop turning that many
/// seconds after it starts (`SECONDS:LOOP` picks another loop), so a test can watch the systemd
/// watchdog pings stop. Not a configuration key and not for production: a stalled loop serves
/// nothing. It is deliberately outside the `PUSHD_*` namespace that the configuration owns.
public enum TestStall {
    /// The environment variable.
    public static let variable = "TEST_PUSHD_STALL_LOOP_AFTER_S"

    /// The monotonic deadline at which loop `loop` stalls, or 0 when it does not.
    static func deadline(loop: Int, now: UInt64) -> UInt64 {
        guard let raw = getenv(variable) else { return 0 }
        let parts = String(cString: raw).split(separator: ":")
        guard let first = parts.first, let seconds = Double(first), seconds >= 0 else { return 0 }
        let target = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
        guard target == loop else { return 0 }
        return now + max(1, UInt64(seconds * 1e9))
    }
}

extension Server {
    /// Each loop's heartbeat counter; every value grows while its loop turns (systemd watchdog).
    public var loopHeartbeats: [UInt64] { shared.loopMetrics.map { $0.heartbeat.load(ordering: .acquiring) } }

    /// One line for `STATUS=`: connections, streams, subscribers and events so far.
    public var statusLine: String {
        let s = shared.stats
        let subscribers = shared.loopMetrics.reduce(0) { $0 + $1.subscribers.load(ordering: .relaxed) }
        let delivered = shared.loopMetrics.reduce(UInt64(0)) { $0 &+ $1.delivered.load(ordering: .relaxed) }
        let state = shared.isDraining ? "draining" : (shared.isServing ? "serving" : "starting")
        return "\(state): \(s.connections) connections (\(s.streams) SSE, \(s.webSocketConnections) WebSocket), "
            + "\(subscribers) subscribers, \(s.publishedEvents) events published, \(delivered) delivered"
    }
}
