/// What happens to a subscriber whose outbound queue is full (`subscriber.slow_policy`).
public enum SlowPolicy: String, Sendable, CaseIterable {
    /// Close the connection after the last whole event already handed to the kernel; the client
    /// reconnects with Last-Event-ID and replays what it missed. The default.
    case disconnect
    /// Skip the subscriber's whole backlog — every event queued but not yet handed to the kernel —
    /// and count the skipped events; the subscriber stays connected and receives new events.
    /// Bytes already handed to the kernel are finished, so no event is torn.
    case drop
}
