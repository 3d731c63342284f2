import CLibURing
import CPushShim
#if canImport(Glibc)
import Glibc
#endif

/// The io_uring backend (io_uring(7), liburing 2.3).
///
/// - One ring per loop, created with `IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
///   COOP_TASKRUN | SUBMIT_ALL` (always with `CLAMP` and `CQSIZE` = 2 × `ringEntries`); when the
///   kernel answers EINVAL it tries `SINGLE_ISSUER | DEFER_TASKRUN`, then `COOP_TASKRUN`, then no
///   flags (`setupFlags` tells which). A full SQ is submitted early; every other SQE of an
///   iteration waits for the iteration's one `io_uring_submit_and_wait`.
/// - Multishot accept on every listener (io_uring_prep_multishot_accept(3)), re-armed when a CQE
///   arrives without `IORING_CQE_F_MORE`; EMFILE/ENFILE/ENOBUFS/ENOMEM pause that listener for
///   `acceptBackoffMilliseconds` with a timeout SQE.
/// - Multishot receive (io_uring_prep_recv_multishot(3)) into one provided-buffer ring per loop
///   (io_uring_register_buf_ring(3)); each buffer goes back to the ring right after
///   `LoopHandler.received` returns. A receive that ends on ENOBUFS is re-armed at the end of the
///   completion batch, when the buffers are back.
/// - `send` prepares an `IORING_OP_SEND` (MSG_NOSIGNAL) at once; every SQE of an iteration goes to
///   the kernel in the iteration's one `io_uring_submit_and_wait` (or earlier if the SQ fills).
/// - Tick: a multishot timeout (kernel 6.4+) or a re-armed one-shot timeout. Wake: a read on the
///   waker's eventfd, re-armed after each completion.
///
/// Must be created, run and called on one thread (the ring is `SINGLE_ISSUER`).
public final class IOUringLoop: EventLoop {
    /// Always `.ioUring`.
    public var kind: LoopBackendKind { .ioUring }
    /// Receives every callback. Held unowned; `run` keeps it alive while running. Set before `run`
    /// and do not replace it while the loop runs.
    public unowned(unsafe) var handler: (any LoopHandler)?
    /// Wakes this loop from another thread (a write to an eventfd the loop keeps a read armed on).
    public let waker: LoopWaker
    /// The number of connections in the table, including ones closing but not yet `closed`.
    public var connectionCount: Int { table.count }
    /// The `IORING_SETUP_*` flags the ring was created with (for logs and tests).
    public let setupFlags: UInt32

    private let options: LoopOptions
    private let ring: UnsafeMutablePointer<io_uring>
    private let table = ConnectionTable()
    private let buffers: ProvidedBufferRing
    private let cqes: UnsafeMutablePointer<UnsafeMutablePointer<io_uring_cqe>?>
    private let cqeBatch: UInt32 = 256
    /// Stable memory the kernel reads at submit time (timespecs) or writes into later (eventfd read).
    private let tickSpec: UnsafeMutablePointer<__kernel_timespec>
    private let backoffSpec: UnsafeMutablePointer<__kernel_timespec>
    private let wakeValue: UnsafeMutablePointer<UInt64>
    /// `wakeBy(_:)`'s deadline for the next wait (0: none), and the relative timeout passed for it.
    private var wakeDeadline: UInt64 = 0
    private let waitSpec: UnsafeMutablePointer<__kernel_timespec>
    private var multishotTimeout = true
    private var listeners: [Listener] = []
    /// Receives stopped by ENOBUFS, re-armed after the completion batch.
    private var receiveRearms: [ConnectionID] = []
    /// Slots closed with no kernel operation outstanding: `closed` is delivered by the loop, never
    /// from inside `close`.
    private var pendingCloses: [UInt32] = []
    private var pendingClosesSpare: [UInt32] = []
    private var running = false
    private static let maximumSendLength = 1 << 30
    /// How often the rare paths ran (read by tests; cheap enough to keep in production).
    private(set) var counters = Counters()

    struct Counters {
        /// Receives that ended on ENOBUFS and were re-armed after buffers came back.
        var noBufferRearms = 0
        /// Multishot receives that ended without F_MORE while data kept coming (CQ overflow).
        var receiveRearms = 0
        /// Multishot accepts re-armed after ending without F_MORE.
        var acceptRearms = 0
        /// Times the SQ was full and was submitted early.
        var earlySubmits = 0
    }

