#if canImport(Glibc)
import Glibc
#endif
import Logging
import PushCore
import PushLoop
import Synchronization

/// Errors starting the server.
public enum ServerError: Error, CustomStringConvertible {
    /// A listening socket could not be opened (address in use, permission, bad address).
    case listen(address: String, reason: String)
    /// A loop could not start (io_uring forced but unavailable, ring setup failed…).
    case loopStart(index: Int, reason: String)
    /// `pthread_create` failed with this error number.
    case threadStart(errno: Int32)
    /// The state directory (event-id lease) is unusable.
    case state(reason: String)
    /// The TLS certificate or key could not be loaded (TLSContext.swift).
    case tls(TLSSetupError)

    public var description: String {
        switch self {
        case .listen(let a, let r): return "cannot listen on \(a): \(r)"
        case .loopStart(let i, let r): return "event loop \(i) failed to start: \(r)"
        case .threadStart(let e): return "cannot start a loop thread: errno \(e)"
        case .state(let r): return "state_directory: \(r)"
        case .tls(let e): return "\(e)"
        }
    }
}

/// State shared by every loop thread: read-only configuration, the Broker, counters and flags.
final class ServerShared: Sendable {
    /// The configuration in force (swapped by `Server.reload`; loops pick it up on their next tick).
    var config: ServerConfiguration { live.current.config }
    /// The SSE prelude (`retry:`) of the configuration in force.
    var ssePrelude: [UInt8] { live.current.ssePrelude }
    /// The reloadable configuration (Reload.swift).
    let live: LiveConfiguration
    let broker: Broker
    let stats = ServerStats()
    /// Connection counts overall and per client (ConnectionLimits.swift).
    let admission = ConnectionAdmission()
    /// Publish token buckets (RateLimiter.swift).
    let publishLimiter = PublishRateLimiter()
    /// One per loop: heartbeat, lag and hot-path counters (Metrics.swift).
    let loopMetrics: [LoopMetrics]
    /// Prometheus registry and the swift-metrics handles exported at `/metrics`.
    let metrics: MetricsExporter
    static let heartbeatBytes = SharedBytes(SSEEncoder.heartbeat)
    private let serving = Atomic<Bool>(false)
    private let draining = Atomic<Bool>(false)
    private let stop = Atomic<Bool>(false)

    /// The event-id lease, when a state directory is configured.
    let lease: EventIDLease?
    /// The TLS context for new connections, when `tls.*` is set (TLSContext.swift).
    let tls = TLSContextStore()

    init(config: ServerConfiguration, broker: Broker, lease: EventIDLease?, loopCount: Int) {
        self.live = LiveConfiguration(config)
        self.broker = broker
        self.lease = lease
        self.loopMetrics = (0..<loopCount).map { _ in LoopMetrics() }
        self.metrics = MetricsExporter()
    }

    var isServing: Bool { serving.load(ordering: .acquiring) && !draining.load(ordering: .acquiring) }
    var isDraining: Bool { draining.load(ordering: .relaxed) }
    var stopRequested: Bool { stop.load(ordering: .acquiring) }
    func setServing() { serving.store(true, ordering: .releasing) }
    func setDraining() { draining.store(true, ordering: .releasing) }
    func requestStop() { stop.store(true, ordering: .releasing) }
}

/// The running daemon: one event loop thread per worker, each with its own `SO_REUSEPORT`
/// listener on every configured address, sharing one `Broker`.
///
/// Thread-safe: `start` and `stop` may be called from the main thread or a signal-handling thread.
public final class Server: Sendable {
    /// The default of `limits.max_connections` (0 in the configuration): the soft RLIMIT_NOFILE
    /// minus 64, at least 16. Read once, on first use: call it after raising the limit.
    public static var defaultMaxConnections: Int { ConnectionAdmission.derivedMaxConnections }

    /// Counters, readable from any thread.
    public var stats: ServerStats { shared.stats }
    let shared: ServerShared
    let logger: Logger
    private let workerCount: Int
    private let startup = StartupTracker()
    private let listenerFDs: Mutex<[[Int32]]> = Mutex([])
    private let boundPorts: Mutex<[UInt16]> = Mutex([])

    struct StartupState {
        var spawned = 0
        var ready = 0
        var stopped = 0
        var failure: String?
        var kinds: [LoopBackendKind] = []
    }

    final class StartupTracker: Sendable {
        let state = Mutex<StartupState>(StartupState())
        func withLock<R>(_ body: (inout StartupState) -> R) -> R { state.withLock { body(&$0) } }
    }

    /// Listening sockets passed by the service manager (socket activation); empty when none.
    private let inheritedListeners: [Int32]

