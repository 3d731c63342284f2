#if canImport(Glibc)
import Glibc
#endif

// The contract every loop backend implements (io_uring in IOUringLoop.swift, epoll in
// EpollLoop.swift). PushLoop knows bytes and file descriptors only: never HTTP, topics or events.

/// Which kernel interface a loop uses.
public enum LoopBackendKind: String, Sendable, CaseIterable {
    /// io_uring (liburing): multishot accept, multishot receive into a provided-buffer ring,
    /// every send of one iteration submitted with one `io_uring_enter`.
    case ioUring = "io_uring"
    /// epoll(7) with non-blocking sockets; used where io_uring is unavailable.
    case epoll
}

/// What the operator asked for: a backend, or `auto` (io_uring, falling back to epoll when
/// io_uring setup fails: ENOSYS, EPERM, or a feature the loop needs is missing). See
/// `makeEventLoop(_:options:)`.
public enum LoopBackendChoice: String, Sendable, CaseIterable {
    /// io_uring when it can be set up, else epoll (`LoopFactory.lastFallbackReason` says why).
    case auto
    /// io_uring only; creating the loop throws `LoopError.ioUringUnavailable` where it cannot be used.
    case ioUring = "io_uring"
    /// epoll only.
    case epoll
}

/// Identifies one connection on one loop for its whole life. `slot` indexes the loop's connection
/// table; `generation` changes each time a slot is reused, so a late completion that belongs to an
/// earlier connection in the same slot is recognised and ignored.
public struct ConnectionID: Hashable, Sendable, CustomStringConvertible {
    /// Index in the loop's connection table (small, dense: usable to index the server's own arrays).
    public let slot: UInt32
    /// Bumped each time the slot is freed; never 0 for a connection a loop handed out.
    public let generation: UInt32
    /// Makes an id; only loops mint ids that name live connections.
    public init(slot: UInt32, generation: UInt32) {
        self.slot = slot
        self.generation = generation
    }
    /// `c<slot>.<generation>`, for logs.
    public var description: String { "c\(slot).\(generation)" }
}

/// A peer's IPv4 or IPv6 address and port, as accepted.
public struct PeerAddress: Sendable, Hashable, CustomStringConvertible {
    /// Numeric host (`127.0.0.1`, `::1`); `0.0.0.0` with port 0 when the peer could not be read
    /// (it reset the connection before it was accepted).
    public let host: String
    /// TCP port, host byte order.
    public let port: UInt16
    /// Makes an address from a numeric host and a port.
    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }
    /// `host:port`, with IPv6 hosts in brackets (`[::1]:8080`).
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Tuning for one loop. Every value has a safe default.
public struct LoopOptions: Sendable, Equatable {
    /// How often `LoopHandler.tick(now:)` is called, in milliseconds.
    public var tickMilliseconds: Int = 100
    /// io_uring submission queue entries (the completion queue is twice this). The kernel rounds
    /// up to a power of two and clamps to its maximum (32768). A full SQ is submitted early, so this
    /// bounds the batch size, not the number of operations in flight.
    public var ringEntries: UInt32 = 4096
    /// Provided receive buffers per loop (io_uring; rounded up to a power of two, at most 32768).
    /// Receive memory per loop is `receiveBufferCount × receiveBufferSize`, shared by all of the
    /// loop's connections. The epoll backend ignores the count and uses one shared read buffer.
    public var receiveBufferCount: Int = 256
    /// Bytes per receive buffer (io_uring) or of the one shared read buffer (epoll): the most one
    /// `LoopHandler.received` call delivers.
    public var receiveBufferSize: Int = 16 * 1024
    /// How long accept pauses after EMFILE/ENFILE/ENOMEM/ENOBUFS, in milliseconds.
    public var acceptBackoffMilliseconds: Int = 100
    /// Thread name shown by top/perf (at most 15 bytes; longer names are cut), set by `run`.
    public var threadName: String = "pushd-loop"
    /// The defaults above.
    public init() {}
}

