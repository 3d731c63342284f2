import DequeModule

/// Everything one connection has to write, and the only owner of its write state: partial
/// (short) sends, the order of private segments and shared stream bytes, and coalescing.
///
/// Two sources, in this order:
/// 1. private segments — HTTP responses, the SSE prelude, replayed events, heartbeats, the gap
///    signal — each an immutable `SharedBytes`; several queued segments go out as one send;
/// 2. when attached to a `StreamLog` (the connection is a subscriber), the log's bytes from the
///    subscriber's cursor on: one contiguous range per send, holding every event queued since the
///    previous send.
///
/// At most one send is outstanding (`isSending`). Bytes handed out by `nextSend()` stay valid and
/// unchanged until `completed(_:)` or until the queue is released after the connection closed.
/// Single-threaded (the connection's loop).
public final class OutboundQueue {
    /// The server's handle for the connection (opaque here).
    public let token: UInt64

    private var segments: Deque<SharedBytes> = []
    private var segmentBytes = 0

    // Log attachment, maintained by StreamLog / LoopFanout.
    /// The log this subscriber reads, if any.
    public internal(set) var log: StreamLog?
    var indexInLog = -1
    /// Next byte of `log` not yet handed to the kernel.
    public internal(set) var position: UInt64 = 0
    /// Index of the event at `position`.
    public internal(set) var positionEvent: UInt64 = 0

    // Bytes handed out and not yet confirmed written. `owner` keeps their memory alive.
    private var pendingOwner: AnyObject?
    private var pendingBase: UnsafeRawPointer?
    private var pendingCount = 0
    /// Private segments inside the bytes handed out (several when coalesced), until all are written.
    private var pendingSegments = 0

    /// True from `nextSend()` returning bytes until `completed(_:)`.
    public private(set) var isSending = false
    /// Events handed to the kernel from the log (deliveries).
    public private(set) var deliveredEvents: UInt64 = 0
    /// Events skipped by the `drop` slow policy.
    public internal(set) var droppedEvents: UInt64 = 0
    /// Bytes confirmed written.
    public private(set) var bytesWritten: UInt64 = 0

    public init(token: UInt64) { self.token = token }

    /// Queues a private segment after those already queued.
    public func enqueue(_ bytes: SharedBytes) {
        guard bytes.count > 0 else { return }
        segments.append(bytes)
        segmentBytes += bytes.count
    }

    /// Bytes in private segments not yet handed out.
    public var queuedSegmentBytes: Int { segmentBytes }

    /// Private segments queued or handed out but not yet completely written. For an HTTP
    /// connection every response (and each `100 Continue`) is one segment, so this bounds the
    /// responses a pipelining client has not taken yet (`limits.max_pipelined_requests`). A send
    /// that coalesced several segments counts them all until its last byte is written.
    public var unwrittenSegments: Int { segments.count + pendingSegments }

    /// Whether anything is waiting to be handed to the kernel (ignoring a send in flight).
    public var hasPendingBytes: Bool {
        pendingCount > 0 || !segments.isEmpty || (log.map { position < $0.head } ?? false)
    }

    /// Whether nothing at all is queued or in flight.
    public var isIdle: Bool { !isSending && !hasPendingBytes }

    /// The next bytes to send, or nil when a send is already in flight or nothing is queued.
    /// Marks the queue as sending.
    public func nextSend() -> UnsafeRawBufferPointer? {
        guard !isSending else { return nil }
        if pendingCount == 0 {
            if !segments.isEmpty {
                let segment: SharedBytes
                if segments.count == 1 {
                    segment = segments.first!
                    releaseSegmentStorage()
                    pendingSegments = 1
                } else {
                    // Coalesce queued segments into one send.
                    let parts = segments
                    releaseSegmentStorage()
                    pendingSegments = parts.count
                    segment = SharedBytes(count: segmentBytes) { out in
                        var at = 0
                        for p in parts {
                            (out.baseAddress! + at).copyMemory(from: p.base, byteCount: p.count)
                            at += p.count
                        }
                    }
                }
                segmentBytes = 0
                pendingOwner = segment
                pendingBase = segment.base
                pendingCount = segment.count
            } else if let log, let r = log.range(from: position, released: true) {
                pendingOwner = r.chunk
                pendingBase = r.bytes.baseAddress
                pendingCount = r.bytes.count
                deliveredEvents &+= r.endEvent - positionEvent
                position = r.endOffset
                positionEvent = r.endEvent
            } else {
                return nil
            }
        }
        isSending = true
        return UnsafeRawBufferPointer(start: pendingBase, count: pendingCount)
    }

    /// Empties `segments`. A subscriber (attached to a log) gives the storage back, so an idle
    /// one keeps none; a request/response connection keeps it for its next answer.
    private func releaseSegmentStorage() {
        if log == nil { segments.removeAll(keepingCapacity: true) } else { segments = [] }
    }

    /// Records that the send in flight wrote `written` bytes (> 0, possibly fewer than handed out).
    public func completed(_ written: Int) {
        precondition(isSending && written > 0 && written <= pendingCount)
        isSending = false
        bytesWritten &+= UInt64(written)
        pendingCount -= written
        if pendingCount == 0 {
            pendingOwner = nil
            pendingBase = nil
            pendingSegments = 0
        } else {
            pendingBase = pendingBase! + written
        }
    }

    /// Skips every event of the log not yet handed out (the `drop` slow policy); bytes already
    /// handed out are still completed, so no event is torn. Returns the events skipped.
    @discardableResult
    func skipToHead() -> UInt64 {
        guard let log else { return 0 }
        let skipped = log.headEvent - positionEvent
        droppedEvents &+= skipped
        position = log.head
        positionEvent = log.headEvent
        return skipped
    }

    /// Drops every queued private segment and forgets unsent bytes (the connection is closing).
    /// A send in flight stays valid until released.
    public func discardQueued() {
        segments.removeAll()
        segmentBytes = 0
    }
}
