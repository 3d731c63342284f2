import PushCore
import PushLoop

/// The HTTP endpoints of API.md, routed by path then method.
///
/// | path | methods | what |
/// |---|---|---|
/// | `/topics/{topic}` | POST | publish one event |
/// | `/publish` | POST | publish a JSON batch atomically |
/// | `/topics/{topic}` | GET | SSE stream of one topic |
/// | `/subscribe?topic=a&topic=b` | GET | SSE stream of several topics |
/// | `/healthz` | GET, HEAD | 200 `ok` when serving, 503 while starting or draining |
///
/// Unknown paths are 404, known paths with another method 405 with `Allow`, always with a JSON body.
extension LoopWorker {
    func handleRequest(_ c: Connection, head: HTTPRequestHead, body: [UInt8]) {
        shared.stats.request()
        let keepAlive = head.keepAlive && !shared.isDraining
        let path = head.path
        // CORS (CORS.swift): preflights before any auth; allowed origins on every response.
        if head.method == .options { return handleOptions(c, head: head, keepAlive: keepAlive) }
        corsLines = Self.corsLines(auth.cors, head)
        defer { corsLines = "" }
        if WebSocketHandshake.isUpgradeRequest(head.headers), routeWebSocket(c, head: head) { return }
        if path.hasPrefix("/topics/") {
            let raw = path.dropFirst("/topics/".count)
            switch head.method {
            case .post: publish(c, head: head, rawTopic: raw, body: body, keepAlive: keepAlive)
            case .get: subscribe(c, head: head, rawTopics: [raw])
            default: methodNotAllowed(c, allow: "GET, POST", keepAlive: keepAlive)
            }
        } else if path == "/publish" {
            guard head.method == .post else { return methodNotAllowed(c, allow: "POST", keepAlive: keepAlive) }
            publishBatch(c, head: head, body: body, keepAlive: keepAlive)
        } else if path == "/subscribe" {
            guard head.method == .get else { return methodNotAllowed(c, allow: "GET", keepAlive: keepAlive) }
            guard let items = PercentDecoding.queryItems(head.query) else {
                return fail(c, 400, "bad_query", "the query string has a malformed percent-escape", keepAlive)
            }
            let topics = items.filter { $0.name == "topic" }.map { Substring($0.value) }
            guard !topics.isEmpty else {
                return fail(c, 400, "missing_topic", "give at least one topic: /subscribe?topic=a&topic=b", keepAlive)
            }
            subscribe(c, head: head, rawTopics: topics, alreadyDecoded: true)
        } else if path == "/healthz" {
            guard head.method == .get || head.method == .head else {
                return methodNotAllowed(c, allow: "GET, HEAD", keepAlive: keepAlive)
            }
            let ok = shared.isServing
            let body: [UInt8] = head.method == .head ? [] : Array((ok ? "ok\n" : "unavailable\n").utf8)
            reply(
                c, HTTPResponse.make(status: ok ? 200 : 503, contentType: "text/plain; charset=utf-8", body: body, close: !keepAlive),
                close: !keepAlive)
        } else if path == "/metrics" {
            serveMetrics(c, head: head, keepAlive: keepAlive)  // Metrics.swift
        } else {
            fail(c, 404, "not_found", "no endpoint at \(head.path); see /topics/{topic}, /subscribe, /healthz", keepAlive)
        }
    }

    private func fail(_ c: Connection, _ status: Int, _ code: String, _ message: String, _ keepAlive: Bool, retryAfter: Int? = nil) {
        var extra = status == 401 ? [("WWW-Authenticate", "Bearer")] : []  // RFC 6750 §3
        if let retryAfter { extra.append(("Retry-After", "\(retryAfter)")) }  // 429, RateLimiter.swift
        reply(
            c, HTTPResponse.error(status: status, code: code, message: message, extraHeaders: extra, close: !keepAlive),
            close: !keepAlive)
    }

    private func methodNotAllowed(_ c: Connection, allow: String, keepAlive: Bool) {
        reply(
            c,
            HTTPResponse.error(
                status: 405, code: "method_not_allowed", message: "this endpoint accepts \(allow)",
                extraHeaders: [("Allow", allow)], close: !keepAlive),
            close: !keepAlive)
    }