/// Called by a loop on the loop's own thread. Implemented by the server layer.
///
/// Ordering guarantees: for one connection, `accepted` comes first, `closed` last and exactly once;
/// after the handler calls `EventLoop.close(_:)` no callback but `closed` arrives for that id.
public protocol LoopHandler: AnyObject {
    /// A connection was accepted on listener `listener` (the value `addListener` returned).
    /// The socket is non-blocking, close-on-exec, TCP_NODELAY. Receiving starts right after.
    func accepted(_ id: ConnectionID, peer: PeerAddress, listener: Int)
    /// Bytes arrived. `bytes` is valid only during the call (it is a provided buffer or the loop's
    /// shared read buffer): copy what must outlive it.
    func received(_ id: ConnectionID, _ bytes: UnsafeRawBufferPointer)
    /// The peer closed its side (`error == 0`) or receiving failed (`error` is a positive errno such
    /// as ECONNRESET). The connection stays open until the handler calls `close`.
    func receiveEnded(_ id: ConnectionID, error: Int32)
    /// The connection's one outstanding send finished: `result > 0` bytes were written (possibly
    /// fewer than asked: a short send — send the rest with another `send`), or `result < 0` is
    /// `-errno` (EPIPE, ECONNRESET, …). `result == 0` only answers an empty send. Never called from
    /// inside `EventLoop.send`.
    func sendCompleted(_ id: ConnectionID, result: Int)
    /// The connection's socket is closed and its slot is free (the id is stale from now on). Memory
    /// passed to `send` may be released now, not before. Never called from inside
    /// `EventLoop.close`.
    func closed(_ id: ConnectionID)
    /// Another thread called `LoopWaker.wake()` at least once since the last call.
    func woken()
    /// Periodic tick, every `LoopOptions.tickMilliseconds`. `now` is CLOCK_MONOTONIC nanoseconds.
    func tick(now: UInt64)
    /// Called once per loop iteration after every completion of the iteration was dispatched and
    /// before the iteration's sends are submitted (one `io_uring_enter` on io_uring): the place to
    /// start coalesced sends.
    func iterationWillEnd()
    /// accept(2) on listener `listener` failed for lack of resources and that listener now pauses
    /// for `LoopOptions.acceptBackoffMilliseconds` instead of spinning: new connections wait in the
    /// kernel's listen backlog meanwhile. `error` is the positive errno: EMFILE (this process's
    /// descriptor limit, RLIMIT_NOFILE), ENFILE (the system-wide limit), ENOBUFS or ENOMEM. Called
    /// once per pause, so at most once per back-off period per listener.
    func acceptPaused(listener: Int, error: Int32)
}

/// A handle another thread may use to interrupt a loop's wait (eventfd write). Cheap to call
/// repeatedly: callers should still avoid waking a loop that is already awake.
public final class LoopWaker: Sendable {
    private let fd: Int32
    private let ownsFD: Bool
    /// Wraps an eventfd owned by someone else (it is not closed by the waker).
    public init(eventFD: Int32) {
        self.fd = eventFD
        self.ownsFD = false
    }
    /// Wraps an eventfd the waker owns and closes when the last reference to it goes. The loops use
    /// this, so a thread still holding the waker after its loop is gone never writes to a closed
    /// (or reused) descriptor.
    init(owningEventFD: Int32) {
        self.fd = owningEventFD
        self.ownsFD = true
    }
    deinit {
        if ownsFD { _ = Glibc.close(fd) }
    }
    /// The eventfd (eventfd(2)) this waker writes to.
    var eventFD: Int32 { fd }
    /// Makes the loop call `LoopHandler.woken()` soon. Safe from any thread.
    public func wake() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { write(fd, $0.baseAddress, 8) }
    }
}

