import COpenSSL
import PushCore
import PushLoop

/// `Sec-WebSocket-Accept` through OpenSSL (RFC 6455 §4.2.2 item 5.4: base64 of the SHA-1).
enum WebSocketAccept {
    /// `base64(SHA-1(utf8(input)))` with OpenSSL's `SHA1` and `EVP_EncodeBlock`.
    static func sha1Base64(_ input: String) -> String {
        let bytes = Array(input.utf8)
        var digest = [UInt8](repeating: 0, count: Int(SHA_DIGEST_LENGTH))
        _ = SHA1(bytes, bytes.count, &digest)
        var out = [UInt8](repeating: 0, count: 4 * ((digest.count + 2) / 3) + 1)
        let n = EVP_EncodeBlock(&out, digest, Int32(digest.count))
        return String(decoding: out[0..<Int(n)], as: UTF8.self)
    }
}

/// The WebSocket transport (API.md "Subscribe", RFC 6455, RFC 7692), on the same fan-out as SSE.
///
/// | path | what |
/// |---|---|
/// | `GET /topics/{topic}` + `Upgrade: websocket` | one topic |
/// | `GET /subscribe?topic=a&topic=b` + upgrade | several topics (none: subscribe by command) |
/// | `GET /ws/echo` + upgrade | echo, only with `websocket.echo_endpoint: true` |
///
/// Query: `format=envelope` (default) or `format=raw`, `last_event_id=<id>` (or the
/// `Last-Event-ID` header). Every refusal happens before the 101, as a JSON HTTP error.
extension LoopWorker {
    // MARK: - Upgrade (RFC 6455 §4.2)

    /// Handles an upgrade request on a WebSocket path. Returns false for other paths (the
    /// caller routes them as plain HTTP).
    func routeWebSocket(_ c: Connection, head: HTTPRequestHead) -> Bool {
        let path = head.path
        var rawTopics: [Substring] = []
        var decoded = false
        var echo = false
        guard let items = PercentDecoding.queryItems(head.query) else {
            if path.hasPrefix("/topics/") || path == "/subscribe" {
                wsRefuse(c, 400, "bad_query", "the query string has a malformed percent-escape")
                return true
            }
            return false
        }
        if path.hasPrefix("/topics/") {
            rawTopics = [path.dropFirst("/topics/".count)]
        } else if path == "/subscribe" {
            decoded = true
            rawTopics = items.filter { $0.name == "topic" }.map { Substring($0.value) }
        } else if path == "/ws/echo" && config.websocket.echoEndpoint {
            echo = true
        } else {
            return false
        }
        if shared.isDraining {
            wsRefuse(c, 503, "draining", "pushd is shutting down; reconnect shortly")
            return true
        }
        // Origin allowlist before anything else (RFC 6455 §10.2; CORS.swift).
        if let refusal = authorizeWebSocketOrigin(head) {
            wsRefuse(c, refusal.status, refusal.code, refusal.message)
            return true
        }
        let deflateOffer = config.websocket.permessageDeflate ? PerMessageDeflateConfiguration(serverNoContextTakeover: true) : nil
        let agreed: WebSocketHandshakeResponse
        switch WebSocketHandshake.negotiate(head, deflate: deflateOffer, sha1Base64: WebSocketAccept.sha1Base64) {
        case .success(let r): agreed = r
        case .failure(let e):
            let code = e.status == 405 ? "method_not_allowed" : e.status == 426 ? "upgrade_required" : "bad_handshake"
            wsRefuse(c, e.status, code, e.message, headers: e.responseHeaders.map { ($0.name, $0.value) })
            return true
        }
        guard rawTopics.count <= config.http.maxTopicsPerConnection else {
            wsRefuse(c, 400, "too_many_topics",
                     "\(rawTopics.count) topics; limits.max_topics_per_connection is \(config.http.maxTopicsPerConnection)")
            return true
        }
        var topics: [String] = []
        for raw in rawTopics {
            guard let name = decoded ? String(raw) : PercentDecoding.decode(raw) else {
                wsRefuse(c, 400, "bad_topic", "the topic has a malformed percent-escape")
                return true
            }
            if let problem = TopicName.problem(in: name) {
                wsRefuse(c, 400, "bad_topic", problem.message)
                return true
            }
            if !topics.contains(name) { topics.append(name) }
        }
        // Private topics need a token granting them, decided before the 101 (Auth.swift).
        var grant = AuthGrant.open
        switch authorizeSubscribe(head, topics: topics) {
        case .success(let g): grant = g
        case .failure(let r):
            wsRefuse(c, r.status, r.code, r.message, headers: r.status == 401 ? [("WWW-Authenticate", "Bearer")] : [])
            return true
        }
        var message = WebSocketFrameFormat.Message.envelope
        switch items.last(where: { $0.name == "format" })?.value {
        case nil, "envelope", "json": break
        case "raw": message = .raw
        case let other?:
            wsRefuse(c, 400, "bad_format", "format must be envelope or raw, not \(JSON.quoted(other))")
            return true
        }
        var lastEventID = head.headers["Last-Event-ID"]
        if let q = items.first(where: { $0.name == "last_event_id" }) { lastEventID = q.value }
        if lastEventID?.isEmpty == true { lastEventID = nil }  // empty means no cursor (API.md)

        var response = "HTTP/1.1 101 Switching Protocols\r\n"
        for (name, value) in agreed.headers { response += "\(name): \(value)\r\n" }
        response += "\r\n"
        c.out.enqueue(SharedBytes(string: response))
        c.mode = .webSocket
        c.parser = nil
        c.head = nil
        let session = WebSocketSession(
            maxMessageBytes: config.websocket.maxMessageBytes, echo: echo, message: message,
            deflate: agreed.permessageDeflate, now: now)
        c.ws = session
        c.authExpiresAt = grant.expiresAtMilliseconds ?? 0
        // Kept for later `subscribe` commands and for a reload that changes `auth.*`
        // (`reauthorizeConnections`).
        if !auth.privateTopics.isEmpty || Self.subscriberToken(head, cookieName: auth.settings.cookieName) != nil {
            session.authHead = head
        }
        if config.websocket.allowPublish, case .success(let g) = authorizePublish(head) { session.publishGrant = g }
        shared.stats.webSocketOpened()
        if !topics.isEmpty {
            wsMove(c, session, to: topics, added: Set(topics), addedCursor: lastEventID)
        }
        startSend(c)
        return true
    }

