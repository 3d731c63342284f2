import Testing

@testable import PushCore

@Suite("SaturationMonitor (load-adaptive coalescing)")
struct SaturationMonitorTests {
    /// Feeds `windows` windows of 500 ms in which the thread ran `share` of the time (and waited
    /// for a CPU `waiting` of it); returns whether each sample changed the state.
    private func feed(
        _ m: inout SaturationMonitor, _ share: Double, waiting: Double = 0, windows: Int, clock: inout UInt64,
        cpu: inout UInt64, wait: inout UInt64
    ) -> [Bool] {
        var changes: [Bool] = []
        for _ in 0..<windows {
            clock += 500_000_000
            cpu += UInt64(share * 500_000_000)
            wait += UInt64(waiting * 500_000_000)
            changes.append(m.sample(wall: clock, running: cpu, waiting: wait))
        }
        return changes
    }

    @Test("the first sample only starts a window; a busy window saturates")
    func saturates() {
        var m = SaturationMonitor()
        var clock: UInt64 = 1_000_000_000, cpu: UInt64 = 0
        var wait: UInt64 = 0
        let c1 = m.sample(wall: clock, running: cpu, waiting: 0)
        #expect(!c1)
        let r1 = feed(&m, 0.3, windows: 3, clock: &clock, cpu: &cpu, wait: &wait)
        #expect(r1 == [false, false, false])
        #expect(!m.isSaturated)
        #expect(abs(m.lastShare - 0.3) < 0.001)
        let r2 = feed(&m, 0.95, windows: 1, clock: &clock, cpu: &cpu, wait: &wait)
        #expect(r2 == [true])
        #expect(m.isSaturated)
    }

    @Test("saturation ends only after offWindows quiet windows in a row")
    func hysteresis() {
        var m = SaturationMonitor(offWindows: 4)
        var clock: UInt64 = 1, cpu: UInt64 = 0
        var wait: UInt64 = 0
        _ = m.sample(wall: clock, running: cpu, waiting: 0)
        _ = feed(&m, 1.0, windows: 1, clock: &clock, cpu: &cpu, wait: &wait)
        #expect(m.isSaturated)
        // Quiet, quiet, quiet, then a middling window (between offShare and onShare) resets the count.
        let r3 = feed(&m, 0.2, windows: 3, clock: &clock, cpu: &cpu, wait: &wait)
        #expect(r3 == [false, false, false])
        let r4 = feed(&m, 0.7, windows: 1, clock: &clock, cpu: &cpu, wait: &wait)
        #expect(r4 == [false])
        #expect(m.isSaturated)
        let r5 = feed(&m, 0.2, windows: 4, clock: &clock, cpu: &cpu, wait: &wait)
        #expect(r5 == [false, false, false, true])
        #expect(!m.isSaturated)
        // A middling window (under onShare) does not saturate a quiet loop.
        let r6 = feed(&m, 0.8, windows: 5, clock: &clock, cpu: &cpu, wait: &wait)
        #expect(r6.allSatisfy { !$0 })
        #expect(!m.isSaturated)
    }

    @Test("ticks shorter than the window accumulate into one window")
    func accumulates() {
        var m = SaturationMonitor(window: 500_000_000)
        var clock: UInt64 = 5, cpu: UInt64 = 0
        _ = m.sample(wall: clock, running: cpu, waiting: 0)
        for _ in 0..<4 {  // 400 ms of ticks at 100% CPU: no verdict yet
            clock += 100_000_000
            cpu += 100_000_000
            let c2 = m.sample(wall: clock, running: cpu, waiting: 0)
            #expect(!c2)
        }
        #expect(!m.isSaturated)
        clock += 100_000_000
        cpu += 100_000_000
        let c3 = m.sample(wall: clock, running: cpu, waiting: 0)
        #expect(c3)
        #expect(m.isSaturated)
    }

    @Test("a clock that does not advance or a CPU counter that goes back restarts the window")
    func oddSamples() {
        var m = SaturationMonitor()
        _ = m.sample(wall: 1_000, running: 1_000, waiting: 0)
        let c4 = m.sample(wall: 1_000, running: 2_000, waiting: 0)
        #expect(!c4)
        let c5 = m.sample(wall: 2_000_000_000, running: 10, waiting: 0)
        #expect(!c5)  // cpu went back: new window
        #expect(!m.isSaturated)
        let c6 = m.sample(wall: 2_600_000_000, running: 10 + 600_000_000, waiting: 0)
        #expect(c6)
        #expect(m.isSaturated)
    }

    @Test("waiting for a CPU counts as busy only for a loop that also runs most of the time")
    func runQueueWait() {
        var m = SaturationMonitor()
        var clock: UInt64 = 1, cpu: UInt64 = 0
        var wait: UInt64 = 0
        _ = m.sample(wall: clock, running: 0, waiting: 0)
        // A light loop on a crowded machine: runs 35%, waits 50% (the case found by an
        // adversarial run: holding sends there only added latency).
        let r1 = feed(&m, 0.35, waiting: 0.5, windows: 3, clock: &clock, cpu: &cpu, wait: &wait)
        #expect(r1 == [false, false, false])
        #expect(!m.isSaturated)
        #expect(abs(m.lastShare - 0.85) < 0.001 && abs(m.lastRunShare - 0.35) < 0.001)
        // A loop with work all the time that shares its core: runs 60%, waits 35%.
        let r2 = feed(&m, 0.6, waiting: 0.35, windows: 1, clock: &clock, cpu: &cpu, wait: &wait)
        #expect(r2 == [true])
        #expect(m.isSaturated)
    }
}
