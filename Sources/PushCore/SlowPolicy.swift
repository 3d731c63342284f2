/// What happens to a subscriber whose outbound queue is full (`subscriber.slow_policy`).
public enum SlowPolicy: String, Sendable, CaseIterable {
    /// Close the connection after the last whole event already handed to the kernel; the client
    /// reconnects with Last-Event-ID and replays what it missed. The default.
    case disconnect
    /// Skip the events that do not fit (never a torn event) and count them.
    case drop
}