    /// Prepares a server; nothing is opened until `start`. `environment` supplies
    /// `STATE_DIRECTORY` when `state_directory` is empty. Throws `ServerError.state` when the
    /// state directory's event-id lease cannot be read.
    /// - Parameter inheritedListeners: listening TCP sockets passed by systemd (`sd_listen_fds`).
    ///   When not empty they replace `configuration.listen`, and every loop accepts on all of them
    ///   (shared sockets, not one `SO_REUSEPORT` socket per loop).
    public init(
        configuration: ServerConfiguration, logger: Logger, environment: [String: String] = [:],
        inheritedListeners: [Int32] = []
    ) throws {
        self.inheritedListeners = inheritedListeners
        self.logger = logger
        let online = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        self.workerCount = max(1, configuration.workers ?? max(1, online))
        var stateDirectory = configuration.stateDirectory
        if stateDirectory.isEmpty, let fromSystemd = environment["STATE_DIRECTORY"] {
            stateDirectory = String(fromSystemd.split(separator: ":").first ?? "")
        }
        var lease: EventIDLease?
        if !stateDirectory.isEmpty {
            do {
                lease = try EventIDLease(directory: stateDirectory)
            } catch {
                throw ServerError.state(reason: error.message)
            }
        }
        let r = configuration.replay
        let broker = Broker(
            loopCount: workerCount,
            replayLimits: ReplayRing.Limits(
                events: r.events, bytes: r.maxBytes, maxAgeMilliseconds: UInt64(r.maxAge * 1000)),
            idFloor: lease?.floor ?? .zero,
            nowMilliseconds: Clock.wallMilliseconds())
        if let lease, let error = lease.extendIfNeeded(newest: broker.lastID, nowMilliseconds: Clock.wallMilliseconds()) {
            throw ServerError.state(reason: error)
        }
        self.shared = ServerShared(config: configuration, broker: broker, lease: lease, loopCount: workerCount)
        if configuration.tls.isEnabled {
            do throws(TLSSetupError) { shared.tls.install(try TLSContext(configuration.tls)) } catch { throw ServerError.tls(error) }
        }
        if lease == nil {
            logger.info("no state_directory: event ids follow the wall clock across restarts")
        }
    }

    /// Number of loop threads.
    public var workers: Int { workerCount }
    /// The backend each loop runs (after `start`).
    public var backends: [LoopBackendKind] { startup.withLock { $0.kinds } }
    /// The TCP port bound for each configured address (useful with port 0).
    public var ports: [UInt16] { boundPorts.withLock { $0 } }

    /// Opens the listeners, starts every loop thread and returns once all are accepting.
    /// Throws `ServerError` (and closes what it opened) when a listener or a loop fails.
    public func start() throws {
        let config = shared.config
        // Open one SO_REUSEPORT listener per loop per address; port 0 resolves on the first.
        var perLoop = Array(repeating: [Int32](), count: workerCount)
        var ports: [UInt16] = []
        if !inheritedListeners.isEmpty {
            for fd in inheritedListeners {
                let flags = fcntl(fd, F_GETFL)
                if flags >= 0 { _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
                ports.append(ListeningSocket.localPort(of: fd) ?? 0)
            }
            perLoop = Array(repeating: inheritedListeners, count: workerCount)
        }
        do {
            for address in config.listen where inheritedListeners.isEmpty {
                var port = address.port
                for i in 0..<workerCount {
                    let fd = try ListeningSocket.open(host: address.host, port: port)
                    if port == 0 { port = ListeningSocket.localPort(of: fd) ?? 0 }
                    perLoop[i].append(fd)
                }
                ports.append(port)
            }
        } catch {
            for fds in perLoop { for fd in fds { Glibc.close(fd) } }
            throw ServerError.listen(address: config.listen.map(\.description).joined(separator: ", "), reason: "\(error)")
        }
        listenerFDs.withLock { $0 = perLoop }
        boundPorts.withLock { $0 = ports }

        for i in 0..<workerCount {
            let fds = perLoop[i]
            let shared = self.shared
            var logger = self.logger
            logger[metadataKey: "loop"] = "\(i)"
            let startup = self.startup
            var options = config.loop
            options.threadName = "pushd-loop-\(i)"
            startup.withLock { $0.spawned += 1 }
            try LoopThread.spawn { [logger, options] in
                Server.runLoop(index: i, listeners: fds, options: options, shared: shared, logger: logger, startup: startup)
            }
        }
        // Wait until every loop is accepting, or one failed.
        while true {
            let (ready, failure) = startup.withLock { ($0.ready, $0.failure) }
            if let failure {
                stop()
                waitUntilStopped()
                throw ServerError.loopStart(index: 0, reason: failure)
            }
            if ready == workerCount { break }
            usleep(2000)
        }
        shared.setServing()
        let kinds = backends
        logger.info(
            "pushd serving",
            metadata: [
                "listen": "\(inheritedListeners.isEmpty ? zip(config.listen, ports).map { "\($0.host):\($1)" }.joined(separator: ",") : "socket activation: fds \(inheritedListeners.map(String.init).joined(separator: ",")) ports \(ports.map(String.init).joined(separator: ","))")",
                "workers": "\(workerCount)",
                "event_loop": "\(Set(kinds.map(\.rawValue)).sorted().joined(separator: ","))",
            ])
    }

    private static func runLoop(
        index: Int, listeners: [Int32], options: LoopOptions, shared: ServerShared, logger: Logger,
        startup: StartupTracker
    ) {
        let loop: any EventLoop
        var fallback: LoopError?
        do {
            loop = try makeEventLoop(shared.config.eventLoop, options: options, fallbackReason: &fallback)
        } catch {
            startup.withLock { s in
                s.failure = "\(error)"
                s.stopped += 1
            }
            return
        }
        if let fallback, index == 0 {
            logger.warning("io_uring unavailable, using epoll", metadata: ["reason": "\(fallback)"])
        }
        let worker = LoopWorker(index: index, loop: loop, shared: shared, logger: logger)
        loop.handler = worker
        let waker = loop.waker
        shared.broker.inboxes[index].attach { waker.wake() }
        for fd in listeners { _ = loop.addListener(fd: fd) }
        startup.withLock { s in
            s.ready += 1
            s.kinds.append(loop.kind)
        }
        do {
            try loop.run()
        } catch {
            logger.critical("event loop failed: \(error)")
        }
        withExtendedLifetime(worker) {}
        startup.withLock { $0.stopped += 1 }
    }

    /// Asks every loop to stop after its current iteration. Safe from any thread.
    public func stop() {
        shared.setDraining()
        shared.requestStop()
        for inbox in shared.broker.inboxes { inbox.wake() }
    }

    /// Blocks until every started loop has returned, then closes the listeners and, with a
    /// state directory, records the newest event id (`EventIDLease.release`) so the next run's ids
    /// continue right above it.
    public func waitUntilStopped() {
        while true {
            let (stopped, spawned) = startup.withLock { ($0.stopped, $0.spawned) }
            if stopped >= spawned { break }
            usleep(5000)
        }
        for fd in Set(listenerFDs.withLock({ $0 }).joined()) { Glibc.close(fd) }
        listenerFDs.withLock { $0 = [] }
        if let lease = shared.lease, let error = lease.release(newest: shared.broker.lastID) {
            logger.error("event-id lease not released (the next run starts at the lease instead): \(error)")
        }
    }
}

/// Node-wide counters, updated with relaxed atomics from every loop.
public final class ServerStats: Sendable {
    private let _connections = Atomic<Int>(0)
    private let _streams = Atomic<Int>(0)
    private let _accepted = Atomic<UInt64>(0)
    private let _requests = Atomic<UInt64>(0)
    private let _badRequests = Atomic<UInt64>(0)
    private let _published = Atomic<UInt64>(0)
    private let _bytesIn = Atomic<UInt64>(0)
    private let _bytesOut = Atomic<UInt64>(0)
    private let _replayed = Atomic<UInt64>(0)
    private let _gaps = Atomic<UInt64>(0)
    private let _webSockets = Atomic<Int>(0)