    /// Decodes and validates a topic from a path segment (or an already decoded query value).
    private func topicName(_ raw: Substring, decoded: Bool) -> Result<String, TopicName.Problem> {
        guard let name = decoded ? String(raw) : PercentDecoding.decode(raw) else { return .failure(.badCharacter(UInt8(ascii: "%"))) }
        if let problem = TopicName.problem(in: name) { return .failure(problem) }
        return .success(name)
    }

    // MARK: - Publish (API.md "Publish")

    /// A refused request: status, machine code, human message.
    struct Refusal: Error {
        var status: Int
        var code: String
        var message: String
        /// `Retry-After` seconds (429 from the publish rate limit, RateLimiter.swift).
        var retryAfter: Int?
        init(_ status: Int, _ code: String, _ message: String) {
            self.status = status
            self.code = code
            self.message = message
        }
    }

    /// Validates one event to publish: topic (already decoded), event name, data size and UTF-8.
    /// `field` prefixes messages in a batch (`events[2].`).
    private func validatedEvent(topic: String, name: String?, data: [UInt8], field: String = "") -> Result<(String, String?, SharedBytes), Refusal> {
        // In a batch, messages name the member: "events[2].topic: …".
        func at(_ member: String) -> String { field.isEmpty ? "" : field + member + ": " }
        if let problem = TopicName.problem(in: topic) { return .failure(Refusal(400, "bad_topic", at("topic") + problem.message)) }
        if let name, !EventName.isValid(name) {
            return .failure(
                Refusal(400, "bad_event_name", at("event") + "event name must match [A-Za-z0-9._-]{1,64} and not start with \"pushd.\""))
        }
        if data.count > config.http.maxEventBytes {
            return .failure(
                Refusal(
                    413, "event_too_large",
                    at("data") + "event data is \(data.count) bytes; limits.max_event_bytes is \(config.http.maxEventBytes)"))
        }
        // SSE is a UTF-8 text protocol (WHATWG HTML §9.2.5).
        guard String(validating: data, as: UTF8.self) != nil else {
            return .failure(Refusal(415, "data_not_utf8", at("data") + "event data must be valid UTF-8"))
        }
        return .success((topic, name, SharedBytes(data)))
    }

