import CPushShim
#if canImport(Glibc)
import Glibc
#endif

/// The epoll backend (epoll(7), level-triggered, non-blocking sockets), used where io_uring is
/// unavailable. Same contract as `IOUringLoop`:
///
/// - `epoll_wait` with a timeout that ends at the next tick (or accept back-off end), or 0 while
///   completions or `closed` notifications are pending.
/// - Listener readiness runs an accept4(2) loop (at most 64 per readiness); EMFILE/ENFILE/ENOBUFS/
///   ENOMEM take the listener out of the interest list for `acceptBackoffMilliseconds`.
/// - One shared read buffer of `receiveBufferSize` bytes per loop: no per-connection read memory.
/// - `send` writes at once (send(2) with MSG_NOSIGNAL) and `sendCompleted` is delivered later in
///   the same iteration, never from inside `send`. EAGAIN with nothing written arms EPOLLOUT and
///   the send is retried when the socket is writable.
/// - A connection whose receive ended and that waits for no write is removed from the interest
///   list, so a reset or half-closed socket does not spin the loop before the handler closes it.
///
/// Must be created, run and called on one thread.
public final class EpollLoop: EventLoop {
    /// Always `.epoll`.
    public var kind: LoopBackendKind { .epoll }
    /// Receives every callback. Held unowned; `run` keeps it alive while running. Set before `run`
    /// and do not replace it while the loop runs.
    public unowned(unsafe) var handler: (any LoopHandler)?
    /// Wakes this loop from another thread (a write to an eventfd in the loop's interest list).
    public let waker: LoopWaker
    /// The number of connections in the table, including ones closing but not yet `closed`.
    public var connectionCount: Int { table.count }

    private let options: LoopOptions
    private let epollFD: Int32
    private let table = ConnectionTable()
    private let readBuffer: UnsafeMutableRawPointer
    private let readBufferSize: Int
    private let events: UnsafeMutablePointer<epoll_event>
    private let eventCapacity: Int32 = 512
    private let tickNanoseconds: UInt64
    /// `wakeBy(_:)`'s deadline for the next wait (0: none).
    private var wakeDeadline: UInt64 = 0
    private let backoffNanoseconds: UInt64
    private var nextTick: UInt64 = 0
    private var listeners: [Listener] = []
    private var completions: [Completion] = []
    private var completionsSpare: [Completion] = []
    private var pendingCloses: [UInt32] = []
    private var pendingClosesSpare: [UInt32] = []
    private var running = false

    private struct Listener {
        var fd: Int32
        var active = true
        var registered = false
        /// CLOCK_MONOTONIC ns when a back-off ends; 0 when not backing off.
        var resumeAt: UInt64 = 0
    }

    private struct Completion {
        var slot: UInt32
        var generation: UInt32
        var result: Int
    }

    /// epoll user data: kind (8 bits) | generation low 24 bits | slot or listener index (32 bits).
    private enum Token: UInt8 {
        case wake = 1, listener, connection
    }

    /// Creates the epoll instance (epoll_create1(2)) and the wake eventfd (eventfd(2)).
    /// - Throws: `LoopError.system(call:errno:)` when either call fails (EMFILE, ENOMEM).
    public init(options: LoopOptions) throws {
        self.options = options
        let epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else { throw LoopError.system(call: "epoll_create1", errno: errno) }
        let wakeFD = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        guard wakeFD >= 0 else {
            let code = errno
            _ = Glibc.close(epollFD)
            throw LoopError.system(call: "eventfd", errno: code)
        }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = EpollLoop.token(.wake, slot: 0, generation: 0)
        guard epoll_ctl(epollFD, EPOLL_CTL_ADD, wakeFD, &event) == 0 else {
            let code = errno
            _ = Glibc.close(wakeFD)
            _ = Glibc.close(epollFD)
            throw LoopError.system(call: "epoll_ctl(eventfd)", errno: code)
        }
        self.epollFD = epollFD
        self.waker = LoopWaker(owningEventFD: wakeFD)
        self.readBufferSize = max(1, options.receiveBufferSize)
        self.readBuffer = .allocate(byteCount: readBufferSize, alignment: 64)
        self.events = .allocate(capacity: Int(eventCapacity))
        self.events.initialize(repeating: epoll_event(), count: Int(eventCapacity))
        self.tickNanoseconds = UInt64(max(1, options.tickMilliseconds)) * 1_000_000
        self.backoffNanoseconds = UInt64(max(1, options.acceptBackoffMilliseconds)) * 1_000_000
        completions.reserveCapacity(256)
        completionsSpare.reserveCapacity(256)
        pendingCloses.reserveCapacity(64)
        pendingClosesSpare.reserveCapacity(64)
    }