    private struct Listener {
        var fd: Int32
        var active = true
        var acceptArmed = false
        var backingOff = false
    }

    /// Creates the ring, registers the provided-buffer ring, checks that multishot receive works,
    /// and arms the wake read and the tick timer (submitted by the first `run` iteration).
    ///
    /// Call on the thread that will call `run` (the ring is `SINGLE_ISSUER`).
    /// - Throws: `LoopError.ioUringUnavailable` when io_uring or a required feature (provided buffer
    ///   rings, Linux 5.19; multishot receive, Linux 6.0) is unavailable — ENOSYS, EPERM
    ///   (`kernel.io_uring_disabled`, seccomp), EINVAL; `LoopError.system` when eventfd(2) fails.
    public init(options: LoopOptions) throws {
        self.options = options
        let ring = UnsafeMutablePointer<io_uring>.allocate(capacity: 1)
        ring.initialize(to: io_uring())
        var flags: UInt32 = 0
        do {
            flags = try IOUringLoop.setUpRing(ring, entries: max(8, options.ringEntries))
        } catch {
            ring.deallocate()
            throw error
        }
        let buffers: ProvidedBufferRing
        do {
            buffers = try ProvidedBufferRing(
                ring: ring, group: 0, count: options.receiveBufferCount, size: options.receiveBufferSize)
            try IOUringLoop.probeMultishotReceive(ring, buffers)
        } catch {
            io_uring_queue_exit(ring)
            ring.deallocate()
            throw error
        }
        let wakeFD = eventfd(0, Int32(EFD_CLOEXEC))
        guard wakeFD >= 0 else {
            let code = errno
            io_uring_queue_exit(ring)
            buffers.release()
            ring.deallocate()
            throw LoopError.system(call: "eventfd", errno: code)
        }
        self.ring = ring
        self.setupFlags = flags
        self.buffers = buffers
        self.waker = LoopWaker(owningEventFD: wakeFD)
        self.cqes = .allocate(capacity: Int(cqeBatch))
        self.cqes.initialize(repeating: nil, count: Int(cqeBatch))
        let tick = max(1, options.tickMilliseconds)
        self.tickSpec = .allocate(capacity: 1)
        self.tickSpec.initialize(to: __kernel_timespec(tv_sec: Int64(tick / 1000), tv_nsec: Int64(tick % 1000) * 1_000_000))
        let backoff = max(1, options.acceptBackoffMilliseconds)
        self.backoffSpec = .allocate(capacity: 1)
        self.backoffSpec.initialize(to: __kernel_timespec(tv_sec: Int64(backoff / 1000), tv_nsec: Int64(backoff % 1000) * 1_000_000))
        self.wakeValue = .allocate(capacity: 1)
        self.wakeValue.initialize(to: 0)
        self.waitSpec = .allocate(capacity: 1)
        self.waitSpec.initialize(to: __kernel_timespec(tv_sec: 0, tv_nsec: 0))
        receiveRearms.reserveCapacity(64)
        pendingCloses.reserveCapacity(64)
        pendingClosesSpare.reserveCapacity(64)
        armWakeRead()
        armTick()
    }

    deinit {
        // Exiting the ring cancels every operation, so the kernel stops touching buffers and send
        // memory before they are freed; then the sockets still in the table are closed.
        io_uring_queue_exit(ring)
        table.forEachLive { index in _ = Glibc.close(table.slots[index].fd) }
        buffers.release()
        ring.deallocate()
        cqes.deallocate()
        tickSpec.deallocate()
        backoffSpec.deallocate()
        wakeValue.deallocate()
        waitSpec.deallocate()
    }

    // MARK: EventLoop

    /// Starts a multishot accept on `fd` (submitted with the next batch). See `EventLoop.addListener`.
    public func addListener(fd: Int32) -> Int {
        listeners.append(Listener(fd: fd))
        let index = listeners.count - 1
        armAccept(index)
        return index
    }

    /// Cancels every listener's accept (and accept back-off) and submits the cancellations at once,
    /// so the ring drops its reference to the listening sockets within this call or the next
    /// iteration. A connection accepted before the cancellation took effect is closed at once.
    public func stopAccepting() {
        for index in listeners.indices where listeners[index].active {
            listeners[index].active = false
            if listeners[index].acceptArmed {
                let sqe = nextSQE()
                io_uring_prep_cancel64(sqe, UserData.make(.accept, slot: UInt32(index), generation: 0), 0)
                io_uring_sqe_set_data64(sqe, UserData.make(.ignore, slot: 0, generation: 0))
            }
            if listeners[index].backingOff {
                let sqe = nextSQE()
                io_uring_prep_timeout_remove(sqe, UserData.make(.acceptBackoff, slot: UInt32(index), generation: 0), 0)
                io_uring_sqe_set_data64(sqe, UserData.make(.ignore, slot: 0, generation: 0))
            }
        }
        _ = io_uring_submit(ring)
    }