    /// Open connections.
    public var connections: Int { _connections.load(ordering: .relaxed) }
    /// Open SSE streams.
    public var streams: Int { _streams.load(ordering: .relaxed) }
    /// Connections accepted since start.
    public var accepted: UInt64 { _accepted.load(ordering: .relaxed) }
    /// Requests handled.
    public var requests: UInt64 { _requests.load(ordering: .relaxed) }
    /// Requests refused by the parser.
    public var badRequests: UInt64 { _badRequests.load(ordering: .relaxed) }
    /// Events published.
    public var publishedEvents: UInt64 { _published.load(ordering: .relaxed) }
    /// Bytes received and written.
    public var bytesReceived: UInt64 { _bytesIn.load(ordering: .relaxed) }
    public var bytesSent: UInt64 { _bytesOut.load(ordering: .relaxed) }
    /// Events replayed to reconnecting subscribers; gap signals sent.
    public var replayedEvents: UInt64 { _replayed.load(ordering: .relaxed) }
    public var gapSignals: UInt64 { _gaps.load(ordering: .relaxed) }
    /// Open WebSocket connections (the WebSocket transport calls `webSocketOpened`/`Closed`).
    public var webSocketConnections: Int { _webSockets.load(ordering: .relaxed) }

    func connectionOpened() {
        _connections.add(1, ordering: .relaxed)
        _accepted.add(1, ordering: .relaxed)
    }
    func connectionClosed(wasStream: Bool) {
        _connections.subtract(1, ordering: .relaxed)
        if wasStream { _streams.subtract(1, ordering: .relaxed) }
    }
    func streamOpened() { _streams.add(1, ordering: .relaxed) }
    func request() { _requests.add(1, ordering: .relaxed) }
    func badRequest() { _badRequests.add(1, ordering: .relaxed) }
    func published(_ n: Int = 1) { _published.add(UInt64(n), ordering: .relaxed) }
    func bytesIn(_ n: Int) { _bytesIn.add(UInt64(n), ordering: .relaxed) }
    func bytesOut(_ n: Int) { _bytesOut.add(UInt64(n), ordering: .relaxed) }
    func replayed(_ n: Int) { _replayed.add(UInt64(n), ordering: .relaxed) }
    func replayGap() { _gaps.add(1, ordering: .relaxed) }
    func webSocketOpened() { _webSockets.add(1, ordering: .relaxed) }
    func webSocketClosed() { _webSockets.subtract(1, ordering: .relaxed) }
}
