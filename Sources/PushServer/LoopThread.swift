#if canImport(Glibc)
import Glibc
#endif

/// Starts a detached POSIX thread running `body` (each event loop gets its own thread; the loop is
/// created inside `body` so that everything it owns stays on that thread).
enum LoopThread {
    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    static func spawn(_ body: @escaping @Sendable () -> Void) throws {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(
            &thread, nil,
            { raw in
                let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
                box.body()
                return nil
            }, box)
        if rc != 0 {
            Unmanaged<Box>.fromOpaque(box).release()
            throw ServerError.threadStart(errno: rc)
        }
        pthread_detach(thread)
    }
}

/// Monotonic and wall-clock time.
enum Clock {
    /// CLOCK_MONOTONIC in nanoseconds.
    static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// CLOCK_REALTIME in milliseconds since the Unix epoch (event ids).
    static func wallMilliseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
    }
}