    /// Prepares an `IORING_OP_SEND` of `bytes` with MSG_NOSIGNAL; it is submitted with the
    /// iteration's batch. A send that the kernel answers with EAGAIN is retried after the socket
    /// polls writable (`IORING_RECVSEND_POLL_FIRST`) and is not reported. A result smaller than
    /// `bytes.count` is a short send: `sendCompleted` reports the count and the caller sends the rest
    /// (one send writes at most 1 GiB).
    /// Ignored when `id` is closed or closing. Precondition: no send outstanding on `id`.
    public func send(_ id: ConnectionID, _ bytes: UnsafeRawBufferPointer) {
        guard let index = table.index(of: id), table.slots[index].state == .open else { return }
        precondition(!table.slots[index].sending, "EventLoop.send: a send is already outstanding on \(id)")
        table.slots[index].sending = true
        table.slots[index].sendBase = bytes.baseAddress
        table.slots[index].sendLength = bytes.count
        prepareSend(index, pollFirst: false)
    }

    /// Cancels `id`'s multishot receive and keeps it from being re-armed. Receive CQEs already
    /// posted are still delivered. See `EventLoop.pauseReceiving`.
    public func pauseReceiving(_ id: ConnectionID) {
        guard let index = table.index(of: id), table.slots[index].state == .open, !table.slots[index].receivePaused
        else { return }
        table.slots[index].receivePaused = true
        table.slots[index].receiveRearmPending = false
        guard table.slots[index].receiving else { return }
        let sqe = nextSQE()
        io_uring_prep_cancel64(
            sqe, UserData.make(.receive, slot: UInt32(index), generation: table.slots[index].generation), 0)
        io_uring_sqe_set_flags(sqe, UInt32(pushd_iosqe_cqe_skip_success()))
        io_uring_sqe_set_data64(sqe, UserData.make(.ignore, slot: 0, generation: 0))
    }

    /// Re-arms `id`'s receive unless it is still armed (a cancellation not yet completed re-arms
    /// by itself). See `EventLoop.resumeReceiving`.
    public func resumeReceiving(_ id: ConnectionID) {
        guard let index = table.index(of: id), table.slots[index].state == .open, table.slots[index].receivePaused
        else { return }
        table.slots[index].receivePaused = false
        if !table.slots[index].receiving { armReceive(index) }
    }

    /// shutdown(2) `SHUT_WR` now, synchronously; the armed receive goes on. See
    /// `EventLoop.shutdownWrite`.
    public func shutdownWrite(_ id: ConnectionID) -> Bool {
        guard let index = table.index(of: id), table.slots[index].state == .open, !table.slots[index].sending
        else { return false }
        return Glibc.shutdown(table.slots[index].fd, Int32(SHUT_WR)) == 0
    }

    /// Marks `id` closing and cancels its receive and send (`io_uring_prep_cancel_fd` with
    /// `IORING_ASYNC_CANCEL_ALL`). When their completions are in, the socket is closed (close(2))
    /// and `closed(id)` is called; with nothing outstanding this happens later in the same
    /// iteration. No other callback arrives for `id` after this call. Idempotent.
    public func close(_ id: ConnectionID) {
        guard let index = table.index(of: id), table.slots[index].state == .open else { return }
        table.slots[index].state = .closing
        table.slots[index].receiveRearmPending = false
        if table.slots[index].receiving || table.slots[index].sending {
            let sqe = nextSQE()
            io_uring_prep_cancel_fd(sqe, table.slots[index].fd, UInt32(IORING_ASYNC_CANCEL_ALL))
            io_uring_sqe_set_flags(sqe, UInt32(pushd_iosqe_cqe_skip_success()))
            io_uring_sqe_set_data64(sqe, UserData.make(.ignore, slot: 0, generation: 0))
        } else {
            pendingCloses.append(UInt32(index))
        }
    }

