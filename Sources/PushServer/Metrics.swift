// `GET /metrics` (API.md "Operations"): Prometheus text exposition through swift-metrics handles
// backed by swift-prometheus' registry.
//
// The hot path never touches a lock or a shared cache line: each loop counts in plain properties
// and copies them into its own `LoopMetrics` atomics once per tick (single writer, relaxed stores).
// A scrape sums those per-loop values with the node-wide `ServerStats`, then brings the
// swift-metrics counters up to date by the difference since the previous scrape.
#if canImport(Glibc)
import Glibc
#endif
import CoreMetrics
import Prometheus
import PushCore
import Synchronization

/// Per-loop values, written by the loop's own thread on each tick and read by scrapes, the
/// systemd watchdog thread and the drain. Every field has one writer.
final class LoopMetrics: Sendable {
    /// Bumped on every loop tick: proves the loop turns (systemd watchdog).
    let heartbeat = Atomic<UInt64>(0)
    /// How late the latest tick ran compared with its period, in nanoseconds.
    let lagNanoseconds = Atomic<UInt64>(0)
    /// Largest tick lag since the previous scrape, in nanoseconds (reset by the scrape).
    let maxLagNanoseconds = Atomic<UInt64>(0)
    /// Events handed to the kernel for this loop's subscribers (sum of per-subscriber deliveries).
    let delivered = Atomic<UInt64>(0)
    /// Events appended to this loop's stream logs.
    let fannedOut = Atomic<UInt64>(0)
    /// Events skipped by the `drop` slow policy.
    let slowDrops = Atomic<UInt64>(0)
    /// Subscribers disconnected by the `disconnect` slow policy.
    let slowDisconnects = Atomic<UInt64>(0)
    /// Attached subscribers.
    let subscribers = Atomic<Int>(0)
    /// Bytes retained by the loop's stream logs (events queued for its subscribers).
    let queuedBytes = Atomic<Int>(0)
    /// Connections in the loop's table.
    let connections = Atomic<Int>(0)
    /// Times this loop's accept paused for lack of descriptors or memory (`LoopHandler.acceptPaused`).
    let acceptPauses = Atomic<UInt64>(0)
    /// The loop is saturated (`SaturationMonitor`): busy coalescing applies.
    let saturated = Atomic<Bool>(false)
    /// The loop has seen the drain begin (its first `drainStep`): it accepts no publish from then
    /// on, and every publish it accepted before is already in the loops' inboxes.
    let drainSeen = Atomic<Bool>(false)
    /// The loop finished its drain (no connection left) after `Server.drain`.
    let drained = Atomic<Bool>(false)

    /// Records the lag of one tick.
    func recordLag(_ lag: UInt64) {
        lagNanoseconds.store(lag, ordering: .relaxed)
        if lag > maxLagNanoseconds.load(ordering: .relaxed) { maxLagNanoseconds.store(lag, ordering: .relaxed) }
    }
}

/// Owns the Prometheus registry and the swift-metrics handles `/metrics` exports. Thread-safe.
final class MetricsExporter: Sendable {
    private struct State {
        var counters: [String: CoreMetrics.Counter] = [:]
        var gauges: [String: CoreMetrics.Gauge] = [:]
        /// Last value exported per counter key, to increment by the difference.
        var exported: [String: UInt64] = [:]
    }

    private let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    private let state = Mutex(State())

    init() {
        self.factory = PrometheusMetricsFactory(registry: registry)
    }

