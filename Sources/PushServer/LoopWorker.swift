#if canImport(Glibc)
import Glibc
#endif
import Logging
import PushCore
import PushLoop

/// Everything one loop thread runs: the `LoopHandler` for its connections, its share of the
/// fan-out, and its timers. Lives and dies on the loop's thread.
final class LoopWorker: LoopHandler {
    let index: Int
    let loop: any EventLoop
    let shared: ServerShared
    let fanout: LoopFanout
    let logger: Logger
    /// Limits for new connections' parsers (replaced by a reload).
    var parserLimits: HTTPParserLimits
    /// The configuration this loop runs with (replaced by a reload, see Reload.swift).
    var config: ServerConfiguration
    /// Generation of `config` (`LiveConfiguration.generation`).
    var configGeneration: UInt64 = 0
    /// Auth and CORS of `config` (Auth.swift, CORS.swift).
    var auth: AuthContext
    /// CORS header lines for the responses of the request being handled (CORS.swift).
    var corsLines = ""
    /// This loop's heartbeat, lag and counters (Metrics.swift).
    let loopMetrics: LoopMetrics
    /// Events handed to the kernel for this loop's subscribers (published to `loopMetrics` per tick).
    var deliveredEvents: UInt64 = 0
    /// `drainStep` ran once (listeners stopped).
    var drainStarted = false
    /// Monotonic ns when this loop began to drain (Drain.swift).
    var drainStartedAt: UInt64 = 0
    /// Test-only stall deadline (Stall.swift), monotonic ns; 0 when off.
    var stallAt: UInt64 = 0
    /// The request `handleRequestLogged` is handling, until its status is logged.
    var accessPending: HTTPRequestHead?
    /// Monotonic ns of the previous tick (loop lag).
    var lastTick: UInt64 = 0
    /// Whether this loop is saturated, from its thread's running and run-queue times
    /// (ThreadLoad, ServiceTick.swift): while it
    /// is, `subscriber.busy_coalesce_delay` applies.
    var saturation = SaturationMonitor()
    /// This loop thread's busy-time reader, created on the first tick (on the loop's thread).
    var threadLoad: ThreadLoad?
    /// Connections in a lingering close (Linger.swift), checked on every tick.
    var lingering: [ConnectionID] = []
    /// Accept pauses not logged yet, and when the last one was logged (monotonic ns; 0: never):
    /// `acceptPaused` logs at most one warning per 10 s.
    private var acceptPausesUnlogged = 0
    private var acceptPauseLoggedAt: UInt64 = 0

    /// Connections by slot.
    private(set) var connections: [Connection?] = []
    private(set) var now: UInt64
    private var lastSecondTick: UInt64 = 0

    init(index: Int, loop: any EventLoop, shared: ServerShared, logger: Logger) {
        self.index = index
        self.loop = loop
        self.shared = shared
        let snapshot = shared.live.current
        self.config = snapshot.config
        self.configGeneration = snapshot.generation
        self.auth = snapshot.auth
        self.loopMetrics = shared.loopMetrics[index]
        self.logger = logger
        self.now = Clock.monotonicNanoseconds()
        self.stallAt = TestStall.deadline(loop: index, now: now)
        self.fanout = LoopFanout(
            loopIndex: index, broker: shared.broker,
            limits: QueueLimits(events: shared.config.subscriber.queueEvents, bytes: shared.config.subscriber.queueBytes),
            slowPolicy: shared.config.subscriber.slowPolicy)
        let h = shared.config.http
        self.parserLimits = HTTPParserLimits(
            maxRequestLineBytes: h.maxRequestLineBytes, maxHeaderBytes: h.maxHeaderBytes,
            maxHeaderCount: h.maxHeaderCount, maxBodyBytes: max(h.maxEventBytes, h.maxBatchBytes))
        fanout.coalesce = shared.config.subscriber.coalescePolicy(saturated: false)
    }

    // MARK: - Connection table

    func connection(_ id: ConnectionID) -> Connection? {
        let slot = Int(id.slot)
        guard slot < connections.count, let c = connections[slot], c.id == id else { return nil }
        return c
    }

    // MARK: - LoopHandler