    private func wsRefuse(_ c: Connection, _ status: Int, _ code: String, _ message: String, headers: [(String, String)] = []) {
        reply(c, HTTPResponse.error(status: status, code: code, message: message, extraHeaders: headers, close: true), close: true)
    }

    // MARK: - Subscriptions

    /// Moves the connection to the log of `topics` (see `LoopFanout.resubscribe`) and queues what
    /// the move produced: unsent old-log frames, the gap signal, the replay.
    private func wsMove(
        _ c: Connection, _ s: WebSocketSession, to topics: [String], added: Set<String>, addedCursor: String?,
        ack: [UInt8]? = nil
    ) {
        let move = fanout.resubscribe(
            c.out, to: topics, format: s.format, sentThrough: s.cursor, attachedAtEvent: s.attachedAtEvent,
            added: added, addedCursor: addedCursor, nowMilliseconds: Clock.wallMilliseconds())
        s.topics = topics
        s.cursor = move.cursor
        s.attachedAtEvent = move.attachedAtEvent
        if let flushed = move.flushed { c.out.enqueue(flushed) }
        if let ack { wsSendText(c, ack) }
        if let gap = move.gap {
            wsSendText(c, WebSocketMessages.gap(lastEventID: gap.lastEventID, oldestRetained: gap.oldestRetained))
            shared.stats.replayGap()
        }
        guard case .webSocket(let format) = s.format else { return }
        for event in move.replay { c.out.enqueue(event.webSocketFrame(format)) }
        if !move.replay.isEmpty { shared.stats.replayed(move.replay.count) }
    }

    // MARK: - Reading (RFC 6455 §5, §6.2)