    /// The names and help texts, in output order (documented in docs/OPERATIONS.md).
    static let help: [(name: String, help: String)] = [
        ("pushd_connections", "Open connections by transport (sse, websocket, http)."),
        ("pushd_connections_accepted_total", "Connections accepted since start."),
        ("pushd_accept_paused_total", "Times accept paused for loop.accept_backoff_ms because pushd or the system ran out of file descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM); new connections wait in the listen backlog meanwhile."),
        ("pushd_requests_total", "HTTP requests handled."),
        ("pushd_bad_requests_total", "HTTP requests refused by the parser."),
        ("pushd_events_published_total", "Events accepted by POST."),
        ("pushd_events_fanned_out_total", "Events appended to the loops' stream logs (once per loop and stream group)."),
        ("pushd_events_delivered_total", "Events handed to the kernel for subscribers (once per subscriber)."),
        ("pushd_events_dropped_total", "Events a subscriber did not get, by reason."),
        ("pushd_subscribers_disconnected_total", "Subscribers disconnected by pushd, by reason."),
        ("pushd_subscribers", "Attached subscribers."),
        ("pushd_replay_events_total", "Events replayed to reconnecting subscribers (Last-Event-ID hits)."),
        ("pushd_replay_gaps_total", "Gap signals sent: the Last-Event-ID was older than the replay ring."),
        ("pushd_queued_bytes", "Bytes held in stream logs for subscribers that have not written them yet."),
        ("pushd_loop_lag_seconds", "How late the latest loop tick ran, by loop."),
        ("pushd_loop_lag_max_seconds", "Largest loop tick lag since the previous scrape, by loop."),
        ("pushd_loop_connections", "Connections owned by each loop."),
        ("pushd_loop_saturated", "1 while a loop is saturated (busy >= 85% of the time, running >= 50%); it then holds sends back up to subscriber.busy_coalesce_delay."),
        ("pushd_bytes_received_total", "Bytes read from clients."),
        ("pushd_bytes_sent_total", "Bytes written to clients."),
        ("pushd_config_reloads_total", "Successful SIGHUP configuration reloads."),
        ("pushd_draining", "1 while a SIGTERM drain runs."),
    ]

    /// Renders the exposition: every metric brought up to date, then the registry's text.
    func render(_ shared: ServerShared) -> [UInt8] {
        let stats = shared.stats
        let loops = shared.loopMetrics
        func sum(_ f: (LoopMetrics) -> UInt64) -> UInt64 { loops.reduce(0) { $0 &+ f($1) } }
        func sumInt(_ f: (LoopMetrics) -> Int) -> Int { loops.reduce(0) { $0 + f($1) } }

        let counters: [(String, [(String, String)], UInt64)] = [
            ("pushd_connections_accepted_total", [], stats.accepted),
            ("pushd_accept_paused_total", [], sum { $0.acceptPauses.load(ordering: .relaxed) }),
            ("pushd_requests_total", [], stats.requests),
            ("pushd_bad_requests_total", [], stats.badRequests),
            ("pushd_events_published_total", [], stats.publishedEvents),
            ("pushd_events_fanned_out_total", [], sum { $0.fannedOut.load(ordering: .relaxed) }),
            ("pushd_events_delivered_total", [], sum { $0.delivered.load(ordering: .relaxed) }),
            ("pushd_events_dropped_total", [("reason", "slow_subscriber")], sum { $0.slowDrops.load(ordering: .relaxed) }),
            (
                "pushd_subscribers_disconnected_total", [("reason", "slow_subscriber")],
                sum { $0.slowDisconnects.load(ordering: .relaxed) }
            ),
            ("pushd_replay_events_total", [], stats.replayedEvents),
            ("pushd_replay_gaps_total", [], stats.gapSignals),
            ("pushd_bytes_received_total", [], stats.bytesReceived),
            ("pushd_bytes_sent_total", [], stats.bytesSent),
            ("pushd_config_reloads_total", [], shared.live.reloads),
        ]
        let streams = stats.streams
        let webSockets = stats.webSocketConnections
        var gauges: [(String, [(String, String)], Double)] = [
            ("pushd_connections", [("transport", "sse")], Double(streams)),
            ("pushd_connections", [("transport", "websocket")], Double(webSockets)),
            ("pushd_connections", [("transport", "http")], Double(max(0, stats.connections - streams - webSockets))),
            ("pushd_subscribers", [], Double(sumInt { $0.subscribers.load(ordering: .relaxed) })),
            ("pushd_queued_bytes", [], Double(sumInt { $0.queuedBytes.load(ordering: .relaxed) })),
            ("pushd_draining", [], shared.isDraining ? 1 : 0),
        ]
        for (i, loop) in loops.enumerated() {
            let labels = [("loop", String(i))]
            gauges.append(("pushd_loop_lag_seconds", labels, Double(loop.lagNanoseconds.load(ordering: .relaxed)) / 1e9))
            let maxLag = loop.maxLagNanoseconds.exchange(0, ordering: .relaxed)
            gauges.append(("pushd_loop_lag_max_seconds", labels, Double(maxLag) / 1e9))
            gauges.append(("pushd_loop_connections", labels, Double(loop.connections.load(ordering: .relaxed))))
            gauges.append(("pushd_loop_saturated", labels, loop.saturated.load(ordering: .relaxed) ? 1 : 0))
        }

        let factory = self.factory
        return state.withLock { state in
            for (name, labels, value) in counters {
                let key = Self.key(name, labels)
                let counter: CoreMetrics.Counter
                if let existing = state.counters[key] {
                    counter = existing
                } else {
                    counter = CoreMetrics.Counter(label: name, dimensions: labels, factory: factory)
                    state.counters[key] = counter
                }
                let last = state.exported[key] ?? 0
                if value > last { counter.increment(by: value - last) }
                state.exported[key] = max(value, last)
            }
            for (name, labels, value) in gauges {
                let key = Self.key(name, labels)
                let gauge: CoreMetrics.Gauge
                if let existing = state.gauges[key] {
                    gauge = existing
                } else {
                    gauge = CoreMetrics.Gauge(label: name, dimensions: labels, factory: factory)
                    state.gauges[key] = gauge
                }
                gauge.record(value)
            }
            return Self.withHelp(registry.emitToBuffer())
        }
    }

