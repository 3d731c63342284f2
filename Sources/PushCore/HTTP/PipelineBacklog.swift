/// Received request bytes a connection has not parsed yet because its pipeline is full: it has
/// `limits.max_pipelined_requests` responses the client has not taken. Parsing stops at a request
/// boundary, the rest of the receive buffer (and whatever arrives while stalled) waits here in
/// order, and parsing resumes from it once responses are written.
///
/// Bounded by `limit`: `append` refuses bytes that would take it past the limit, and the caller
/// closes the connection (a client that keeps sending while it does not read). The storage is
/// released whenever the backlog becomes empty, so an idle connection holds none. Pure value type;
/// single-threaded use (the connection's loop).
public struct PipelineBacklog {
    /// Most bytes the backlog may hold.
    public let limit: Int
    private var storage: [UInt8] = []
    /// Index in `storage` of the first byte not yet consumed.
    private var start = 0

    /// An empty backlog holding at most `limit` bytes.
    public init(limit: Int) { self.limit = max(0, limit) }

    /// Bytes waiting.
    public var count: Int { storage.count - start }

    /// Whether nothing waits (parsing is not stalled).
    public var isEmpty: Bool { count == 0 }

    /// Appends `bytes` after those waiting. Returns false, appending nothing, when that would take
    /// the backlog past `limit`.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count <= limit - count else { return false }
        guard bytes.count > 0 else { return true }
        if start > 0 && start >= storage.count / 2 {
            // Most of the storage is consumed: move the rest down before growing it.
            storage.removeFirst(start)
            start = 0
        }
        storage.append(contentsOf: bytes)
        return true
    }

    /// Calls `body` with the waiting bytes (valid only during the call) and returns its result.
    /// `body` must not touch this backlog.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try storage.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[start...])) }
    }

    /// Drops the first `n` waiting bytes (they were parsed). `n` is clamped to `count`.
    public mutating func removeFirst(_ n: Int) {
        start += min(max(0, n), count)
        if start == storage.count { removeAll() }
    }

    /// Drops everything and releases the storage.
    public mutating func removeAll() {
        storage = []
        start = 0
    }
}