    /// Decodes client frames from `bytes` and acts on each message.
    func webSocketReceived(_ c: Connection, _ bytes: UnsafeRawBufferPointer) {
        guard let s = c.ws, !s.closeSent else { return }
        var rest = bytes
        while !s.closeSent && !c.closing {
            let (consumed, event) = s.parse(rest)
            rest = UnsafeRawBufferPointer(rebasing: rest[consumed...])
            switch event {
            case .needMoreData:
                startSend(c)
                return
            case .text(let payload):
                wsMessage(c, s, isText: true, payload)
            case .binary(let payload):
                wsMessage(c, s, isText: false, payload)
            case .deflated(let isText, let compressed):
                if s.inflater == nil {
                    let p = s.deflate!
                    s.inflater = PerMessageInflater(windowBits: p.clientMaxWindowBits, noContextTakeover: p.clientNoContextTakeover)
                }
                switch s.inflater!.inflate(compressed, limit: config.websocket.maxMessageBytes) {
                case .failure(.tooBig):
                    wsClose(c, .messageTooBig, "message exceeds \(config.websocket.maxMessageBytes) bytes once inflated")
                case .failure(.corrupt):
                    wsClose(c, .invalidPayloadData, "compressed message is not valid DEFLATE data")
                case .success(let payload):
                    if isText, !WebSocketUTF8Validator.isValid(payload) {
                        wsClose(c, .invalidPayloadData, "text message is not valid UTF-8")
                    } else {
                        wsMessage(c, s, isText: isText, payload)
                    }
                }
            case .ping(let payload):
                c.out.enqueue(SharedBytes(WebSocketFrameEncoder.pong(payload)))
            case .pong:
                s.pingOutstandingSince = 0
            case .close(let code, _):
                // Echo the status code (RFC 6455 §5.5.1); none when the client sent none.
                wsClose(c, code.map { WebSocketCloseCode($0) }, "")
            case .error(let code, let reason):
                wsClose(c, code, reason)
            }
            if c.out.queuedSegmentBytes > max(4 << 20, 2 * config.websocket.maxMessageBytes) {
                // Pings, commands or echoes faster than the client reads the answers.
                logger.notice("closing WebSocket \(c.peer): over \(c.out.queuedSegmentBytes) bytes of unread replies")
                close(c)
                return
            }
        }
        startSend(c)
    }

    private func wsMessage(_ c: Connection, _ s: WebSocketSession, isText: Bool, _ payload: [UInt8]) {
        if s.echo {
            let opcode: WebSocketOpcode = isText ? .text : .binary
            if let p = s.deflate, let compressed = PerMessageDeflateCodec.compress(payload, windowBits: max(9, p.serverMaxWindowBits)) {
                c.out.enqueue(WebSocketFrameEncoder.sharedFrame(opcode, payload: compressed, compressed: true))
            } else {
                c.out.enqueue(WebSocketFrameEncoder.sharedFrame(opcode, payload: payload))
            }
            return
        }
        guard isText else {
            wsSendText(c, WebSocketMessages.error(code: "binary_not_supported", message: "commands are JSON text messages"))
            return
        }
        wsCommand(c, s, payload)
    }

    private func wsSendText(_ c: Connection, _ payload: [UInt8]) {
        c.out.enqueue(WebSocketFrameEncoder.sharedFrame(.text, payload: payload))
    }

    // MARK: - Commands (API.md "Subscribe")

