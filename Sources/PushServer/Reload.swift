// SIGHUP: swap the configuration without dropping a connection (docs/OPERATIONS.md "Reload").
//
// The configuration in force is an immutable snapshot behind a lock; a generation counter tells
// each loop, on its next tick, that a new one is there. A loop then copies what it uses (limits,
// slow policy, timeouts, SSE settings): nothing is shared mutably between threads.
import PushCore
import Synchronization

/// One immutable configuration and what is derived from it.
final class ConfigSnapshot: Sendable {
    let config: ServerConfiguration
    /// `retry:` prelude sent to every new SSE stream.
    let ssePrelude: [UInt8]
    /// Bumped by each reload.
    let generation: UInt64
    /// Auth keys and CORS policy (Auth.swift).
    let auth: AuthContext

    init(_ config: ServerConfiguration, generation: UInt64) {
        self.config = config
        self.auth = AuthContext(config)
        self.ssePrelude = SSEEncoder.prelude(retryMilliseconds: config.sse.retryMilliseconds)
        self.generation = generation
    }
}

/// The configuration in force, replaceable from any thread.
final class LiveConfiguration: Sendable {
    private let snapshot: Mutex<ConfigSnapshot>
    private let _generation = Atomic<UInt64>(0)
    private let _reloads = Atomic<UInt64>(0)

    init(_ config: ServerConfiguration) {
        snapshot = Mutex(ConfigSnapshot(config, generation: 0))
    }

    /// The snapshot in force.
    var current: ConfigSnapshot { snapshot.withLock { $0 } }
    /// Cheap check for the loops: changes with every reload.
    var generation: UInt64 { _generation.load(ordering: .acquiring) }
    /// Reloads applied since start.
    var reloads: UInt64 { _reloads.load(ordering: .relaxed) }

    func replace(_ config: ServerConfiguration) {
        let generation = snapshot.withLock { current in
            current = ConfigSnapshot(config, generation: current.generation + 1)
            return current.generation
        }
        _reloads.add(1, ordering: .relaxed)
        _generation.store(generation, ordering: .releasing)
    }
}

extension Server {
    /// The configuration in force.
    public var configuration: ServerConfiguration { shared.config }

    /// Applies a new configuration to the running server without dropping a connection.
    ///
    /// Keys that only take effect on a restart — `listen`, `event_loop`, `workers`, `loop.*`,
    /// `replay.*` and `state_directory` (the replay rings are sized once) — keep their running values. Each loop picks
    /// the new values up on its next tick: new requests and streams use them at once, existing
    /// subscriber queues get the new queue limits and slow policy.
    /// - Returns: the keys whose new values need a restart (empty when none changed).
    @discardableResult
    public func reload(_ new: ServerConfiguration) -> [String] {
        let old = shared.config
        var applied = new
        var restart: [String] = []
        if new.listen != old.listen { restart.append("listen") }
        if new.eventLoop != old.eventLoop { restart.append("event_loop") }
        if new.workers != old.workers { restart.append("workers") }
        if new.loop != old.loop { restart.append("loop.*") }
        if new.replay != old.replay { restart.append("replay.*") }
        if new.stateDirectory != old.stateDirectory { restart.append("state_directory") }
        applied.listen = old.listen
        applied.eventLoop = old.eventLoop
        applied.workers = old.workers
        applied.loop = old.loop
        applied.replay = old.replay
        applied.stateDirectory = old.stateDirectory
        restart += reloadTLS(new.tls, old: old.tls, applied: &applied)  // TLSContext.swift
        let oldAuth = shared.live.current.auth
        shared.live.replace(applied)
        let newAuth = shared.live.current.auth
        if oldAuth.settings == newAuth.settings, oldAuth.keyFingerprint != newAuth.keyFingerprint {
            // Same paths, new content: invisible in the configuration's values, so said here.
            logger.info("auth.jwt.public_keys: a key file's content changed; open streams are checked against the new keys")
        }
        for inbox in shared.broker.inboxes { inbox.wake() }
        return restart
    }
}

extension LoopWorker {
    /// Takes a newer configuration snapshot if there is one (called on each tick).
    func pickUpConfiguration() {
        let live = shared.live
        guard live.generation != configGeneration else { return }
        let snapshot = live.current
        configGeneration = snapshot.generation
        let previousAuth = auth
        let previousAllowPublish = config.websocket.allowPublish
        auth = snapshot.auth
        applyConfiguration(snapshot.config)
        // Auth.swift: open connections are checked again when the rules (or whether a WebSocket
        // may publish at all) changed.
        if !previousAuth.sameRules(as: auth) || previousAllowPublish != config.websocket.allowPublish {
            reauthorizeConnections()
        }
    }

    /// Copies what this loop uses from `config`.
    func applyConfiguration(_ config: ServerConfiguration) {
        self.config = config
        fanout.limits = QueueLimits(events: config.subscriber.queueEvents, bytes: config.subscriber.queueBytes)
        fanout.slowPolicy = config.subscriber.slowPolicy
        fanout.coalesce = config.subscriber.coalescePolicy(saturated: saturation.isSaturated)
        let h = config.http
        parserLimits = HTTPParserLimits(
            maxRequestLineBytes: h.maxRequestLineBytes, maxHeaderBytes: h.maxHeaderBytes,
            maxHeaderCount: h.maxHeaderCount, maxBodyBytes: max(h.maxEventBytes, h.maxBatchBytes))
    }
}
