import DequeModule

/// A fixed block of a stream log's bytes. Immutable below `used`; shared by reference, so a send
/// in flight keeps the memory it reads alive even after the log has dropped the chunk.
public final class LogChunk {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    /// Bytes written so far.
    fileprivate(set) var used = 0
    /// Absolute log offset of the chunk's first byte.
    let startOffset: UInt64
    /// Absolute index (within the log) of the chunk's first event.
    let firstEvent: UInt64
    fileprivate(set) var eventCount = 0

    init(capacity: Int, startOffset: UInt64, firstEvent: UInt64) {
        self.base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
        self.capacity = capacity
        self.startOffset = startOffset
        self.firstEvent = firstEvent
    }

    deinit { base.deallocate() }

    var endOffset: UInt64 { startOffset + UInt64(used) }
}

/// Which subscribers share a log: the same topics with the same wire format.
public struct StreamKey: Hashable, Sendable {
    /// Sorted, de-duplicated topic names.
    public let topics: [String]
    /// The wire format of the bytes in the log.
    public let format: StreamFormat

    public init(topics: [String], format: StreamFormat) {
        self.topics = Array(Set(topics)).sorted()
        self.format = format
    }
}

/// How events are framed on a stream.
public enum StreamFormat: Hashable, Sendable {
    /// Server-Sent Events (`EncodedEvent.sse`).
    case sse
    /// WebSocket frames (`EncodedEvent.webSocketFrame(_:)`, RFC 6455 §5.6).
    case webSocket(WebSocketFrameFormat)
}

/// One loop's append-only byte log for one `StreamKey`: every event for the key's topics, in id
/// order, already encoded, copied once per loop — not once per subscriber.
///
/// Each subscriber is a cursor (`OutboundQueue.position`) into this log. A send hands the kernel
/// one contiguous range from the cursor to the newest byte (or the end of a chunk), so everything
/// that arrived while the subscriber's previous send was in flight goes out in one send
/// (coalescing). Events never straddle chunks, so every range ends on an event boundary.
/// Chunks behind the slowest cursor are dropped (`maintain`). Single-threaded (the loop's thread).
public final class StreamLog {
    public let key: StreamKey
    private var chunks: Deque<LogChunk> = []
    /// Absolute offset one past the newest byte.
    public private(set) var head: UInt64 = 0
    /// Absolute index one past the newest event.
    public private(set) var headEvent: UInt64 = 0
    /// Subscribers attached to this log.
    public internal(set) var subscribers: [OutboundQueue] = []
    /// Set when events were appended since the last send pass.
    var dirty = false
    /// When the oldest event not yet released to the subscribers was first held back by write
    /// coalescing (CLOCK_MONOTONIC ns; 0: nothing held). See `CoalescePolicy`.
    var heldSince: UInt64 = 0
    /// How far subscribers may be handed bytes: `head`, except while write coalescing holds the
    /// newest events back (then the `passHead` of the pass that started holding).
    var releasedHead: UInt64 = 0
    var releasedHeadEvent: UInt64 = 0
    /// `head` / `headEvent` after the last send pass that released the log.
    var passHead: UInt64 = 0
    var passHeadEvent: UInt64 = 0
    /// The id of the newest event appended (nil before the first).
    public internal(set) var lastEventID: EventID?
    private let chunkSize: Int
    private var scanAtOffset: UInt64 = 0
    private var scanAtEvent: UInt64 = 0

    /// `chunkSize` is the default chunk capacity in bytes (an event larger than it gets a chunk of
    /// its own size).
    public init(key: StreamKey, chunkSize: Int = 16 * 1024) {
        self.key = key
        self.chunkSize = chunkSize
    }

    /// Bytes currently held by the log's chunks.
    public var retainedBytes: Int { chunks.reduce(0) { $0 + $1.capacity } }
    /// Number of chunks held.
    public var chunkCount: Int { chunks.count }
    /// Absolute offset of the oldest retained byte (== head when empty).
    public var tail: UInt64 { chunks.first?.startOffset ?? head }