    private func wsCommand(_ c: Connection, _ s: WebSocketSession, _ payload: [UInt8]) {
        let command: WebSocketCommand
        switch WebSocketMessages.parseCommand(payload) {
        case .failure(let e): return wsSendText(c, WebSocketMessages.error(e))
        case .success(let cmd): command = cmd
        }
        let ref = command.ref
        func refuse(_ code: String, _ message: String) {
            wsSendText(c, WebSocketMessages.error(code: code, message: message, ref: ref))
        }
        switch command {
        case .subscribe(let topic, let cursor, _):
            let lastEventID = cursor?.isEmpty == true ? nil : cursor
            if let problem = TopicName.problem(in: topic) { return refuse("bad_topic", problem.message) }
            if s.topics.contains(topic) { return wsSendText(c, WebSocketMessages.ack(ref: ref)) }
            guard s.topics.count < config.http.maxTopicsPerConnection else {
                return refuse("too_many_topics", "limits.max_topics_per_connection is \(config.http.maxTopicsPerConnection)")
            }
            if shared.isDraining { return refuse("draining", "pushd is shutting down") }
            if let head = s.authHead {
                switch authorizeSubscribe(head, topics: [topic]) {
                case .failure(let r): return refuse(r.code, r.message)
                case .success(let grant):
                    // A private topic joined now is bounded by the token's `exp` like one named
                    // in the URL: the connection is closed with 1008 when it passes.
                    if let expiry = grant.expiresAtMilliseconds {
                        c.authExpiresAt = c.authExpiresAt == 0 ? expiry : min(c.authExpiresAt, expiry)
                    }
                }
            }
            if s.authHead == nil, auth.privateTopics.matches(topic) {
                return refuse("forbidden_topic", "topic \(topic) is private")
            }
            wsMove(c, s, to: s.topics + [topic], added: [topic], addedCursor: lastEventID, ack: WebSocketMessages.ack(ref: ref))
        case .unsubscribe(let topic, _):
            guard s.topics.contains(topic) else { return refuse("not_subscribed", "not subscribed to \(JSON.quoted(topic))") }
            wsMove(c, s, to: s.topics.filter { $0 != topic }, added: [], addedCursor: nil, ack: WebSocketMessages.ack(ref: ref))
            // The token's `exp` bounds only private streams: without one left, the connection is a
            // public subscriber again. (A later private subscribe checks the token anew.)
            if c.authExpiresAt != 0, !s.topics.contains(where: { auth.privateTopics.matches($0) }) {
                c.authExpiresAt = 0
            }
        case .publish(let topic, let name, let data, _):
            guard config.websocket.allowPublish else {
                return refuse("forbidden", "this connection has no publish rights (websocket.allow_publish is off)")
            }
            // As for HTTP (Endpoints.swift `refuseWhileDraining`): no publish is acknowledged once
            // the drain has begun.
            if shared.isDraining { return refuse("draining", "pushd is shutting down: nothing was published; retry shortly") }
            guard let grant = s.publishGrant else {
                return refuse("forbidden", "this connection has no publish rights (no valid publish token on the upgrade)")
            }
            if grant.isExpired(now: Double(Clock.wallMilliseconds()) / 1000) {
                // The upgrade's token was checked once; its `exp` still bounds what it grants.
                s.publishGrant = nil
                return refuse("token_expired", "the publish token of this connection has expired; send a fresh one with {\"op\":\"auth\"}")
            }
            if let problem = TopicName.problem(in: topic) { return refuse("bad_topic", problem.message) }
            if let denied = checkPublish(grant, topic: topic) { return refuse(denied.code, denied.message) }
            if let name, !EventName.isValid(name) {
                return refuse("bad_event_name", "event name must match [A-Za-z0-9._-]{1,64} and not start with \"pushd.\"")
            }
            let bytes = Array(data.utf8)
            guard bytes.count <= config.http.maxEventBytes else {
                return refuse("event_too_large", "event data is \(bytes.count) bytes; limits.max_event_bytes is \(config.http.maxEventBytes)")
            }
            // Charged like an HTTP publish, to the upgrade token (or the address when anonymous).
            if let wait = publishRetryAfter(c, grant: grant, events: 1) {
                return refuse("rate_limited", "over limits.publish_rate (\(config.http.publishRate) events/s); retry in \(wait) s")
            }
            let event = shared.broker.publish(
                topic: topic, name: name, data: SharedBytes(bytes), fromLoop: index, nowMilliseconds: Clock.wallMilliseconds())
            shared.stats.published()
            wsSendText(c, WebSocketMessages.ack(ref: ref, id: event.id))
        case .auth(let token, _):
            wsAuthenticate(c, s, token: token, ref: ref)
        }
    }

    /// `{"op":"auth","token":".."}` (API.md "Auth"): the connection's rights become those of
    /// `token`, exactly as if it had come as `Authorization: Bearer` on the upgrade — browsers
    /// cannot set that header. It must still grant every private topic the connection is
    /// subscribed to, whose streams are then bounded by its `exp` (sending a fresh token before
    /// `exp` keeps them open). Refused — rights unchanged — for a bad token (`invalid_token`; the
    /// connection is closed with 1008 at the `WebSocketSession.maxFailedAuth`-th) or one that does
    /// not cover a subscribed private topic (`forbidden_topic`).
    private func wsAuthenticate(_ c: Connection, _ s: WebSocketSession, token: String, ref: WebSocketCommandRef?) {
        func refuse(_ code: String, _ message: String) {
            wsSendText(c, WebSocketMessages.error(code: code, message: message, ref: ref))
        }
        if let bad = verifyToken(token) {
            s.failedAuthCommands += 1
            refuse(bad.code, bad.message)
            if s.failedAuthCommands >= WebSocketSession.maxFailedAuth {
                wsClose(c, .policyViolation, "too many invalid tokens")
            }
            return
        }
        let head = Self.bearerHead(token)
        var expiry: UInt64 = 0
        let privateTopics = s.topics.filter { auth.privateTopics.matches($0) }
        if !privateTopics.isEmpty {
            switch authorizeSubscribe(head, topics: privateTopics) {
            case .failure:
                // The token is valid (checked above), so it just does not grant them: a static
                // publish token grants no private topic, a JWT only its `pushd.subscribe` claim.
                return refuse(
                    "forbidden_topic",
                    "this token does not grant the private topics this connection is subscribed to: "
                        + privateTopics.joined(separator: ", "))
            case .success(let grant): expiry = grant.expiresAtMilliseconds ?? 0
            }
        }
        c.authExpiresAt = expiry
        s.authHead = head
        if config.websocket.allowPublish {
            if case .success(let grant) = authorizePublish(head) { s.publishGrant = grant } else { s.publishGrant = nil }
        }
        wsSendText(c, WebSocketMessages.ack(ref: ref))
    }