    /// Runs iterations until `stop()`: submit everything prepared and wait for at least one
    /// completion (one `io_uring_submit_and_wait`), dispatch every completion, re-arm receives,
    /// deliver `closed`, then call `iterationWillEnd`. Sets the thread name to
    /// `LoopOptions.threadName`.
    /// - Throws: `LoopError.system(call: "io_uring_submit_and_wait", …)` on an unexpected error —
    ///   EEXIST when `run` is called on a thread other than the one that created the loop.
    public func run() throws {
        guard let strongHandler = handler else {
            preconditionFailure("IOUringLoop.run: set handler first")
        }
        LoopSupport.setThreadName(options.threadName)
        running = true
        defer { running = false }
        try withExtendedLifetime(strongHandler) {
            while running {
                let waitFor: UInt32 = pendingCloses.isEmpty && receiveRearms.isEmpty ? 1 : 0
                let result = submitAndWait(waitFor)
                if result < 0 {
                    switch -result {
                    case EINTR, EAGAIN, EBUSY, ETIME: break
                    default: throw LoopError.system(call: "io_uring_submit_and_wait", errno: -result)
                    }
                }
                reapCompletions()
                finishDeferredWork()
                strongHandler.iterationWillEnd()
            }
        }
    }

    /// Makes `run` return after the current iteration. Call on the loop thread.
    public func stop() { running = false }

    /// Makes the next wait end by `deadline`; see `EventLoop.wakeBy(_:)`.
    public func wakeBy(_ deadline: UInt64) {
        wakeDeadline = wakeDeadline == 0 ? deadline : min(wakeDeadline, deadline)
    }

    /// The iteration's one `io_uring_enter`: submits every prepared SQE and waits for `waitFor`
    /// completions — bounded by the `wakeBy` deadline when one is set (IORING_ENTER_EXT_ARG
    /// timeout, kernel 5.11+; the result is then -ETIME when it expires).
    private func submitAndWait(_ waitFor: UInt32) -> Int32 {
        let deadline = wakeDeadline
        wakeDeadline = 0
        guard deadline != 0, waitFor > 0 else { return io_uring_submit_and_wait(ring, waitFor) }
        let now = LoopSupport.monotonicNanoseconds()
        let wait = deadline > now ? deadline - now : 0
        guard wait > 0 else { return io_uring_submit_and_wait(ring, 0) }
        waitSpec.pointee = __kernel_timespec(tv_sec: Int64(wait / 1_000_000_000), tv_nsec: Int64(wait % 1_000_000_000))
        var cqe: UnsafeMutablePointer<io_uring_cqe>?
        return io_uring_submit_and_wait_timeout(ring, &cqe, waitFor, waitSpec, nil)
    }

    // MARK: Setup

    /// Creates the ring with the best flags the kernel accepts; returns them.
    private static func setUpRing(_ ring: UnsafeMutablePointer<io_uring>, entries: UInt32) throws -> UInt32 {
        let base = UInt32(IORING_SETUP_CQSIZE) | UInt32(IORING_SETUP_CLAMP)
        let preferred = UInt32(IORING_SETUP_SINGLE_ISSUER) | UInt32(IORING_SETUP_DEFER_TASKRUN)
            | UInt32(IORING_SETUP_COOP_TASKRUN) | UInt32(IORING_SETUP_SUBMIT_ALL)
        let attempts: [UInt32] = [
            base | preferred,
            base | UInt32(IORING_SETUP_SINGLE_ISSUER) | UInt32(IORING_SETUP_DEFER_TASKRUN),
            base | UInt32(IORING_SETUP_COOP_TASKRUN),
            base,
        ]
        var lastError: Int32 = 0
        for flags in attempts {
            var params = io_uring_params()
            params.flags = flags
            params.cq_entries = entries &* 2
            let result = io_uring_queue_init_params(entries, ring, &params)
            if result == 0 {
                let needed = UInt32(IORING_FEAT_NODROP) | UInt32(IORING_FEAT_FAST_POLL)
                guard params.features & needed == needed else {
                    io_uring_queue_exit(ring)
                    throw LoopError.ioUringUnavailable(
                        errno: EINVAL, reason: "kernel lacks IORING_FEAT_NODROP/FAST_POLL")
                }
                return flags
            }
            lastError = -result
            // Only EINVAL means "these flags are unknown here"; ENOSYS, EPERM, ENOMEM are final.
            if lastError != EINVAL { break }
        }
        let reason: String
        switch lastError {
        case ENOSYS: reason = "io_uring_setup(2) not implemented by this kernel"
        case EPERM: reason = "io_uring_setup(2) not permitted (kernel.io_uring_disabled or seccomp)"
        case ENOMEM: reason = "io_uring_setup(2) out of memory (RLIMIT_MEMLOCK?)"
        default: reason = "io_uring_queue_init_params failed"
        }
        throw LoopError.ioUringUnavailable(errno: lastError, reason: reason)
    }

