/// Tells whether a loop thread is saturated — busy nearly all the time — from samples of its
/// busy time (running, or runnable and waiting for a CPU), for load-adaptive write coalescing
/// (`subscriber.busy_coalesce_delay`).
///
/// Why: coalescing (`CoalescePolicy`) trades a bounded delay for fewer sends. On a loop with idle
/// time the trade is poor — every event could go out at once — but on a saturated loop events
/// already wait in queues, each send costs the kernel about the same whatever it carries, and
/// holding streams back for a few milliseconds cuts the sends several-fold and raises throughput,
/// for little added latency (docs/BENCHMARKS.md, topics rows). So the loop coalesces only
/// while it is saturated.
///
/// How: every `window` the monitor compares the thread's busy time with the wall time. A window at
/// or above `onShare` makes the loop saturated; it stays so until `offWindows` windows in a row
/// are below `offShare`. Coalescing makes the same load cheaper, so a loop near the edge would
/// otherwise flip every window; the asymmetric exit keeps it coalescing while the load lasts.
/// Pure arithmetic on the samples it is given: no clock, no I/O.
public struct SaturationMonitor: Sendable, Equatable {
    /// Length of one measurement window, in nanoseconds (> 0).
    public var window: UInt64
    /// Busy share (0…1) of one window at which the loop becomes saturated.
    public var onShare: Double
    /// Busy share (0…1) below which a window counts towards leaving the saturated state.
    public var offShare: Double
    /// Consecutive windows below `offShare` that end the saturated state (≥ 1).
    public var offWindows: Int

    /// Whether the loop is saturated now.
    public private(set) var isSaturated = false
    /// The busy share of the last complete window (0 before the first).
    public private(set) var lastShare = 0.0

    private var windowStartWall: UInt64 = 0
    private var windowStartBusy: UInt64 = 0
    private var quietWindows = 0

    /// A monitor with the given thresholds; the defaults are the daemon's: windows of 500 ms,
    /// saturated from 85% of a core, back to sending at once after 4 windows (2 s) under 50%.
    public init(window: UInt64 = 500_000_000, onShare: Double = 0.85, offShare: Double = 0.5, offWindows: Int = 4) {
        self.window = max(1, window)
        self.onShare = onShare
        self.offShare = offShare
        self.offWindows = max(1, offWindows)
    }

    /// Feeds one sample: `wall` is CLOCK_MONOTONIC and `busy` the thread's cumulative busy time
    /// (schedstat run + run-queue time, or CLOCK_THREAD_CPUTIME_ID), both in nanoseconds.
    /// Returns true when `isSaturated` changed.
    /// The first sample only starts a window; samples closer together than `window` accumulate.
    public mutating func sample(wall: UInt64, busy: UInt64) -> Bool {
        guard windowStartWall != 0, wall > windowStartWall, busy >= windowStartBusy else {
            windowStartWall = wall
            windowStartBusy = busy
            return false
        }
        let elapsed = wall - windowStartWall
        guard elapsed >= window else { return false }
        lastShare = Double(busy - windowStartBusy) / Double(elapsed)
        windowStartWall = wall
        windowStartBusy = busy
        let was = isSaturated
        if lastShare >= onShare {
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
