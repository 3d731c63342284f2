import PushCore
import PushLoop

/// Everything the server needs to run, as plain values. Every property has a built-in default, so
/// `ServerConfiguration()` is a working daemon on 127.0.0.1:8080. Built by the daemon from
/// `config/pushd.yaml`, `PUSHD_*` environment variables and CLI flags (docs/CONFIGURATION.md); the
/// YAML key of each property is given in its doc comment.
public struct ServerConfiguration: Sendable, Equatable {
    /// `listen`: addresses to accept on, `HOST:PORT` (IPv6 as `[::1]:8080`). Each loop opens its own
    /// `SO_REUSEPORT` listener on each address.
    public var listen: [ListenAddress] = [ListenAddress(host: "127.0.0.1", port: 8080)]
    /// `event_loop`: `auto`, `io_uring` or `epoll`.
    public var eventLoop: LoopBackendChoice = .auto
    /// `workers`: loop threads; `nil` means `auto` (one per online CPU).
    public var workers: Int? = nil
    /// `log_level`: trace, debug, info, notice, warning, error, critical.
    public var logLevel: String = "info"
    /// `shutdown_timeout`: seconds a SIGTERM drain may take before remaining connections are cut.
    public var shutdownTimeout: Double = 10
    /// `log.access`: log one line per HTTP request (method, target, status, peer) at `info`.
    public var accessLog: Bool = false
    /// `state_directory`: where pushd keeps its small state (the event-id lease that keeps ids
    /// increasing across restarts even when the clock steps back). Empty: `$STATE_DIRECTORY`
    /// (set by systemd's `StateDirectory=`) when present, else no state is kept.
    public var stateDirectory: String = ""

    /// `limits.*`: HTTP request limits (RFC 9112).
    public var http = HTTPLimits()
    /// `sse.*`: Server-Sent Events stream settings.
    public var sse = SSESettings()
    /// `subscriber.*`: per-subscriber outbound queue and slow-subscriber policy.
    public var subscriber = SubscriberSettings()
    /// `replay.*`: per-topic replay ring bounds.
    public var replay = ReplaySettings()
    /// `loop.*`: event loop tuning.
    public var loop = LoopOptions()
    /// `websocket.*`: the WebSocket transport.
    public var websocket = WebSocketSettings()
    /// `auth.*`: publish and private-topic subscribe auth (AuthSettings.swift).
    public var auth = AuthSettings()
    /// `cors.*`: browser cross-origin access (AuthSettings.swift).
    public var cors = CORSSettings()
    /// `tls.*`: optional TLS termination (TLSContext.swift).
    public var tls = TLSSettings()

    public init() {}

    public static func == (a: ServerConfiguration, b: ServerConfiguration) -> Bool {
        a.listen == b.listen && a.eventLoop == b.eventLoop && a.workers == b.workers
            && a.logLevel == b.logLevel && a.shutdownTimeout == b.shutdownTimeout && a.accessLog == b.accessLog
            && a.stateDirectory == b.stateDirectory && a.http == b.http
            && a.sse == b.sse && a.subscriber == b.subscriber && a.replay == b.replay && a.loop == b.loop
            && a.websocket == b.websocket
            && a.auth == b.auth && a.cors == b.cors
            && a.tls == b.tls
    }
}

/// A `HOST:PORT` to listen on.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    /// Numeric IPv4/IPv6 address or `localhost`; `0.0.0.0` / `::` for every interface.
    public var host: String
    /// TCP port; 0 asks the kernel for a free port (tests).
    public var port: UInt16
    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }
    /// Parses `HOST:PORT`, `[V6]:PORT` or `:PORT` (all interfaces). Returns nil when malformed.
    public init?(parsing text: String) {
        var hostPart: Substring
        var portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            hostPart = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portPart = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
            if hostPart.contains(":") { return nil }
        }
        if hostPart.isEmpty { hostPart = "0.0.0.0" }
        guard let port = UInt16(portPart) else { return nil }
        self.host = String(hostPart)
        self.port = port
    }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// `limits.*` — request limits. Exceeding one is answered with the status in brackets.