    /// Multishot receive with provided buffers arrived in Linux 6.0; older kernels answer -EINVAL.
    /// Tries one on a socketpair(2) before the loop commits to io_uring.
    private static func probeMultishotReceive(
        _ ring: UnsafeMutablePointer<io_uring>, _ buffers: ProvidedBufferRing
    ) throws {
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, pushd_sock_stream() | pushd_sock_cloexec(), 0, &pair) == 0 else {
            throw LoopError.system(call: "socketpair", errno: errno)
        }
        defer { _ = Glibc.close(pair[0]) }
        var byte: UInt8 = 1
        _ = Glibc.write(pair[1], &byte, 1)
        _ = Glibc.close(pair[1])  // the receive sees the byte, then end of file, and ends
        guard let sqe = io_uring_get_sqe(ring) else {
            throw LoopError.ioUringUnavailable(errno: EBUSY, reason: "no SQE for the receive probe")
        }
        io_uring_prep_recv_multishot(sqe, pair[0], nil, 0, 0)
        io_uring_sqe_set_flags(sqe, UInt32(pushd_iosqe_buffer_select()))
        pushd_sqe_set_buf_group(sqe, buffers.group)
        io_uring_sqe_set_data64(sqe, 1)
        var firstResult: Int32?
        var finished = false
        var rounds = 0
        while !finished && rounds < 8 {
            rounds += 1
            let submitted = io_uring_submit_and_wait(ring, 1)
            if submitted < 0 && submitted != -EINTR {
                throw LoopError.ioUringUnavailable(errno: -submitted, reason: "io_uring_submit_and_wait failed")
            }
            var cqe: UnsafeMutablePointer<io_uring_cqe>? = nil
            while io_uring_peek_batch_cqe(ring, &cqe, 1) == 1, let entry = cqe {
                let result = entry.pointee.res
                let flags = entry.pointee.flags
                io_uring_cq_advance(ring, 1)
                if firstResult == nil { firstResult = result }
                if flags & UInt32(IORING_CQE_F_BUFFER) != 0 {
                    buffers.recycle(UInt16(truncatingIfNeeded: flags >> UInt32(IORING_CQE_BUFFER_SHIFT)))
                }
                if flags & UInt32(IORING_CQE_F_MORE) == 0 { finished = true }
            }
        }
        guard let first = firstResult, first == 1 else {
            let code = firstResult.map { -$0 } ?? ETIMEDOUT
            throw LoopError.ioUringUnavailable(
                errno: code, reason: "multishot receive with provided buffers unsupported (needs Linux 6.0)")
        }
    }

    // MARK: Submission

    @inline(__always)
    private func nextSQE() -> UnsafeMutablePointer<io_uring_sqe> {
        if let sqe = io_uring_get_sqe(ring) { return sqe }
        return nextSQEAfterSubmitting()
    }

    /// The SQ is full: hand what is queued to the kernel and continue.
    private func nextSQEAfterSubmitting() -> UnsafeMutablePointer<io_uring_sqe> {
        counters.earlySubmits += 1
        for _ in 0..<1000 {
            let result = io_uring_submit(ring)
            if let sqe = io_uring_get_sqe(ring) { return sqe }
            if result < 0, result != -EINTR, result != -EAGAIN, result != -EBUSY {
                fatalError("io_uring_submit failed with errno \(-result) while the SQ was full")
            }
            // EBUSY: completions are backed up; flush them so the kernel can take more work.
            _ = io_uring_get_events(ring)
        }
        fatalError("io_uring SQ stayed full")
    }

    private func armAccept(_ index: Int) {
        guard listeners[index].active, !listeners[index].acceptArmed else { return }
        listeners[index].acceptArmed = true
        let sqe = nextSQE()
        io_uring_prep_multishot_accept(
            sqe, listeners[index].fd, nil, nil, pushd_sock_nonblock() | pushd_sock_cloexec())
        io_uring_sqe_set_data64(sqe, UserData.make(.accept, slot: UInt32(index), generation: 0))
    }

    private func armAcceptBackoff(_ index: Int) {
        listeners[index].backingOff = true
        let sqe = nextSQE()
        io_uring_prep_timeout(sqe, backoffSpec, 0, 0)
        io_uring_sqe_set_data64(sqe, UserData.make(.acceptBackoff, slot: UInt32(index), generation: 0))
    }

    private func armReceive(_ index: Int) {
        table.slots[index].receiving = true
        let sqe = nextSQE()
        io_uring_prep_recv_multishot(sqe, table.slots[index].fd, nil, 0, 0)
        io_uring_sqe_set_flags(sqe, UInt32(pushd_iosqe_buffer_select()))
        pushd_sqe_set_buf_group(sqe, buffers.group)
        io_uring_sqe_set_data64(
            sqe, UserData.make(.receive, slot: UInt32(index), generation: table.slots[index].generation))
    }

    private func prepareSend(_ index: Int, pollFirst: Bool) {
        let sqe = nextSQE()
        // The SQE length is 32 bits and the kernel writes at most MAX_RW_COUNT per call: cap it, and
        // a larger buffer simply completes as a short send.
        let length = min(table.slots[index].sendLength, IOUringLoop.maximumSendLength)
        io_uring_prep_send(sqe, table.slots[index].fd, table.slots[index].sendBase, length, Int32(MSG_NOSIGNAL))
        if pollFirst { pushd_sqe_or_ioprio(sqe, UInt16(IORING_RECVSEND_POLL_FIRST)) }
        io_uring_sqe_set_data64(
            sqe, UserData.make(.send, slot: UInt32(index), generation: table.slots[index].generation))
    }

    private func armWakeRead() {
        let sqe = nextSQE()
        io_uring_prep_read(sqe, waker.eventFD, wakeValue, 8, 0)
        io_uring_sqe_set_data64(sqe, UserData.make(.wake, slot: 0, generation: 0))
    }

    private func armTick() {
        let sqe = nextSQE()
        io_uring_prep_timeout(sqe, tickSpec, 0, multishotTimeout ? pushd_ioring_timeout_multishot() : 0)
        io_uring_sqe_set_data64(sqe, UserData.make(.tick, slot: 0, generation: 0))
    }

    // MARK: Completion

    private func reapCompletions() {
        // Bounded so a flood of completions cannot starve iterationWillEnd and the next submit.
        for _ in 0..<64 {
            let count = io_uring_peek_batch_cqe(ring, cqes, cqeBatch)
            if count == 0 { return }
            for i in 0..<Int(count) {
                let cqe = cqes[i].unsafelyUnwrapped
                dispatch(io_uring_cqe_get_data64(cqe), cqe.pointee.res, cqe.pointee.flags)
            }
            io_uring_cq_advance(ring, count)
        }
    }

    private func dispatch(_ userData: UInt64, _ result: Int32, _ flags: UInt32) {
        let slot = UserData.slot(userData)
        switch UserData.op(userData) {
        case .receive:
            onReceive(slot: slot, generation: UserData.generation(userData), result, flags)
        case .send:
            onSend(slot: slot, generation: UserData.generation(userData), result)
        case .accept:
            onAccept(Int(slot), result, flags)
        case .acceptBackoff:
            let index = Int(slot)
            listeners[index].backingOff = false
            armAccept(index)
        case .wake:
            if result >= 0 { handler!.woken() }
            if result >= 0 || result == -EINTR || result == -EAGAIN || result == -ECANCELED { armWakeRead() }
        case .tick:
            if result == -ETIME || result == 0 {
                handler!.tick(now: LoopSupport.monotonicNanoseconds())
            } else if result == -EINVAL && multishotTimeout {
                multishotTimeout = false  // kernel before 6.4: re-arm one-shot timeouts instead
            }
            if flags & UInt32(IORING_CQE_F_MORE) == 0 { armTick() }
        case .ignore, .none:
            break
        }
    }

    private func onAccept(_ index: Int, _ result: Int32, _ flags: UInt32) {
        guard index < listeners.count else {
            if result >= 0 { _ = Glibc.close(result) }
            return
        }
        let more = flags & UInt32(IORING_CQE_F_MORE) != 0
        if !more { listeners[index].acceptArmed = false }
        if result >= 0 {
            if listeners[index].active {
                accepted(fd: result, listener: index)
            } else {
                _ = Glibc.close(result)
            }
            if !more {
                counters.acceptRearms += 1
                armAccept(index)
            }
            return
        }
        switch -result {
        case EMFILE, ENFILE, ENOBUFS, ENOMEM:
            if !more, listeners[index].active {
                armAcceptBackoff(index)
                handler!.acceptPaused(listener: index, error: -result)
            }
        case ECANCELED:
            // stopAccepting cleared `active`; any other cancellation re-arms.
            if !more, listeners[index].active { armAccept(index) }
        case EINVAL, EBADF, ENOTSOCK, EOPNOTSUPP:
            // Not a listening socket (closed under us, or never listened): re-arming would spin.
            if !more { listeners[index].active = false }
        default:
            // ECONNABORTED, EINTR, EPERM (firewall), …: the next connection may be fine.
            if !more { armAccept(index) }
        }
    }

    private func accepted(fd: Int32, listener: Int) {
        SocketAddress.setNoDelay(fd)
        let peer = SocketAddress.peer(of: fd)
        let id = table.allocate(fd: fd)
        handler!.accepted(id, peer: peer, listener: listener)
        if let index = table.index(of: id), table.slots[index].state == .open {
            armReceive(index)
        }
    }

    private func onReceive(slot: UInt32, generation: UInt32, _ result: Int32, _ flags: UInt32) {
        let hasBuffer = flags & UInt32(IORING_CQE_F_BUFFER) != 0
        let bufferID = UInt16(truncatingIfNeeded: flags >> UInt32(IORING_CQE_BUFFER_SHIFT))
        guard let index = table.index(slot: slot, generationLowBits: generation, bits: UserData.generationBits)
        else {
            if hasBuffer { buffers.recycle(bufferID) }
            return
        }
        let more = flags & UInt32(IORING_CQE_F_MORE) != 0
        if !more { table.slots[index].receiving = false }
        let id = table.id(at: index)
        if hasBuffer {
            if result > 0 && table.slots[index].state == .open {
                handler!.received(id, UnsafeRawBufferPointer(start: buffers.address(of: bufferID), count: Int(result)))
            }
            buffers.recycle(bufferID)
        }
        if table.slots[index].state == .closing {
            finishCloseIfIdle(index)
            return
        }
        if more { return }
        if table.slots[index].receivePaused && (result > 0 || result == -ECANCELED || result == -ENOBUFS) {
            return  // resumeReceiving re-arms
        }
        if result > 0 {
            counters.receiveRearms += 1
            armReceive(index)  // multishot ended (CQ overflow, …) while data keeps coming
            return
        }
        if result == 0 {
            handler!.receiveEnded(id, error: 0)
            return
        }
        switch -result {
        case ENOBUFS:
            table.slots[index].receiveRearmPending = true
            counters.noBufferRearms += 1
            receiveRearms.append(id)
        case EAGAIN, EINTR, ECANCELED:
            armReceive(index)
        default:
            handler!.receiveEnded(id, error: -result)
        }
    }

    private func onSend(slot: UInt32, generation: UInt32, _ result: Int32) {
        guard let index = table.index(slot: slot, generationLowBits: generation, bits: UserData.generationBits)
        else { return }
        if table.slots[index].state == .closing {
            table.slots[index].sending = false
            finishCloseIfIdle(index)
            return
        }
        if result == -EAGAIN || result == -EINTR {
            prepareSend(index, pollFirst: result == -EAGAIN)
            return
        }
        table.slots[index].sending = false
        table.slots[index].sendBase = nil
        handler!.sendCompleted(table.id(at: index), result: Int(result))
    }

    private func finishCloseIfIdle(_ index: Int) {
        let slot = table.slots[index]
        guard slot.state == .closing, !slot.receiving, !slot.sending else { return }
        closeNow(index)
    }

    private func closeNow(_ index: Int) {
        let id = table.id(at: index)
        _ = Glibc.close(table.slots[index].fd)
        table.release(UInt32(index))
        handler!.closed(id)
    }

    private func finishDeferredWork() {
        if !receiveRearms.isEmpty {
            for id in receiveRearms {
                guard let index = table.index(of: id), table.slots[index].state == .open,
                    table.slots[index].receiveRearmPending, !table.slots[index].receivePaused
                else { continue }
                table.slots[index].receiveRearmPending = false
                armReceive(index)
            }
            receiveRearms.removeAll(keepingCapacity: true)
        }
        // `closed` callbacks may close more connections; those are delivered in this loop too.
        while !pendingCloses.isEmpty {
            swap(&pendingCloses, &pendingClosesSpare)
            for slot in pendingClosesSpare {
                let index = Int(slot)
                if table.slots[index].state == .closing { closeNow(index) }
            }
            pendingClosesSpare.removeAll(keepingCapacity: true)
        }
    }
}