    func accepted(_ id: ConnectionID, peer: PeerAddress, listener: Int) {
        let slot = Int(id.slot)
        if slot >= connections.count {
            connections.append(contentsOf: repeatElement(nil, count: slot - connections.count + 1))
        }
        connections[slot] = Connection(
            id: id, peer: peer, limits: parserLimits,
            receiveSlack: config.loop.receiveBufferCount * config.loop.receiveBufferSize, now: now)
        shared.stats.connectionOpened()
        startTLS(connections[slot]!)  // TLSWorker.swift: a session when TLS is on (before any reply)
        guard admitConnection(connections[slot]!) else { return }  // ConnectionLimits.swift
        if shared.isDraining {
            let c = connections[slot]!
            reply(c, HTTPResponse.error(status: 503, code: "draining", message: "pushd is shutting down", close: true), close: true)
        }
    }

    func received(_ id: ConnectionID, _ bytes: UnsafeRawBufferPointer) {
        guard let c = connection(id), !c.closing else { return }
        shared.stats.bytesIn(bytes.count)
        if c.lingerUntil != 0 { return lingerDiscard(c, bytes.count) }  // Linger.swift
        if let tls = c.tls {
            receivedTLS(c, tls, bytes)  // TLSWorker.swift: decrypts, then calls handlePlaintext
            return
        }
        handlePlaintext(c, bytes)
    }

    /// Handles received plaintext: the bytes as read, or as decrypted on a TLS connection.
    ///
    /// Pipelining backpressure (`limits.max_pipelined_requests`): once that many responses wait to
    /// be written, parsing stops at the next request boundary, the unparsed bytes wait in
    /// `c.backlog`, and the loop stops reading the socket (`EventLoop.pauseReceiving`), so TCP flow
    /// control holds the client back; `sendCompleted` resumes parsing and, once the backlog is
    /// empty, reading. Bytes the kernel had already handed over join the backlog; past its bound
    /// (one largest request plus one iteration of receive buffers) the connection is cut.
    func handlePlaintext(_ c: Connection, _ bytes: UnsafeRawBufferPointer) {
        if c.mode == .webSocket { return webSocketReceived(c, bytes) }
        guard c.mode == .http, !c.closeAfterFlush else { return }  // a stream reads nothing more
        if !c.backlog.isEmpty {
            // Stalled: the new bytes go behind those already waiting, in order.
            if !c.backlog.append(bytes) { backlogOverflow(c) }
            return
        }
        let left = parseRequests(c, bytes)
        if left > 0, !c.closing, !c.backlog.append(UnsafeRawBufferPointer(rebasing: bytes.suffix(left))) {
            backlogOverflow(c)
        }
        syncReceivePause(c)
    }

    /// Keeps the socket's reading paused exactly while requests wait in the backlog.
    private func syncReceivePause(_ c: Connection) {
        let paused = !c.backlog.isEmpty && !c.closing
        guard paused != c.receivePaused else { return }
        c.receivePaused = paused
        if paused { loop.pauseReceiving(c.id) } else { loop.resumeReceiving(c.id) }
    }