    // MARK: - Closing (RFC 6455 §5.5.1, §7)

    /// Queues a Close frame (nothing is sent after it: the subscriber leaves the fan-out); once it
    /// is written the connection ends with a lingering close (Linger.swift), or it is closed 2 s
    /// later if the frame cannot be written.
    func wsClose(_ c: Connection, _ code: WebSocketCloseCode?, _ reason: String) {
        guard let s = c.ws, !s.closeSent, !c.closing else { return }
        s.closeSent = true
        s.closeSentAt = now
        fanout.unsubscribe(c.out)
        c.out.enqueue(SharedBytes(WebSocketFrameEncoder.close(code: code, reason: reason)))
        c.closeAfterFlush = true
        // Once the Close frame is written the server ends the TCP connection first (RFC 6455
        // §7.1.1) with a lingering close (Linger.swift): FIN, then what the client still sends —
        // its Close reply, or the rest of a message refused with 1009 — is read and discarded
        // until its FIN. Closing with unread input would send RST, which can destroy the Close
        // frame before the client has read it.
        c.lingerOnClose = true
        if !startSend(c), c.out.isIdle { closeFlushed(c) }
    }

    /// Once a second: the 2 s Close deadline, server Pings and the Pong timeout.
    func webSocketTick(_ c: Connection) {
        guard let s = c.ws else { return }
        if s.closeSent {
            // A lingering close has its own deadline, `limits.linger_timeout`.
            if c.lingerUntil == 0, now - s.closeSentAt > 2_000_000_000 { close(c) }
            return
        }
        if c.authExpiresAt != 0, Clock.wallMilliseconds() >= c.authExpiresAt {
            // The token expired (Auth.swift): 1008 policy violation; the client reconnects with a
            // fresh token and resumes with last_event_id.
            wsClose(c, .policyViolation, "token expired")
            return
        }
        let ws = config.websocket
        if s.pingOutstandingSince != 0 {
            if ws.pongTimeout > 0, now - s.pingOutstandingSince > UInt64(ws.pongTimeout * 1e9) {
                wsClose(c, .internalError, "no pong within \(ws.pongTimeout) s")
            }
            return
        }
        if ws.pingInterval > 0, now - s.lastPingAt >= UInt64(ws.pingInterval * 1e9) {
            s.lastPingAt = now
            s.pingOutstandingSince = now
            c.out.enqueue(Self.serverPing)
            startSend(c)
        }
    }

    /// The server's Ping (RFC 6455 §5.5.2), empty payload, shared by every connection.
    static var serverPing: SharedBytes { webSocketServerPing }

    /// Drain (SIGTERM, `Drain.swift`): Close 1001 "going away" once (RFC 6455 §7.4.1); the TCP
    /// connection closes once it is written, or 2 s later.
    ///
    /// Every event already acknowledged is written first, like an SSE stream's last events: the
    /// Close 1001 is queued only once nothing of the stream is left to hand to the kernel (this
    /// is called on every drain step, each wake and tick). A subscriber that stops reading is cut
    /// at `shutdown_timeout`.
    func webSocketDrain(_ c: Connection) {
        guard let s = c.ws, !s.closeSent else { return }
        if c.out.hasPendingBytes {
            startSend(c)  // no-op while a send is in flight; coalescing holds end within their delay
            return
        }
        wsClose(c, .goingAway, "pushd is shutting down; reconnect with last_event_id")
    }

    /// Called when the `disconnect` slow policy evicted a WebSocket subscriber: a Close 1008 with
    /// the reason, then the TCP close.
    func webSocketEvicted(_ c: Connection) {
        wsClose(c, .policyViolation, "slow subscriber: queue limit exceeded; reconnect with last_event_id")
    }
}

private let webSocketServerPing = SharedBytes(WebSocketFrameEncoder.ping())