/// io_uring user data: operation (8 bits) | generation low 24 bits | slot (32 bits). The slot is
/// a connection slot or a listener index; the generation tells a stale completion from a live one.
enum UserData {
    enum Op: UInt8 {
        case ignore = 0, accept, acceptBackoff, receive, send, wake, tick
    }
    static let generationBits: UInt32 = 24

    @inline(__always)
    static func make(_ op: Op, slot: UInt32, generation: UInt32) -> UInt64 {
        UInt64(op.rawValue) << 56 | UInt64(generation & 0xFF_FFFF) << 32 | UInt64(slot)
    }
    @inline(__always)
    static func op(_ data: UInt64) -> Op? { Op(rawValue: UInt8(truncatingIfNeeded: data >> 56)) }
    @inline(__always)
    static func slot(_ data: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: data) }
    @inline(__always)
    static func generation(_ data: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: data >> 32) & 0xFF_FFFF }
}

/// One provided-buffer ring (io_uring_register_buf_ring(3)): `count` buffers of `size` bytes that
/// the kernel picks from for `IOSQE_BUFFER_SELECT` receives of buffer group `group`.
/// liburing 2.3 lacks io_uring_setup_buf_ring, so the ring memory is mmap(2)ed and registered here.
final class ProvidedBufferRing {
    let group: UInt16
    private let ringMemory: UnsafeMutableRawPointer
    private let ringBytes: Int
    private let bufferRing: UnsafeMutablePointer<io_uring_buf_ring>
    private let storage: UnsafeMutableRawPointer
    private let size: Int
    private let mask: Int32
    let count: Int
    private var released = false

