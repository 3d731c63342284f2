/// Tells whether a loop thread is saturated — it has work nearly all the time and spends most of
/// it running — from samples of its running time and its run-queue waiting time, for
/// load-adaptive write coalescing (`subscriber.busy_coalesce_delay`).
///
/// Why: coalescing (`CoalescePolicy`) trades a bounded delay for fewer sends. On a loop with idle
/// time the trade is poor — every event could go out at once — but on a saturated loop events
/// already wait in queues, each send costs the kernel about the same whatever it carries, and
/// holding streams back for a few milliseconds cuts the sends several-fold and raises throughput,
/// for little added latency (docs/BENCHMARKS.md, topics rows). So the loop coalesces only
/// while it is saturated.
///
/// How: every `window` the monitor compares the thread's times with the wall time. A window in
/// which the thread was busy (running, or runnable and waiting for a CPU) at least `onShare` of
/// the time AND running at least `minRunShare` of it makes the loop saturated. Both are needed:
/// busy time alone counts a lightly loaded loop as saturated on a machine whose other processes
/// keep it waiting for a CPU, where holding sends back only adds latency; running time alone
/// misses a loop that has work all the time but shares its core. It stays saturated until
/// `offWindows` windows in a row are busy less than `offShare` of the time. Coalescing makes the
/// same load cheaper, so a loop near the edge would otherwise flip every window; the asymmetric
/// exit keeps it coalescing while the load lasts. Pure arithmetic on the samples it is given:
/// no clock, no I/O.
public struct SaturationMonitor: Sendable, Equatable {
    /// Length of one measurement window, in nanoseconds (> 0).
    public var window: UInt64
    /// Busy share (0…1: running + waiting for a CPU) of one window at which the loop becomes
    /// saturated, if it also ran `minRunShare` of it.
    public var onShare: Double
    /// Running share (0…1) a window needs as well to make the loop saturated.
    public var minRunShare: Double
    /// Busy share (0…1) below which a window counts towards leaving the saturated state.
    public var offShare: Double
    /// Consecutive windows below `offShare` that end the saturated state (≥ 1).
    public var offWindows: Int

    /// Whether the loop is saturated now.
    public private(set) var isSaturated = false
    /// The busy share (running + waiting) of the last complete window (0 before the first).
    public private(set) var lastShare = 0.0
    /// The running share of the last complete window (0 before the first).
    public private(set) var lastRunShare = 0.0

    private var windowStartWall: UInt64 = 0
    private var windowStartRunning: UInt64 = 0
    private var windowStartWaiting: UInt64 = 0
    private var quietWindows = 0

    /// A monitor with the given thresholds; the defaults are the daemon's: windows of 500 ms,
    /// saturated when busy ≥ 85% of a window and running ≥ 50% of it, back to sending at once
    /// after 4 windows (2 s) busy under 50%.
    public init(
        window: UInt64 = 500_000_000, onShare: Double = 0.85, minRunShare: Double = 0.5,
        offShare: Double = 0.5, offWindows: Int = 4
    ) {
        self.window = max(1, window)
        self.onShare = onShare
        self.minRunShare = minRunShare
        self.offShare = offShare
        self.offWindows = max(1, offWindows)
    }

    /// Feeds one sample, all in nanoseconds: `wall` is CLOCK_MONOTONIC, `running` the thread's
    /// cumulative time on a CPU and `waiting` its cumulative time runnable on a run queue
    /// (schedstat, proc(5); 0 when unknown). Returns true when `isSaturated` changed. The first
    /// sample only starts a window; samples closer together than `window` accumulate.
    public mutating func sample(wall: UInt64, running: UInt64, waiting: UInt64) -> Bool {
        guard windowStartWall != 0, wall > windowStartWall, running >= windowStartRunning,
            waiting >= windowStartWaiting
        else {
            windowStartWall = wall
            windowStartRunning = running
            windowStartWaiting = waiting
            return false
        }
        let elapsed = wall - windowStartWall
        guard elapsed >= window else { return false }
        let ran = Double(running - windowStartRunning)
        let waited = Double(waiting - windowStartWaiting)
        lastRunShare = ran / Double(elapsed)
        lastShare = (ran + waited) / Double(elapsed)
        windowStartWall = wall
        windowStartRunning = running
        windowStartWaiting = waiting
        let was = isSaturated
        if lastShare >= onShare && lastRunShare >= minRunShare {
            isSaturated = true
            quietWindows = 0
        } else if isSaturated, lastShare < offShare {
            quietWindows += 1
            if quietWindows >= offWindows {
                isSaturated = false
                quietWindows = 0
            }
        } else {
            quietWindows = 0
        }
        return was != isSaturated
    }
}