    /// Parses and handles requests from `bytes` and starts the send of their responses. Returns
    /// how many bytes at the end of `bytes` were left unparsed because the pipeline is full
    /// (0 otherwise: everything was parsed, kept by the parser as a partial head, handed to the
    /// WebSocket decoder, or dropped because the connection stopped reading requests).
    private func parseRequests(_ c: Connection, _ bytes: UnsafeRawBufferPointer) -> Int {
        var rest = bytes
        // Parse until the parser asks for more bytes: `.end` of a body-less request comes back
        // with nothing consumed, possibly after the whole buffer was used up.
        parsing: while c.mode == .http, !c.closeAfterFlush, !c.closing {
            guard var parser = c.parser else { return 0 }
            if rest.count > 0, c.head == nil, !parser.hasPartialHead,
                c.out.unwrittenSegments >= config.http.maxPipelinedRequests
            {
                // At a request boundary with the pipeline full: read no further ahead.
                startSend(c)
                return rest.count
            }
            let (consumed, event) = parser.parse(rest)
            c.parser = parser
            let chunk = rest
            rest = UnsafeRawBufferPointer(rebasing: rest[consumed...])
            switch event {
            case .needMoreData:
                if parser.hasPartialHead, c.phaseStarted == 0 { c.phaseStarted = now }
                break parsing
            case .head(let head):
                c.phaseStarted = 0
                c.lastActivity = now
                if refusedBeforeBody(c, head) { break parsing }  // Auth.swift: 401 before a large body
                c.head = head
                c.phaseStarted = head.framing == .none ? 0 : now  // the body's clock
                c.body.removeAll(keepingCapacity: false)
                if case .contentLength(let n) = head.framing { c.body.reserveCapacity(n) }
                if head.expectsContinue, head.framing != .none, head.versionMinor >= 1 {
                    c.out.enqueue(HTTPResponse.continueResponse)
                }
            case .body(let range):
                c.body.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[range]))
            case .end:
                c.phaseStarted = 0
                if let head = c.head {
                    c.head = nil
                    let body = c.body
                    c.body = []
                    handleRequestLogged(c, head: head, body: body)  // AccessLog.swift
                }
            case .error(let e):
                shared.stats.badRequest()
                reply(c, HTTPResponse.error(status: e.status, code: e.code, message: e.message, close: true), close: true)
                return 0
            }
            if c.out.queuedSegmentBytes > 4 << 20 {
                // The client pipelines requests without reading the answers (large answers).
                logger.notice("closing \(c.peer): over 4 MiB of unread responses")
                close(c)
                return 0
            }
        }
        // Frames the client sent right behind its upgrade request.
        if c.mode == .webSocket, rest.count > 0 {
            webSocketReceived(c, rest)
            return 0
        }
        startSend(c)
        return 0
    }

    /// Parses what waits in the backlog once the pipeline has room again (from `sendCompleted`).
    /// A peer that half-closed while stalled is answered in full, then the connection closes.
    private func resumeParsing(_ c: Connection) {
        guard !c.backlog.isEmpty, c.mode == .http, !c.closing,
            c.out.unwrittenSegments < config.http.maxPipelinedRequests
        else { return }
        // Parse from a local copy's storage (moved out, not copied) so nothing in the handlers
        // touches the backlog while its bytes are being read.
        var backlog = c.backlog
        c.backlog.removeAll()
        let left = backlog.withUnsafeBytes { parseRequests(c, $0) }
        guard !c.closing else { return }
        backlog.removeFirst(backlog.count - left)
        c.backlog = backlog
        syncReceivePause(c)
        if c.backlog.isEmpty, c.peerClosed, c.mode == .http, !c.closeAfterFlush {
            c.closeAfterFlush = true  // every request the peer sent before its FIN is answered
            if !c.out.isSending, c.out.isIdle { closeFlushed(c) }
        }
    }

    /// The backlog would pass its bound: the client keeps sending while it does not read.
    private func backlogOverflow(_ c: Connection) {
        logger.notice(
            "closing \(c.peer): pipelined past \(config.http.maxPipelinedRequests) unread responses and \(c.backlog.limit) waiting bytes")
        close(c)
    }

    func receiveEnded(_ id: ConnectionID, error: Int32) {
        guard let c = connection(id), !c.closing else { return }
        if c.lingerUntil != 0 { return close(c) }  // Linger.swift: the peer's FIN ends the linger
        c.peerClosed = true
        if c.mode == .http, error == 0, !c.backlog.isEmpty { return }  // answered by resumeParsing
        if c.mode == .webSocket {
            // Write a queued Close frame first; a peer gone without one is cut at once.
            if c.ws?.closeSent == true && error == 0 { c.closeAfterFlush = true } else { close(c) }
            return
        }
        if c.mode == .eventStream || error != 0 || c.out.isIdle {
            close(c)
        } else {
            c.closeAfterFlush = true  // answer what was asked, then close
        }
    }

    func sendCompleted(_ id: ConnectionID, result: Int) {
        guard let c = connection(id), !c.closing else { return }
        if result <= 0 {
            close(c)
            return
        }
        if let tls = c.tls {
            // TLSWorker.swift: false while ciphertext of this send is still being written.
            guard tlsSendCompleted(c, tls, result) else { return }
        } else {
            c.out.completed(result)
            shared.stats.bytesOut(result)
        }
        if !c.backlog.isEmpty {
            resumeParsing(c)  // the pipeline may have room again
            guard !c.closing else { return }
        }
        if c.evictedAt != 0 {
            // Detached by the disconnect policy: finish the bytes already handed out (a short send
            // leaves the rest of its events), so the stream ends on an event boundary; then close.
            if !startSend(c) && !c.out.isSending { close(c) }
            return
        }
        if !startSend(c) && c.closeAfterFlush && c.out.isIdle {
            closeFlushed(c)  // Linger.swift
        }
    }

    func closed(_ id: ConnectionID) {
        let slot = Int(id.slot)
        guard slot < connections.count, let c = connections[slot], c.id == id else { return }
        connections[slot] = nil
        if let ticket = c.admission { shared.admission.release(ticket) }
        shared.stats.connectionClosed(wasStream: c.mode == .eventStream)
        if c.mode == .webSocket { shared.stats.webSocketClosed() }
    }

    func woken() {
        if shared.stopRequested { loop.stop() } else if shared.isDraining { drainStep() }
    }

    func tick(now: UInt64) {
        serviceTick(now: now)  // heartbeat, lag, metrics, reload (Metrics.swift, Reload.swift)
        self.now = now
        if !lingering.isEmpty { expireLingering() }  // Linger.swift
        if shared.stopRequested {
            loop.stop()
            return
        }
        if shared.isDraining { drainStep() }
        guard now - lastSecondTick >= 1_000_000_000 else { return }
        lastSecondTick = now
        secondTick()
    }

    /// Counts the pause (`pushd_accept_paused_total`) and warns at most once per 10 s, with the
    /// number of pauses since the previous warning: the operator must raise the descriptor limit
    /// (systemd `LimitNOFILE=`) or lower `limits.max_connections`.
    func acceptPaused(listener: Int, error: Int32) {
        loopMetrics.acceptPauses.add(1, ordering: .relaxed)
        acceptPausesUnlogged += 1
        let at = Clock.monotonicNanoseconds()
        guard acceptPauseLoggedAt == 0 || at &- acceptPauseLoggedAt >= 10_000_000_000 else { return }
        let name: String
        switch error {
        case EMFILE: name = "EMFILE: pushd's file descriptor limit is reached"
        case ENFILE: name = "ENFILE: the system's file descriptor limit is reached"
        case ENOBUFS, ENOMEM: name = "\(error == ENOBUFS ? "ENOBUFS" : "ENOMEM"): the kernel is out of memory for sockets"
        default: name = "errno \(error)"
        }
        logger.warning(
            "accept paused for \(config.loop.acceptBackoffMilliseconds) ms (\(name)); new connections wait in the listen backlog. \(acceptPausesUnlogged) pause(s) since the last warning; raise LimitNOFILE= or lower limits.max_connections (now \(config.http.maxConnections > 0 ? config.http.maxConnections : ConnectionAdmission.derivedMaxConnections))",
            metadata: ["loop": "\(index)", "listener": "\(listener)"])
        acceptPausesUnlogged = 0
        acceptPauseLoggedAt = at
    }

    func iterationWillEnd() {
        now = Clock.monotonicNanoseconds()
        fanout.drainInbox()
        fanout.forEachReadySubscriber(now: now) { queue in
            if let c = connection(Connection.id(fromToken: queue.token)) { startSend(c) }
        }
        if fanout.holdDeadline != 0 { loop.wakeBy(fanout.holdDeadline) }  // held back: CoalescePolicy
        closeEvicted()
    }

    // MARK: - Writing

    /// Starts the connection's next send if none is in flight. Returns whether one started.
    @discardableResult
    func startSend(_ c: Connection) -> Bool {
        if let tls = c.tls { return !c.closing && startTLSSend(c, tls) }  // TLSWorker.swift: encrypts
        let deliveredBefore = c.out.deliveredEvents
        guard !c.closing, let bytes = c.out.nextSend() else { return false }
        deliveredEvents &+= c.out.deliveredEvents &- deliveredBefore  // /metrics
        c.lastActivity = now
        loop.send(c.id, bytes)
        return true
    }

    /// Queues a complete response; a `close` response ends the connection once written.
    func reply(_ c: Connection, _ response: SharedBytes, close: Bool = false) {
        let response = corsLines.isEmpty ? response : Self.inserting(corsLines, into: response)
        if accessPending != nil { noteResponse(c, response) }
        c.out.enqueue(response)
        if close {
            c.closeAfterFlush = true
            noteLingerOnClose(c, response)  // Linger.swift
        }
        if !startSend(c), c.closeAfterFlush, c.out.isIdle { closeFlushed(c) }
    }

    func close(_ c: Connection) {
        guard !c.closing else { return }
        c.closing = true
        if c.mode != .http { fanout.unsubscribe(c.out) }
        c.out.discardQueued()
        c.parser = nil
        c.backlog.removeAll()
        loop.close(c.id)
    }

    /// Ends an event stream cleanly: no further event is queued; what was already handed to the
    /// kernel (whole events) is written, then the connection closes. The client reconnects with
    /// Last-Event-ID and replays whatever it had not received.
    func endStream(_ c: Connection) {
        fanout.unsubscribe(c.out)
        c.closeAfterFlush = true
        if !c.out.isSending && !c.out.hasPendingBytes { finish(c) }
    }

    private func closeEvicted() {
        for report in fanout.takeSlowReports() {
            guard let c = connection(Connection.id(fromToken: report.queue.token)) else { continue }
            let topics = report.topics.joined(separator: ",")
            switch report.policy {
            case .disconnect:
                logger.notice(
                    "slow subscriber disconnected: queue over \(config.subscriber.queueEvents) events or \(config.subscriber.queueBytes) bytes",
                    metadata: ["peer": "\(c.peer)", "topic": "\(topics)"])
            case .drop:
                c.slowDrops += 1
                // The first drop of a connection is a notice; repeats would flood the log.
                logger.log(
                    level: c.slowDrops == 1 ? .notice : .debug,
                    "slow subscriber skipped \(report.skippedEvents) events",
                    metadata: ["peer": "\(c.peer)", "topic": "\(topics)"])
            }
        }
        for queue in fanout.takeEvicted() {
            guard let c = connection(Connection.id(fromToken: queue.token)) else { continue }
            if c.mode == .webSocket {
                webSocketEvicted(c)
                continue
            }
            c.evictedAt = now
            if !c.out.isSending { close(c) }
        }
    }

    // MARK: - Timers

    /// Once a second: heartbeats, timeouts, queue maintenance.
    private func secondTick() {
        fanout.maintainAll()
        closeEvicted()
        loopMetrics.queuedBytes.store(fanout.retainedBytes, ordering: .relaxed)
        let heartbeat = UInt64(config.sse.heartbeat * 1e9)
        let maxStreamAge = UInt64(config.sse.maxStreamAge * 1e9)
        let headerTimeout = UInt64(config.http.headerTimeout * 1e9)
        let bodyTimeout = UInt64(config.http.bodyTimeout * 1e9)
        let disconnectGrace = UInt64(config.subscriber.disconnectGrace * 1e9)  // ServerConfiguration.swift
        let idleTimeout = UInt64(config.http.idleTimeout * 1e9)
        let wallNow = Clock.wallMilliseconds()  // token expiry (Auth.swift)
        for case let c? in connections where !c.closing && c.lingerUntil == 0 {
            switch c.mode {
            case .eventStream:
                if c.evictedAt != 0 && now - c.evictedAt > disconnectGrace {
                    close(c)  // its last events were not taken in time: the peer stopped reading
                } else if c.authExpiresAt != 0, !c.closeAfterFlush, wallNow >= c.authExpiresAt {
                    endStream(c)  // its token expired: the client reconnects with a fresh one
                } else if maxStreamAge > 0, c.out.log != nil, now - c.streamStarted >= maxStreamAge {
                    endStream(c)
                } else if heartbeat > 0, c.out.isIdle, now - c.lastActivity >= heartbeat {
                    c.out.enqueue(ServerShared.heartbeatBytes)
                    startSend(c)
                }
            case .webSocket:
                webSocketTick(c)
            case .http:
                if c.head == nil, c.phaseStarted != 0, headerTimeout > 0, now - c.phaseStarted > headerTimeout {
                    reply(
                        c,
                        HTTPResponse.error(
                            status: 408, code: "request_timeout",
                            message: "the request head did not arrive within \(config.http.headerTimeout) s", close: true),
                        close: true)
                } else if c.head != nil, c.phaseStarted != 0, bodyTimeout > 0, now - c.phaseStarted > bodyTimeout {
                    c.head = nil
                    c.phaseStarted = 0
                    reply(
                        c,
                        HTTPResponse.error(
                            status: 408, code: "request_timeout",
                            message: "the request body did not arrive within \(config.http.bodyTimeout) s", close: true),
                        close: true)
                } else if c.head == nil, c.out.isIdle, idleTimeout > 0, now - c.lastActivity > idleTimeout {
                    finish(c)
                } else if c.out.isSending, idleTimeout > 0, now - c.lastActivity > idleTimeout {
                    // An answer has not been taken for the whole idle timeout: the client stopped
                    // reading (with pipelining, its requests wait paused behind it).
                    logger.notice("closing \(c.peer): answers not read for \(config.http.idleTimeout) s")
                    close(c)
                }
            }
        }
        if index == 0 {
            shared.broker.expire(nowMilliseconds: Clock.wallMilliseconds())
            if let lease = shared.lease, let error = lease.extendIfNeeded(newest: shared.broker.lastID, nowMilliseconds: Clock.wallMilliseconds()) {
                logger.error("event-id lease not extended: \(error)")
            }
        }
    }
}