    private static func key(_ name: String, _ labels: [(String, String)]) -> String {
        labels.isEmpty ? name : name + "{" + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}"
    }

    /// Adds `# HELP` lines before the registry's `# TYPE` lines.
    private static func withHelp(_ text: [UInt8]) -> [UInt8] {
        let byName = Dictionary(uniqueKeysWithValues: help.map { ($0.name, $0.help) })
        var out: [UInt8] = []
        out.reserveCapacity(text.count + 2048)
        for line in text.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            if line.starts(with: Array("# TYPE ".utf8)) {
                let rest = line.dropFirst(7)
                if let space = rest.firstIndex(of: UInt8(ascii: " ")),
                    let h = byName[String(decoding: rest[rest.startIndex..<space], as: UTF8.self)]
                {
                    out.append(contentsOf: Array("# HELP ".utf8))
                    out.append(contentsOf: rest[rest.startIndex..<space])
                    out.append(UInt8(ascii: " "))
                    out.append(contentsOf: Array(h.utf8))
                    out.append(UInt8(ascii: "\n"))
                }
            }
            out.append(contentsOf: line)
            out.append(UInt8(ascii: "\n"))
        }
        if out.count >= 2, out[out.count - 1] == UInt8(ascii: "\n"), out[out.count - 2] == UInt8(ascii: "\n") {
            out.removeLast()
        }
        return out
    }
}

extension LoopWorker {
    /// `GET /metrics`: Prometheus text exposition format 0.0.4.
    func serveMetrics(_ c: Connection, head: HTTPRequestHead, keepAlive: Bool) {
        guard head.method == .get || head.method == .head else {
            reply(
                c,
                HTTPResponse.error(
                    status: 405, code: "method_not_allowed", message: "this endpoint accepts GET, HEAD",
                    extraHeaders: [("Allow", "GET, HEAD")], close: !keepAlive),
                close: !keepAlive)
            return
        }
        publishLoopMetrics()
        let body = shared.metrics.render(shared)
        reply(
            c,
            HTTPResponse.make(
                status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8",
                body: head.method == .head ? [] : body, close: !keepAlive),
            close: !keepAlive)
    }

    /// Copies this loop's plain counters into its `LoopMetrics` (each tick, and before a scrape).
    func publishLoopMetrics() {
        let m = loopMetrics
        m.delivered.store(deliveredEvents, ordering: .relaxed)
        m.fannedOut.store(fanout.eventsFannedOut, ordering: .relaxed)
        m.slowDrops.store(fanout.slowDrops, ordering: .relaxed)
        m.slowDisconnects.store(fanout.slowDisconnects, ordering: .relaxed)
        m.subscribers.store(fanout.subscriberCount, ordering: .relaxed)
        m.connections.store(loop.connectionCount, ordering: .relaxed)
    }
}
