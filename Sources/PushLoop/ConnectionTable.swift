// The connection table both backends share: slots indexed by `ConnectionID.slot`, reused through a
// free list with a bumped generation so a late completion for an earlier occupant is recognised.

/// Lifecycle of one slot.
enum SlotState: UInt8 {
    /// Not in use; on the free list.
    case free
    /// Accepted and not yet closed by the handler.
    case open
    /// The handler called `close`; waiting for outstanding kernel operations before `closed`.
    case closing
}

/// Per-connection state. Plain data with no references, so the table is one unmanaged buffer and a
/// lookup costs no ARC traffic. Fields a backend does not use stay at their defaults.
struct ConnectionSlot {
    var fd: Int32 = -1
    var generation: UInt32 = 0
    var state: SlotState = .free
    /// io_uring: a multishot receive is armed. epoll: EPOLLIN is wanted (receive not ended).
    var receiving = false
    /// io_uring: the receive stopped on ENOBUFS and is re-armed once buffers are back.
    var receiveRearmPending = false
    /// The handler paused receiving (`EventLoop.pauseReceiving`): io_uring does not re-arm the
    /// receive, epoll drops EPOLLIN from the interest set.
    var receivePaused = false
    /// A send is outstanding: from `send` until `sendCompleted` is delivered (or `close`).
    var sending = false
    /// epoll: the send hit EAGAIN with nothing written and waits for EPOLLOUT.
    var waitingWritable = false
    /// epoll: the event mask registered with epoll_ctl(2); 0 means not in the interest list.
    var registeredEvents: UInt32 = 0
    /// The bytes of the outstanding send, kept for a retry after EAGAIN.
    var sendBase: UnsafeRawPointer? = nil
    var sendLength: Int = 0
}

/// Slots of one loop. Grows by doubling; slot indices are stable, but pointers into the buffer are
/// valid only until the next `allocate` (which may grow it), so callers re-index after callbacks
/// that might accept — in practice only the loop's accept path allocates.
final class ConnectionTable {
    private(set) var slots: UnsafeMutablePointer<ConnectionSlot>
    private(set) var capacity: Int
    /// Slots `0..<used` have been handed out at least once.
    private var used: Int = 0
    private var freeList: [UInt32] = []
    /// Slots currently `.open` or `.closing`.
    private(set) var count: Int = 0

    init(initialCapacity: Int = 64) {
        capacity = max(1, initialCapacity)
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: ConnectionSlot(), count: capacity)
        freeList.reserveCapacity(capacity)
    }

    deinit {
        slots.deinitialize(count: capacity)
        slots.deallocate()
    }

    /// Takes a free slot for `fd` (state `.open`) and returns its id.
    func allocate(fd: Int32) -> ConnectionID {
        let slot: UInt32
        if let reused = freeList.popLast() {
            slot = reused
        } else {
            if used == capacity { grow() }
            slot = UInt32(used)
            used += 1
            slots[Int(slot)].generation = 1
        }
        let generation = slots[Int(slot)].generation
        slots[Int(slot)] = ConnectionSlot(fd: fd, generation: generation, state: .open)
        count += 1
        return ConnectionID(slot: slot, generation: generation)
    }

    /// Frees `slot`: bumps its generation (ids handed out for it become stale) and queues it for reuse.
    func release(_ slot: UInt32) {
        let index = Int(slot)
        let nextGeneration = slots[index].generation &+ 1
        slots[index] = ConnectionSlot(generation: nextGeneration == 0 ? 1 : nextGeneration)
        freeList.append(slot)
        count -= 1
    }

    /// The slot index of `id` when it names a live (`.open` or `.closing`) connection.
    @inline(__always)
    func index(of id: ConnectionID) -> Int? {
        let index = Int(id.slot)
        guard index < used, slots[index].generation == id.generation, slots[index].state != .free else {
            return nil
        }
        return index
    }

    /// The slot index for a kernel completion that carries `slot` and the low `bits` bits of the
    /// generation it was issued for; nil when that connection is gone.
    @inline(__always)
    func index(slot: UInt32, generationLowBits: UInt32, bits: UInt32) -> Int? {
        let index = Int(slot)
        let mask: UInt32 = bits >= 32 ? .max : (1 << bits) - 1
        guard index < used, slots[index].generation & mask == generationLowBits,
            slots[index].state != .free
        else { return nil }
        return index
    }

    /// The id of the connection now in `index`.
    @inline(__always)
    func id(at index: Int) -> ConnectionID {
        ConnectionID(slot: UInt32(index), generation: slots[index].generation)
    }

    /// Calls `body` with the index of every live slot (used at shutdown).
    func forEachLive(_ body: (Int) -> Void) {
        for index in 0..<used where slots[index].state != .free { body(index) }
    }

    private func grow() {
        let newCapacity = capacity * 2
        let grown = UnsafeMutablePointer<ConnectionSlot>.allocate(capacity: newCapacity)
        grown.moveInitialize(from: slots, count: capacity)
        (grown + capacity).initialize(repeating: ConnectionSlot(), count: newCapacity - capacity)
        slots.deallocate()
        slots = grown
        capacity = newCapacity
        freeList.reserveCapacity(newCapacity)
    }
}
