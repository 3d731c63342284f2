import Synchronization

/// Token buckets limiting how many events a client may publish per second
/// (`limits.publish_rate`, `limits.publish_burst`), shared by every loop.
///
/// Each key (``PublishRateIdentity/key``: the publish token's subject or digest, or `ip:<address>`
/// for an anonymous publish — see `LoopWorker.publishRateKey`) has a bucket of `burst` tokens
/// refilled at `rate` per second; publishing n events costs n tokens. A request passes when the
/// bucket holds min(n, burst) tokens, and then all n are taken — the bucket may go into debt, so a
/// batch larger than the burst is possible from a full bucket but is paid for in full: the next
/// publish waits until the debt is refilled, and the sustained rate stays `rate`. The table is
/// pruned of full buckets when it grows, so its size is bounded by the clients that published in
/// the last `burst / rate` seconds (plus any debt).
final class PublishRateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: UInt64
    }

    private let buckets = Mutex<[String: Bucket]>([:])
    /// Table size above which full buckets are dropped on the next call.
    private static let pruneAbove = 4096

    /// Takes `count` tokens from `key`'s bucket. Returns nil when allowed, else the whole seconds
    /// after which the same request would be allowed (for `Retry-After`). `rate` ≤ 0 disables.
    func take(_ key: String, count: Int, rate: Double, burst: Int, now: UInt64) -> Int? {
        guard rate > 0 else { return nil }
        let capacity = Double(max(1, burst))
        let needed = min(Double(count), capacity)  // what must be in the bucket
        let cost = Double(count)  // what is taken: the bucket may go into debt
        return buckets.withLock { table in
            if table.count > Self.pruneAbove {
                table = table.filter { _, b in b.tokens + Double(now &- b.updated) / 1e9 * rate < capacity }
            }
            var b = table[key] ?? Bucket(tokens: capacity, updated: now)
            b.tokens = min(capacity, b.tokens + Double(now &- b.updated) / 1e9 * rate)
            b.updated = now
            defer { table[key] = b }
            if b.tokens >= needed {
                b.tokens -= cost
                return nil
            }
            return max(1, Int(((needed - b.tokens) / rate).rounded(.up)))
        }
    }
}

extension LoopWorker {
    /// The bucket a publish is charged to: the token's identity when the publish was authorized
    /// by one (a JWT's subject, else a digest of the token), otherwise the client address. Two
    /// tokens behind one address get a bucket each; one token used from many addresses shares one.
    static func publishRateKey(peerHost: String, grant: PublishGrant) -> String {
        (grant.rateIdentity ?? .address(peerHost)).key
    }

    /// Charges `events` publishes under `grant` (see `publishRateKey`). Returns nil when allowed,
    /// else the `Retry-After` seconds for a `429`. Loopback clients are exempt, token or not,
    /// when `limits.exempt_loopback` is set (the local application is trusted, and a reverse
    /// proxy would otherwise throttle all of its anonymous clients together).
    func publishRetryAfter(_ c: Connection, grant: PublishGrant, events: Int) -> Int? {
        let h = config.http
        if h.exemptLoopback && ConnectionAdmission.isLoopback(c.peer.host) { return nil }
        return shared.publishLimiter.take(
            Self.publishRateKey(peerHost: c.peer.host, grant: grant), count: events,
            rate: Double(h.publishRate), burst: h.publishBurst, now: now)
    }
}