    /// - Parameters: `count` is rounded up to a power of two (at most 32768); `size` is clamped to
    ///   1…`UInt32.max`. Receive memory is `count × size` bytes.
    /// - Throws: `LoopError.ioUringUnavailable` when registration fails (Linux before 5.19: EINVAL).
    init(ring: UnsafeMutablePointer<io_uring>, group: UInt16, count requested: Int, size: Int) throws {
        var entries = 1
        while entries < min(max(1, requested), 32768) { entries <<= 1 }
        self.count = entries
        self.size = min(max(1, size), Int(UInt32.max))
        self.group = group
        self.mask = io_uring_buf_ring_mask(UInt32(entries))
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        ringBytes = (entries * pushd_io_uring_buf_size() + page - 1) / page * page
        guard let memory = mmap(nil, ringBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
            memory != MAP_FAILED
        else {
            throw LoopError.ioUringUnavailable(errno: errno, reason: "mmap of the provided-buffer ring failed")
        }
        ringMemory = memory
        bufferRing = memory.bindMemory(to: io_uring_buf_ring.self, capacity: 1)
        var registration = io_uring_buf_reg()
        registration.ring_addr = UInt64(UInt(bitPattern: memory))
        registration.ring_entries = UInt32(entries)
        registration.bgid = group
        let result = io_uring_register_buf_ring(ring, &registration, 0)
        guard result == 0 else {
            munmap(memory, ringBytes)
            throw LoopError.ioUringUnavailable(
                errno: -result, reason: "provided buffer rings unsupported (io_uring_register_buf_ring, Linux 5.19)")
        }
        storage = .allocate(byteCount: entries * self.size, alignment: 64)
        io_uring_buf_ring_init(bufferRing)
        for bid in 0..<entries {
            io_uring_buf_ring_add(
                bufferRing, storage + bid * self.size, UInt32(self.size), UInt16(bid), mask, Int32(bid))
        }
        io_uring_buf_ring_advance(bufferRing, Int32(entries))
    }

    /// The start of buffer `bid`.
    @inline(__always)
    func address(of bid: UInt16) -> UnsafeRawPointer {
        UnsafeRawPointer(storage + Int(bid) * size)
    }

    /// Gives buffer `bid` back to the kernel.
    @inline(__always)
    func recycle(_ bid: UInt16) {
        io_uring_buf_ring_add(bufferRing, storage + Int(bid) * size, UInt32(size), bid, mask, 0)
        io_uring_buf_ring_advance(bufferRing, 1)
    }

    /// Frees the memory; call after the ring is gone (io_uring_queue_exit). Idempotent.
    func release() {
        guard !released else { return }
        released = true
        munmap(ringMemory, ringBytes)
        storage.deallocate()
    }

    deinit { release() }
}