public struct HTTPLimits: Sendable, Equatable {
    /// `limits.max_request_line_bytes` [414].
    public var maxRequestLineBytes: Int = 8 * 1024
    /// `limits.max_header_bytes`: the whole header section [431].
    public var maxHeaderBytes: Int = 16 * 1024
    /// `limits.max_header_count` [431].
    public var maxHeaderCount: Int = 100
    /// `limits.max_event_bytes`: a publish body [413], checked against Content-Length before any
    /// body byte is read, and against the running total for chunked bodies.
    public var maxEventBytes: Int = 1024 * 1024
    /// `limits.max_batch_bytes`: a `POST /publish` batch body [413].
    public var maxBatchBytes: Int = 4 * 1024 * 1024
    /// `limits.max_pipelined_requests`: requests read ahead of their responses on one connection.
    public var maxPipelinedRequests: Int = 128
    /// `limits.max_topics_per_connection`: topics on one `/subscribe` [400].
    public var maxTopicsPerConnection: Int = 64
    /// `limits.header_timeout`: seconds a client may take to send a complete request head [408].
    public var headerTimeout: Double = 10
    /// `limits.body_timeout`: seconds a client may take to send a request body, counted from the
    /// end of its head [408]; 0 disables. Not reset by each byte, so a body trickled in cannot
    /// hold a connection (slowloris on the body).
    public var bodyTimeout: Double = 30
    /// `limits.idle_timeout`: seconds an idle keep-alive connection (no request in progress) is kept.
    public var idleTimeout: Double = 60
    /// `limits.linger_timeout`: seconds a connection closed after an error answer keeps reading
    /// (and discarding) what the client still sends, after its write side was shut down, so the
    /// kernel does not reset the connection before the client has read the answer (RFC 9112
    /// §9.6); 0 closes at once. Ends earlier at the client's FIN or after `lingerBytes`.
    public var lingerTimeout: Double = 2
    /// `limits.linger_bytes`: most bytes discarded during one lingering close; 0 closes at once.
    public var lingerBytes: Int = 1024 * 1024
    /// `limits.max_connections`: open connections overall [503 + Retry-After]; 0 derives it from
    /// RLIMIT_NOFILE (the soft limit minus 64).
    public var maxConnections: Int = 0
    /// `limits.max_connections_per_ip`: open connections from one client address [503 +
    /// Retry-After]; 0 disables.
    public var maxConnectionsPerIP: Int = 1000
    /// `limits.publish_rate`: events per second one client may publish, sustained [429 +
    /// Retry-After]; 0 disables.
    public var publishRate: Int = 1000
    /// `limits.publish_burst`: events a client may publish at once above the sustained rate.
    public var publishBurst: Int = 2000
    /// `limits.exempt_loopback`: loopback clients (127.0.0.0/8, ::1) are not counted per client
    /// and not rate-limited — they are the local application or a reverse proxy, behind which
    /// every internet client shares one address. `max_connections` still applies.
    public var exemptLoopback: Bool = true
    public init() {}
}

/// `sse.*` — Server-Sent Events (WHATWG HTML §9.2).
public struct SSESettings: Sendable, Equatable {
    /// `sse.heartbeat`: seconds of silence after which a `:` comment line is sent; 0 disables.
    public var heartbeat: Double = 15
    /// `sse.retry`: milliseconds sent as `retry:` on connect (the client's reconnection delay).
    public var retryMilliseconds: Int = 2000
    /// `sse.max_stream_age`: seconds after which a stream is ended cleanly (the client reconnects
    /// with Last-Event-ID); 0 means never.
    public var maxStreamAge: Double = 0
    public init() {}
}

/// `subscriber.*` — the bounded outbound queue of each subscriber.
public struct SubscriberSettings: Sendable, Equatable {
    /// `subscriber.queue_events`: events queued (not yet handed to the kernel) before the policy fires.
    public var queueEvents: Int = 4096
    /// `subscriber.queue_bytes`: bytes queued before the policy fires.
    public var queueBytes: Int = 4 * 1024 * 1024
    /// `subscriber.slow_policy`: `disconnect` or `drop`.
    public var slowPolicy: SlowPolicy = .disconnect
    /// `subscriber.disconnect_grace`: seconds an SSE subscriber detached by the `disconnect`
    /// policy may take to accept the whole events already handed to it before it is cut anyway.
    /// A reader at 1 KB/s finishes a 16 KiB chunk within the default; a peer that stopped reading
    /// does not, and a spec-conforming client discards the incomplete event at EOF (WHATWG HTML
    /// §9.2.6).
    public var disconnectGrace: Double = 30
    /// `subscriber.coalesce_delay`: longest new events are held back so that several go out in
    /// one write, in milliseconds; 0 = never (the default; see `CoalescePolicy`).
    public var coalesceDelayMilliseconds: Int = 0
    /// `subscriber.coalesce_bytes`: a stream with this many unsent new bytes is written at once.
    public var coalesceBytes: Int = 4096
    /// `subscriber.busy_coalesce_delay`: while a loop is saturated (`SaturationMonitor`), new
    /// events are held back up to this long, in milliseconds; 0 = never. Default 10.
    public var busyCoalesceDelayMilliseconds: Int = 10
    public init() {}

    /// The fan-out's policy for these settings on a loop that is (`saturated`) or is not
    /// saturated: `coalesce_delay` when set (always on), else `busy_coalesce_delay` while
    /// saturated, else nil (send at once).
    public func coalescePolicy(saturated: Bool) -> CoalescePolicy? {
        let milliseconds = coalesceDelayMilliseconds > 0
            ? coalesceDelayMilliseconds : (saturated ? busyCoalesceDelayMilliseconds : 0)
        guard milliseconds > 0 else { return nil }
        return CoalescePolicy(delayNanoseconds: UInt64(milliseconds) * 1_000_000, bytes: coalesceBytes)
    }
}

/// `replay.*` — what each topic retains for `Last-Event-ID` resumption.
public struct ReplaySettings: Sendable, Equatable {
    /// `replay.events`: events kept per topic.
    public var events: Int = 1000
    /// `replay.max_bytes`: encoded bytes kept per topic.
    public var maxBytes: Int = 1024 * 1024
    /// `replay.max_age`: seconds an event is kept.
    public var maxAge: Double = 3600
    public init() {}
}