    deinit {
        table.forEachLive { index in
            if table.slots[index].state == .open { _ = Glibc.close(table.slots[index].fd) }
        }
        _ = Glibc.close(epollFD)
        readBuffer.deallocate()
        events.deallocate()
    }

    // MARK: EventLoop

    /// Adds `fd` to the interest list for EPOLLIN. See `EventLoop.addListener`.
    public func addListener(fd: Int32) -> Int {
        listeners.append(Listener(fd: fd))
        let index = listeners.count - 1
        register(listener: index)
        return index
    }

    /// Removes every listener from the interest list; back-offs end without re-adding them.
    public func stopAccepting() {
        for index in listeners.indices where listeners[index].active {
            listeners[index].active = false
            listeners[index].resumeAt = 0
            if listeners[index].registered {
                _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, listeners[index].fd, nil)
                listeners[index].registered = false
            }
        }
    }

    /// Writes `bytes` now with send(2) (MSG_NOSIGNAL). The result — the count written, possibly
    /// short, or `-errno` — is delivered by `sendCompleted` later in this iteration. On EAGAIN with
    /// nothing written the send waits for EPOLLOUT and is retried then. Ignored when `id` is closed
    /// or closing. Precondition: no send outstanding on `id`.
    public func send(_ id: ConnectionID, _ bytes: UnsafeRawBufferPointer) {
        guard let index = table.index(of: id), table.slots[index].state == .open else { return }
        precondition(!table.slots[index].sending, "EventLoop.send: a send is already outstanding on \(id)")
        table.slots[index].sending = true
        table.slots[index].sendBase = bytes.baseAddress
        table.slots[index].sendLength = bytes.count
        trySend(index)
    }

    /// Drops EPOLLIN from `id`'s interest set (and stops a read loop in progress after the
    /// current `received`). See `EventLoop.pauseReceiving`.
    public func pauseReceiving(_ id: ConnectionID) {
        guard let index = table.index(of: id), table.slots[index].state == .open, !table.slots[index].receivePaused
        else { return }
        table.slots[index].receivePaused = true
        updateInterest(index)
    }

    /// Adds EPOLLIN back (level-triggered: bytes already waiting are reported by the next
    /// `epoll_wait`). See `EventLoop.resumeReceiving`.
    public func resumeReceiving(_ id: ConnectionID) {
        guard let index = table.index(of: id), table.slots[index].state == .open, table.slots[index].receivePaused
        else { return }
        table.slots[index].receivePaused = false
        updateInterest(index)
    }

    /// shutdown(2) `SHUT_WR` now, synchronously; the armed receive goes on. See
    /// `EventLoop.shutdownWrite`.
    public func shutdownWrite(_ id: ConnectionID) -> Bool {
        guard let index = table.index(of: id), table.slots[index].state == .open, !table.slots[index].sending
        else { return false }
        return Glibc.shutdown(table.slots[index].fd, Int32(SHUT_WR)) == 0
    }

    /// Closes the socket at once (close(2) also removes it from the interest list), drops any
    /// pending completion, and delivers `closed(id)` later in this iteration. Nothing of the
    /// caller's send memory is touched after this call. Idempotent.
    public func close(_ id: ConnectionID) {
        guard let index = table.index(of: id), table.slots[index].state == .open else { return }
        _ = Glibc.close(table.slots[index].fd)
        table.slots[index].state = .closing
        table.slots[index].fd = -1
        table.slots[index].receiving = false
        table.slots[index].sending = false
        table.slots[index].waitingWritable = false
        table.slots[index].registeredEvents = 0
        table.slots[index].sendBase = nil
        pendingCloses.append(UInt32(index))
    }

    /// Runs iterations until `stop()`: epoll_wait, dispatch readiness, deliver the tick when due,
    /// deliver queued `sendCompleted` and `closed`, then `iterationWillEnd`. Sets the thread name.
    /// - Throws: `LoopError.system(call: "epoll_wait", …)` on an error other than EINTR.
    public func run() throws {
        guard let strongHandler = handler else {
            preconditionFailure("EpollLoop.run: set handler first")
        }
        LoopSupport.setThreadName(options.threadName)
        running = true
        defer { running = false }
        nextTick = LoopSupport.monotonicNanoseconds() &+ tickNanoseconds
        try withExtendedLifetime(strongHandler) {
            while running {
                let ready = epoll_wait(epollFD, events, eventCapacity, waitTimeout())
                if ready < 0 {
                    let code = errno
                    if code != EINTR { throw LoopError.system(call: "epoll_wait", errno: code) }
                }
                for i in 0..<Int(max(0, ready)) {
                    dispatch(token: events[i].data.u64, events: events[i].events)
                }
                let now = LoopSupport.monotonicNanoseconds()
                if now >= nextTick {
                    strongHandler.tick(now: now)
                    nextTick = nextTick &+ tickNanoseconds
                    if nextTick <= now { nextTick = now &+ tickNanoseconds }
                }
                resumeListeners(now: now)
                deliverCompletions()
                deliverCloses()
                strongHandler.iterationWillEnd()
            }
        }
    }

    /// Makes `run` return after the current iteration. Call on the loop thread.
    public func stop() { running = false }

    // MARK: Waiting

    /// Makes the next `epoll_wait` end by `deadline`; see `EventLoop.wakeBy(_:)`.
    public func wakeBy(_ deadline: UInt64) {
        wakeDeadline = wakeDeadline == 0 ? deadline : min(wakeDeadline, deadline)
    }

    private func waitTimeout() -> Int32 {
        let wake = wakeDeadline
        wakeDeadline = 0
        if !completions.isEmpty || !pendingCloses.isEmpty { return 0 }
        var deadline = nextTick
        if wake != 0 { deadline = min(deadline, wake) }
        for listener in listeners where listener.active && listener.resumeAt != 0 {
            deadline = min(deadline, listener.resumeAt)
        }
        let now = LoopSupport.monotonicNanoseconds()
        if deadline <= now { return 0 }
        let milliseconds = (deadline - now + 999_999) / 1_000_000
        return Int32(min(milliseconds, UInt64(Int32.max)))
    }

    private static func token(_ kind: Token, slot: UInt32, generation: UInt32) -> UInt64 {
        UInt64(kind.rawValue) << 56 | UInt64(generation & 0xFF_FFFF) << 32 | UInt64(slot)
    }

    // MARK: Dispatch

    private func dispatch(token: UInt64, events ready: UInt32) {
        let slot = UInt32(truncatingIfNeeded: token)
        switch Token(rawValue: UInt8(truncatingIfNeeded: token >> 56)) {
        case .connection:
            let generation = UInt32(truncatingIfNeeded: token >> 32) & 0xFF_FFFF
            guard let index = table.index(slot: slot, generationLowBits: generation, bits: 24),
                table.slots[index].state == .open
            else { return }
            let failed = ready & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0
            if table.slots[index].waitingWritable && (ready & EPOLLOUT.rawValue != 0 || failed) {
                trySend(index)
            }
            if table.slots[index].state == .open && table.slots[index].receiving && !table.slots[index].receivePaused
                && (ready & EPOLLIN.rawValue != 0 || failed)
            {
                receive(index)
            }
        case .listener:
            acceptConnections(Int(slot))
        case .wake:
            var value: UInt64 = 0
            _ = Glibc.read(waker.eventFD, &value, 8)
            handler!.woken()
        case .none:
            break
        }
    }

    private func acceptConnections(_ index: Int) {
        for _ in 0..<64 {
            guard listeners[index].active else { return }
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    pushd_accept4(listeners[index].fd, $0, &length)
                }
            }
            if fd < 0 {
                switch errno {
                case EINTR, ECONNABORTED, EPROTO, EPERM:
                    continue
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    let error = errno
                    backOff(index)
                    handler!.acceptPaused(listener: index, error: error)
                    return
                case EAGAIN:
                    return
                default:
                    backOff(index)  // EBADF/EINVAL: not a listening socket; do not spin on it
                    return
                }
            }
            SocketAddress.setNoDelay(fd)
            let peer = SocketAddress.peer(from: &storage) ?? PeerAddress(host: "0.0.0.0", port: 0)
            let id = table.allocate(fd: fd)
            let slotIndex = Int(id.slot)
            table.slots[slotIndex].receiving = true
            updateInterest(slotIndex)
            handler!.accepted(id, peer: peer, listener: index)
        }
    }

    private func backOff(_ index: Int) {
        if listeners[index].registered {
            _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, listeners[index].fd, nil)
            listeners[index].registered = false
        }
        listeners[index].resumeAt = LoopSupport.monotonicNanoseconds() &+ backoffNanoseconds
    }

    private func resumeListeners(now: UInt64) {
        for index in listeners.indices
        where listeners[index].active && listeners[index].resumeAt != 0 && listeners[index].resumeAt <= now {
            listeners[index].resumeAt = 0
            register(listener: index)
        }
    }

    private func register(listener index: Int) {
        guard listeners[index].active, !listeners[index].registered else { return }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = EpollLoop.token(.listener, slot: UInt32(index), generation: 0)
        if epoll_ctl(epollFD, EPOLL_CTL_ADD, listeners[index].fd, &event) == 0 {
            listeners[index].registered = true
        } else {
            listeners[index].active = false  // EBADF/EPERM: cannot accept on it at all
        }
    }

    /// One read (more while each fills the shared buffer) into the loop's shared buffer.
    private func receive(_ index: Int) {
        let id = table.id(at: index)
        for _ in 0..<4 {
            let count = Glibc.recv(table.slots[index].fd, readBuffer, readBufferSize, 0)
            if count > 0 {
                handler!.received(id, UnsafeRawBufferPointer(start: readBuffer, count: count))
                // The handler may have closed the connection; a short read means drained for now.
                guard count == readBufferSize, table.slots[index].state == .open, !table.slots[index].receivePaused
                else { return }
                continue
            }
            let code = count == 0 ? 0 : errno
            if code == EAGAIN || code == EINTR { return }
            table.slots[index].receiving = false
            updateInterest(index)
            handler!.receiveEnded(id, error: code)
            return
        }
    }

    /// Writes the outstanding send; queues its completion unless it must wait for EPOLLOUT.
    private func trySend(_ index: Int) {
        var written: Int
        repeat {
            written = Glibc.send(
                table.slots[index].fd, table.slots[index].sendBase, table.slots[index].sendLength,
                Int32(MSG_NOSIGNAL))
        } while written < 0 && errno == EINTR
        if written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
            if !table.slots[index].waitingWritable {
                table.slots[index].waitingWritable = true
                updateInterest(index)
            }
            return
        }
        let result = written >= 0 ? written : -Int(errno)
        if table.slots[index].waitingWritable {
            table.slots[index].waitingWritable = false
            updateInterest(index)
        }
        completions.append(
            Completion(slot: UInt32(index), generation: table.slots[index].generation, result: result))
    }

    /// Brings the epoll registration of an open connection in line with what it waits for.
    private func updateInterest(_ index: Int) {
        var wanted: UInt32 = 0
        if table.slots[index].receiving && !table.slots[index].receivePaused { wanted |= EPOLLIN.rawValue }
        if table.slots[index].waitingWritable { wanted |= EPOLLOUT.rawValue }
        let current = table.slots[index].registeredEvents
        guard wanted != current else { return }
        let fd = table.slots[index].fd
        if wanted == 0 {
            _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, nil)
        } else {
            var event = epoll_event()
            event.events = wanted
            event.data.u64 = EpollLoop.token(.connection, slot: UInt32(index), generation: table.slots[index].generation)
            _ = epoll_ctl(epollFD, current == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &event)
        }
        table.slots[index].registeredEvents = wanted
    }

    // MARK: Deferred delivery

    /// Delivers the completions queued so far; sends started by these callbacks complete in the
    /// next iteration (which then waits with a zero timeout).
    private func deliverCompletions() {
        guard !completions.isEmpty else { return }
        swap(&completions, &completionsSpare)
        for completion in completionsSpare {
            let index = Int(completion.slot)
            guard table.slots[index].generation == completion.generation, table.slots[index].state == .open,
                table.slots[index].sending
            else { continue }
            table.slots[index].sending = false
            table.slots[index].sendBase = nil
            handler!.sendCompleted(table.id(at: index), result: completion.result)
        }
        completionsSpare.removeAll(keepingCapacity: true)
    }

    private func deliverCloses() {
        while !pendingCloses.isEmpty {
            swap(&pendingCloses, &pendingClosesSpare)
            for slot in pendingClosesSpare {
                let index = Int(slot)
                guard table.slots[index].state == .closing else { continue }
                let id = table.id(at: index)
                table.release(slot)
                handler!.closed(id)
            }
            pendingClosesSpare.removeAll(keepingCapacity: true)
        }
    }
}