    /// The `Idempotency-Key` header (API.md "Publish"): 1–256 visible ASCII characters.
    private func idempotencyKey(_ head: HTTPRequestHead) -> Result<String?, Refusal> {
        let values = head.headers.values("Idempotency-Key")
        guard let key = values.first else { return .success(nil) }
        guard values.count == 1, !key.isEmpty, key.utf8.count <= 256, key.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return .failure(Refusal(400, "bad_idempotency_key", "Idempotency-Key must be one value of 1-256 visible ASCII characters"))
        }
        return .success(key)
    }

    private func publish(_ c: Connection, head: HTTPRequestHead, rawTopic: Substring, body: [UInt8], keepAlive: Bool) {
        let outcome = Result { () throws(Refusal) -> Broker.PublishOutcome in
            try refuseWhileDraining()
            let grant = try authorizePublish(head).get()  // Auth.swift
            guard let topic = PercentDecoding.decode(rawTopic) else {
                throw Refusal(400, "bad_topic", "the topic has a malformed percent-escape")
            }
            if let problem = TopicName.problem(in: topic) { throw Refusal(400, "bad_topic", problem.message) }
            if let refusal = checkPublish(grant, topic: topic) { throw refusal }
            if head.framing == .none {
                throw Refusal(411, "length_required", "send the event data with Content-Length or chunked encoding")
            }
            guard let items = PercentDecoding.queryItems(head.query) else {
                throw Refusal(400, "bad_query", "the query string has a malformed percent-escape")
            }
            let name = items.last(where: { $0.name == "event" })?.value
            for item in items where item.name == "event" && !EventName.isValid(item.value) {
                _ = try validatedEvent(topic: topic, name: item.value, data: []).get()
            }
            let event = try validatedEvent(topic: topic, name: name, data: body).get()
            let key = try idempotencyKey(head).get()
            try chargePublish(c, grant: grant, events: 1)
            return shared.broker.publish(
                batch: [event], idempotencyKey: key, fromLoop: index, nowMilliseconds: Clock.wallMilliseconds())
        }
        switch outcome {
        case .failure(let r):
            fail(c, r.status, r.code, r.message, keepAlive, retryAfter: r.retryAfter)
        case .success(.keyConflict):
            fail(c, 409, "idempotency_key_reused", "this Idempotency-Key was already used for another topic", keepAlive)
        case .success(.published(let events)):
            shared.stats.published(events.count)
            reply(c, HTTPResponse.json(Self.publishResult(events[0].id, events[0].topic), close: !keepAlive), close: !keepAlive)
        case .success(.replayed(let results)):
            reply(c, HTTPResponse.json(Self.publishResult(results[0].id, results[0].topic), close: !keepAlive), close: !keepAlive)
        }
    }

    /// Throws a 429 refusal when the publisher (its token, or its address when anonymous) is over
    /// `limits.publish_rate` (RateLimiter.swift).
    private func chargePublish(_ c: Connection, grant: PublishGrant, events: Int) throws(Refusal) {
        guard let wait = publishRetryAfter(c, grant: grant, events: events) else { return }
        var r = Refusal(429, "rate_limited", "over limits.publish_rate (\(config.http.publishRate) events/s); retry in \(wait) s")
        r.retryAfter = wait
        throw r
    }

    /// Once a SIGTERM drain has begun no publish is accepted (Drain.swift): its streams are about
    /// to end, so a 200 could not keep API.md's promise that the event is queued to every current
    /// subscriber. 503 `draining` with `Retry-After: 1`: nothing was published, retry against the
    /// restarted (or another) instance.
    private func refuseWhileDraining() throws(Refusal) {
        guard shared.isDraining else { return }
        var r = Refusal(503, "draining", "pushd is shutting down: nothing was published; retry shortly")
        r.retryAfter = 1
        throw r
    }

    private static func publishResult(_ id: EventID, _ topic: String) -> String {
        "{\"id\":\"\(id)\",\"topic\":\(JSON.quoted(topic))}\n"
    }

    /// `POST /publish`: `{"events":[{"topic":..,"event":..,"data":..}, …]}`, all or none, in order.
    private func publishBatch(_ c: Connection, head: HTTPRequestHead, body: [UInt8], keepAlive: Bool) {
        let outcome = Result { () throws(Refusal) -> Broker.PublishOutcome in
            try refuseWhileDraining()
            let grant = try authorizePublish(head).get()  // Auth.swift
            if head.framing == .none {
                throw Refusal(411, "length_required", "send the batch with Content-Length or chunked encoding")
            }
            if body.count > config.http.maxBatchBytes {
                throw Refusal(413, "batch_too_large", "batch is \(body.count) bytes; limits.max_batch_bytes is \(config.http.maxBatchBytes)")
            }
            let json: JSONValue
            switch JSONValue.parse(body) {
            case .success(let v): json = v
            case .failure(let e): throw Refusal(400, "bad_json", e.description)
            }
            guard case .array(let entries)? = json["events"] else {
                throw Refusal(400, "bad_batch", "the body must be an object with an \"events\" array")
            }
            guard !entries.isEmpty else { throw Refusal(400, "bad_batch", "events: the list is empty") }
            guard entries.count <= 10_000 else { throw Refusal(413, "batch_too_large", "events: at most 10000 per batch") }
            var batch: [(String, String?, SharedBytes)] = []
            batch.reserveCapacity(entries.count)
            for (i, entry) in entries.enumerated() {
                let field = "events[\(i)]."
                guard case .object = entry else { throw Refusal(400, "bad_event", "events[\(i)]: must be an object") }
                guard let topic = entry["topic"]?.stringValue else {
                    throw Refusal(400, "bad_event", field + "topic: must be a string")
                }
                guard let data = entry["data"]?.stringValue else {
                    throw Refusal(400, "bad_event", field + "data: must be a string")
                }
                var name: String?
                if let e = entry["event"] {
                    if e == .null {
                        name = nil
                    } else if let n = e.stringValue {
                        name = n
                    } else {
                        throw Refusal(400, "bad_event", field + "event: must be a string")
                    }
                }
                batch.append(try validatedEvent(topic: topic, name: name, data: Array(data.utf8), field: field).get())
                if let refusal = checkPublish(grant, topic: topic, field: field + "topic: ") { throw refusal }
            }
            let key = try idempotencyKey(head).get()
            try chargePublish(c, grant: grant, events: batch.count)
            return shared.broker.publish(
                batch: batch, idempotencyKey: key, fromLoop: index, nowMilliseconds: Clock.wallMilliseconds())
        }
        let results: [(id: EventID, topic: String)]
        switch outcome {
        case .failure(let r): return fail(c, r.status, r.code, r.message, keepAlive, retryAfter: r.retryAfter)
        case .success(.keyConflict):
            return fail(c, 409, "idempotency_key_reused", "this Idempotency-Key was already used for other topics", keepAlive)
        case .success(.published(let events)):
            shared.stats.published(events.count)
            results = events.map { ($0.id, $0.topic) }
        case .success(.replayed(let r)):
            results = r
        }
        var json = "{\"events\":["
        for (i, r) in results.enumerated() {
            if i > 0 { json += "," }
            json += "{\"id\":\"\(r.id)\",\"topic\":\(JSON.quoted(r.topic))}"
        }
        json += "]}\n"
        reply(c, HTTPResponse.json(json, close: !keepAlive), close: !keepAlive)
    }

    // MARK: - Subscribe (API.md "Subscribe", "Event ids and replay")

    private func subscribe(_ c: Connection, head: HTTPRequestHead, rawTopics: [Substring], alreadyDecoded: Bool = false) {
        if shared.isDraining {
            return fail(c, 503, "draining", "pushd is shutting down; reconnect shortly", false)
        }
        guard rawTopics.count <= config.http.maxTopicsPerConnection else {
            return fail(
                c, 400, "too_many_topics",
                "\(rawTopics.count) topics; limits.max_topics_per_connection is \(config.http.maxTopicsPerConnection)", false)
        }
        var topics: [String] = []
        for raw in rawTopics {
            switch topicName(raw, decoded: alreadyDecoded) {
            case .success(let t): if !topics.contains(t) { topics.append(t) }
            case .failure(let p): return fail(c, 400, "bad_topic", p.message, head.keepAlive)
            }
        }
        guard let items = PercentDecoding.queryItems(head.query) else {
            return fail(c, 400, "bad_query", "the query string has a malformed percent-escape", head.keepAlive)
        }
        // An empty cursor is no cursor: EventSource sends Last-Event-ID only when it has one
        // (WHATWG HTML §9.2.4), and the query form follows the same rule.
        var lastEventID = head.headers["Last-Event-ID"]
        if let q = items.first(where: { $0.name == "last_event_id" }) { lastEventID = q.value }
        if lastEventID?.isEmpty == true { lastEventID = nil }

        // Auth.swift: every private topic must be granted, so replay and live carry only those.
        switch authorizeSubscribe(head, topics: topics) {
        case .failure(let r): return fail(c, r.status, r.code, r.message, head.keepAlive)
        case .success(let grant):
            c.authExpiresAt = grant.expiresAtMilliseconds.map { max($0, 1) } ?? 0
            // Kept (only when one was given) for a reload that changes `auth.*`.
            c.streamToken = Self.subscriberToken(head, cookieName: auth.settings.cookieName)
        }

        c.mode = .eventStream
        c.parser = nil
        c.streamStarted = now
        c.out.enqueue(Self.inserting(corsLines, into: HTTPResponse.eventStreamHead(prelude: shared.ssePrelude)))
        let subscription = fanout.subscribe(
            c.out, topics: topics, format: .sse, lastEventID: lastEventID, nowMilliseconds: Clock.wallMilliseconds())
        if let gap = subscription.gap {
            c.out.enqueue(SharedBytes(SSEEncoder.gap(lastEventID: gap.lastEventID, oldestRetained: gap.oldestRetained)))
            shared.stats.replayGap()
        }
        for event in subscription.replay { c.out.enqueue(event.sse) }
        if !subscription.replay.isEmpty { shared.stats.replayed(subscription.replay.count) }
        shared.stats.streamOpened()
        startSend(c)
    }
}
