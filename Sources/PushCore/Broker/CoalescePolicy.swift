/// Write coalescing (`subscriber.coalesce_delay`, `subscriber.coalesce_bytes`): trading a bounded
/// delay for fewer, larger sends.
///
/// A send costs the kernel about the same whatever it carries (on loopback TCP, ~5 µs for a
/// small one, plus the receiver's wake-up), so when every event goes out alone — many topics,
/// each subscriber getting a few events per second — the per-send cost is nearly all of the
/// fan-out's cost. With a policy, a stream whose new events total fewer than `bytes` holds them
/// back for up to `delayNanoseconds` from the first, and each subscriber then gets all of them in
/// one send. Every subscriber of the stream still gets the same bytes, in order; the queue limits
/// still apply (a held stream is released before it reaches half of them). A loop applies a policy
/// all the time with `subscriber.coalesce_delay`, and otherwise only while it is saturated
/// (`subscriber.busy_coalesce_delay`, `SaturationMonitor`). Centrifugo's `client.write_delay` is
/// the same trade, always on.
public struct CoalescePolicy: Sendable, Equatable {
    /// Longest an event is held back, in nanoseconds (> 0).
    public var delayNanoseconds: UInt64
    /// A stream with at least this many unreleased bytes is released at once.
    public var bytes: Int

    /// Makes a policy; see the properties for units.
    public init(delayNanoseconds: UInt64, bytes: Int) {
        self.delayNanoseconds = delayNanoseconds
        self.bytes = bytes
    }
}