    /// Appends one encoded event.
    public func append(_ bytes: UnsafeRawBufferPointer) {
        let n = bytes.count
        if chunks.isEmpty || chunks.last!.capacity - chunks.last!.used < n {
            chunks.append(LogChunk(capacity: max(chunkSize, n), startOffset: head, firstEvent: headEvent))
        }
        let chunk = chunks.last!
        if n > 0 { (chunk.base + chunk.used).copyMemory(from: bytes.baseAddress!, byteCount: n) }
        chunk.used += n
        chunk.eventCount += 1
        head += UInt64(n)
        headEvent += 1
        dirty = true
        if heldSince == 0 {
            releasedHead = head
            releasedHeadEvent = headEvent
        }
    }

    /// The contiguous range starting at `offset` (which must be >= `tail` and < `head`): its chunk,
    /// its bytes, and the absolute offset and event index where it ends. With `released`, the
    /// range stops at `releasedHead` (bytes held back by write coalescing are not handed out).
    func range(from offset: UInt64, released: Bool = false) -> (chunk: LogChunk, bytes: UnsafeRawBufferPointer, endOffset: UInt64, endEvent: UInt64)? {
        let limit = released ? releasedHead : head
        guard offset < limit, let firstChunk = chunks.first, offset >= firstChunk.startOffset else { return nil }
        // Binary search: the last chunk whose start is <= offset.
        var lo = 0
        var hi = chunks.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if chunks[mid].startOffset <= offset { lo = mid } else { hi = mid - 1 }
        }
        let chunk = chunks[lo]
        let start = Int(offset - chunk.startOffset)
        if limit < chunk.endOffset {
            // Ends inside this chunk, at the release mark (always an event boundary).
            return (chunk, UnsafeRawBufferPointer(start: chunk.base + start, count: Int(limit - offset)), limit, releasedHeadEvent)
        }
        let end = chunk.endOffset
        let endEvent = lo + 1 < chunks.count ? chunks[lo + 1].firstEvent : headEvent
        return (chunk, UnsafeRawBufferPointer(start: chunk.base + start, count: chunk.used - start), end, endEvent)
    }

    /// Whether `maintain` is due: enough was appended since the last pass that a subscriber may
    /// have crossed a queue limit or chunks may be freed.
    func maintenanceDue(limits: QueueLimits) -> Bool {
        head >= scanAtOffset || headEvent >= scanAtEvent
    }

    /// Applies the queue limits: every subscriber whose unsent backlog exceeds `limits` is handed to
    /// `slow` (which detaches it, or skips it forward for the `drop` policy), then the chunks
    /// behind the slowest remaining cursor are released. Cost O(subscribers); called when due
    /// (every 1/8 of a queue limit or one chunk of appends) and from the loop's tick.
    func maintain(limits: QueueLimits, slow: (OutboundQueue) -> Void) {
        var minPosition = head
        var i = 0
        while i < subscribers.count {
            let s = subscribers[i]
            let lagBytes = head - s.position
            let lagEvents = headEvent - s.positionEvent
            if lagBytes > UInt64(limits.bytes) || lagEvents > UInt64(limits.events) {
                slow(s)
                // `slow` either detached it (the array shrank: index i now holds another) or
                // moved it to the head.
                if i < subscribers.count && subscribers[i] === s { i += 1 }
                continue
            }
            if s.position < minPosition { minPosition = s.position }
            i += 1
        }
        while let first = chunks.first, first.endOffset <= minPosition {
            chunks.removeFirst()
        }
        let step = UInt64(max(1, min(chunkSize, limits.bytes / 8)))
        scanAtOffset = head + step
        scanAtEvent = headEvent + UInt64(max(1, limits.events / 8))
    }

    func attach(_ s: OutboundQueue) {
        s.indexInLog = subscribers.count
        subscribers.append(s)
        s.log = self
        s.position = head
        s.positionEvent = headEvent
    }

    func detach(_ s: OutboundQueue) {
        guard s.log === self else { return }
        let i = s.indexInLog
        let last = subscribers.removeLast()
        if i < subscribers.count {
            subscribers[i] = last
            last.indexInLog = i
        }
        s.log = nil
        s.indexInLog = -1
    }
}

/// The per-subscriber queue bounds (`subscriber.queue_events`, `subscriber.queue_bytes`): the
/// backlog not yet handed to the kernel.
public struct QueueLimits: Sendable, Equatable {
    public var events: Int
    public var bytes: Int
    public init(events: Int, bytes: Int) {
        self.events = events
        self.bytes = bytes
    }
}
