// How busy a loop thread is, for load-adaptive coalescing (`SaturationMonitor`): the time the
// thread was running and the time it was runnable but waiting for a CPU. Both matter on a shared
// machine: a loop that never idles but is preempted half the time is as saturated as one that
// runs all the time, while a loop that waits a lot but runs little is merely on a busy machine.
#if canImport(Glibc)
import Glibc
#endif

/// Reads the calling thread's busy time. Create it on the thread it measures (the file it keeps
/// open is that thread's `/proc/thread-self/schedstat`).
final class ThreadLoad {
    /// `/proc/thread-self/schedstat` (proc(5): "time spent on the cpu", "time spent waiting on a
    /// runqueue", timeslices), or -1 when it cannot be opened (then CPU time alone is used).
    private let schedstat: Int32

    init() {
        schedstat = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC)
    }

    deinit {
        if schedstat >= 0 { _ = Glibc.close(schedstat) }
    }

    /// Nanoseconds this thread has been running, and runnable but waiting for a CPU, since it
    /// started: the first two fields of its schedstat; without schedstat (kernels without
    /// CONFIG_SCHED_INFO) its CLOCK_THREAD_CPUTIME_ID and 0. Nil when neither can be read.
    func times() -> (running: UInt64, waiting: UInt64)? {
        if schedstat >= 0, let fields = readSchedstat() { return fields }
        var cpu = timespec()
        guard clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu) == 0 else { return nil }
        return (UInt64(cpu.tv_sec) &* 1_000_000_000 &+ UInt64(cpu.tv_nsec), 0)
    }

    /// The first two numbers of the schedstat line, read with one pread into a stack buffer.
    private func readSchedstat() -> (running: UInt64, waiting: UInt64)? {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 96) { buffer -> (UInt64, UInt64)? in
            let n = pread(schedstat, buffer.baseAddress, buffer.count, 0)
            guard n > 0 else { return nil }
            var first: UInt64?
            var current: UInt64 = 0
            var inNumber = false
            for byte in buffer[0..<n] {
                if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                    current = current &* 10 &+ UInt64(byte - UInt8(ascii: "0"))
                    inNumber = true
                } else if inNumber {
                    if let first { return (first, current) }
                    first = current
                    current = 0
                    inNumber = false
                }
            }
            return nil
        }
    }
}
