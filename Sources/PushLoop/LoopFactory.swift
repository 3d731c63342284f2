import Synchronization

/// Creates one event loop for the calling thread.
///
/// Call it ON the loop's own thread, the one that will call `run`: an io_uring ring created with
/// `IORING_SETUP_SINGLE_ISSUER` must be created and submitted on the same thread.
///
/// - `.ioUring`: an `IOUringLoop`; throws `LoopError.ioUringUnavailable` when io_uring or a feature
///   it needs (provided-buffer rings, multishot receive) is missing. No fallback.
/// - `.epoll`: an `EpollLoop`.
/// - `.auto`: an `IOUringLoop`, or an `EpollLoop` when io_uring setup fails with
///   `LoopError.ioUringUnavailable` (ENOSYS, EPERM from `kernel.io_uring_disabled` or seccomp, a
///   missing feature). Why it fell back is kept in `LoopFactory.lastFallbackReason`, and the
///   `makeEventLoop(_:options:fallbackReason:)` overload hands it to the caller directly.
///
/// - Throws: `LoopError.ioUringUnavailable` (`.ioUring` only), or `LoopError.system` when a call
///   both backends need fails (epoll_create1, eventfd: EMFILE, ENOMEM).
public func makeEventLoop(_ choice: LoopBackendChoice, options: LoopOptions) throws -> any EventLoop {
    var ignored: LoopError?
    return try makeEventLoop(choice, options: options, fallbackReason: &ignored)
}

/// `makeEventLoop(_:options:)` that also reports why `.auto` fell back to epoll: `fallbackReason`
/// is set to the io_uring setup error when it did, and to nil otherwise. Same thread rule and errors.
public func makeEventLoop(
    _ choice: LoopBackendChoice, options: LoopOptions, fallbackReason: inout LoopError?
) throws -> any EventLoop {
    try makeEventLoop(choice, options: options, fallbackReason: &fallbackReason) {
        try IOUringLoop(options: $0)
    }
}

/// The factory with the io_uring constructor injected, so tests can exercise the fallback.
func makeEventLoop(
    _ choice: LoopBackendChoice, options: LoopOptions, fallbackReason: inout LoopError?,
    makeIOUring: (LoopOptions) throws -> any EventLoop
) throws -> any EventLoop {
    fallbackReason = nil
    switch choice {
    case .epoll:
        return try EpollLoop(options: options)
    case .ioUring:
        return try makeIOUring(options)
    case .auto:
        do {
            let loop = try makeIOUring(options)
            LoopFactory.record(nil)
            return loop
        } catch let error as LoopError {
            guard case .ioUringUnavailable = error else { throw error }
            fallbackReason = error
            LoopFactory.record(error)
            return try EpollLoop(options: options)
        }
    }
}

/// What the factory learned, for the daemon's startup log.
public enum LoopFactory {
    private static let fallback = Mutex<LoopError?>(nil)

    /// Why the most recent `.auto` `makeEventLoop` (on any thread) fell back to epoll — the
    /// `LoopError.ioUringUnavailable` io_uring setup threw — or nil when it got io_uring (or no
    /// `.auto` loop was made yet). Safe from any thread.
    public static var lastFallbackReason: LoopError? {
        fallback.withLock { $0 }
    }

    static func record(_ reason: LoopError?) {
        fallback.withLock { $0 = reason }
    }
}