/// One event loop on one thread. Not thread-safe: every method except `waker` is called on the
/// loop's thread (the thread that created it and calls `run`).
public protocol EventLoop: AnyObject {
    /// The backend in use.
    var kind: LoopBackendKind { get }
    /// Receives every callback. Held unowned by the loop (`run` keeps it alive while it runs); set
    /// before `run` and do not replace it while running.
    var handler: (any LoopHandler)? { get set }
    /// Wakes this loop from another thread.
    var waker: LoopWaker { get }
    /// Starts accepting on a listening socket (bound, listening, non-blocking). The loop does not own
    /// `fd` and never closes it. Returns the listener index passed to `accepted`.
    func addListener(fd: Int32) -> Int
    /// Stops accepting on every listener (drain); established connections are untouched. The
    /// caller then closes its listening sockets: with SO_REUSEPORT the kernel keeps routing new
    /// connections to an open listener, where they would wait unaccepted until it is closed.
    func stopAccepting()
    /// Sends `bytes` on `id`. At most one send per connection may be outstanding: call again only
    /// after `sendCompleted` (a second one traps). The memory must stay valid and unchanged until
    /// `sendCompleted` or `closed` for this id (or, for a connection still open when the loop is
    /// released, until the loop is deinitialized). On io_uring the send is queued and submitted
    /// with the iteration's batch; on epoll it is written at once and reported later in the
    /// iteration. Ignored when `id` is stale or already closing.
    func send(_ id: ConnectionID, _ bytes: UnsafeRawBufferPointer)
    /// Half-closes `id` (shutdown(2) with `SHUT_WR`): the peer reads end of stream after every
    /// byte already sent; receiving goes on (`received`, then `receiveEnded` at the peer's FIN)
    /// until `close`. For a lingering close: closing a socket that has unread input makes the
    /// kernel answer with RST, which can destroy a response the peer has not read yet.
    /// Returns false, doing nothing, when `id` is stale or closing, a send is outstanding (it
    /// would fail with EPIPE), or shutdown(2) fails (ENOTCONN: the peer already reset it).
    func shutdownWrite(_ id: ConnectionID) -> Bool
    /// Closes `id`: cancels its receive and any outstanding send, closes the socket, then calls
    /// `closed(id)` once (possibly later in this or a following iteration). Idempotent.
    func close(_ id: ConnectionID)
    /// The number of connections currently in the table.
    var connectionCount: Int { get }
    /// Runs the loop on the calling thread until `stop()`. Connections still open when it returns
    /// get no more callbacks; their sockets are closed when the loop is deinitialized.
    func run() throws
    /// Makes `run` return after the current iteration. Call on the loop thread (from a callback).
    func stop()
    /// Stops reading `id`'s socket until `resumeReceiving(id)`: what the peer sends stays in the
    /// kernel's receive buffer, so TCP flow control slows the peer down (read backpressure). A few
    /// `received` calls may still come for bytes the kernel had already completed (io_uring: CQEs
    /// posted before the cancellation took effect); the handler must take them. End of stream is
    /// not noticed while paused. Idempotent; ignored for stale or closing ids.
    func pauseReceiving(_ id: ConnectionID)
    /// Undoes `pauseReceiving`: bytes waiting in the kernel are delivered from the next iteration
    /// on. Idempotent; ignored for stale or closing ids.
    func resumeReceiving(_ id: ConnectionID)
    /// Makes the loop's next wait end by `deadline` (CLOCK_MONOTONIC nanoseconds, as
    /// `LoopHandler.tick(now:)` uses) even when nothing completes, so `iterationWillEnd` runs again
    /// by then. One-shot: it applies to the next wait only, and the earliest of several calls wins.
    /// A deadline already past makes the next wait return at once. The server uses it to flush
    /// sends it held back for coalescing.
    func wakeBy(_ deadline: UInt64)
}

/// Errors creating or running a loop.
public enum LoopError: Error, CustomStringConvertible {
    /// `io_uring_queue_init` (or a required io_uring feature) failed; `errno` is positive.
    case ioUringUnavailable(errno: Int32, reason: String)
    /// A system call failed while setting the loop up (or `ListeningSocket.open`); `call` names it.
    case system(call: String, errno: Int32)

    /// One line for logs: what failed and the errno.
    public var description: String {
        switch self {
        case .ioUringUnavailable(let e, let reason): return "io_uring unavailable (errno \(e)): \(reason)"
        case .system(let call, let e): return "\(call) failed: errno \(e)"
        }
    }
}
