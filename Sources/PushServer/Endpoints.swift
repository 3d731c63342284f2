import PushCore
import PushLoop

/// The HTTP endpoints of API.md, routed by path then method.
///
/// | path | methods | what |
/// |---|---|---|
/// | `/topics/{topic}` | POST | publish one event |
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
        if WebSocketHandshake.isUpgradeRequest(head.headers), routeWebSocket(c, head: head) { return }
        if path.hasPrefix("/topics/") {
            let raw = path.dropFirst("/topics/".count)
            switch head.method {
            case .post: publish(c, head: head, rawTopic: raw, body: body, keepAlive: keepAlive)
            case .get: subscribe(c, head: head, rawTopics: [raw])
            default: methodNotAllowed(c, allow: "GET, POST", keepAlive: keepAlive)
            }
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
        } else {
            fail(c, 404, "not_found", "no endpoint at \(head.path); see /topics/{topic}, /subscribe, /healthz", keepAlive)
        }
    }

    private func fail(_ c: Connection, _ status: Int, _ code: String, _ message: String, _ keepAlive: Bool) {
        reply(c, HTTPResponse.error(status: status, code: code, message: message, close: !keepAlive), close: !keepAlive)
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

    private func publish(_ c: Connection, head: HTTPRequestHead, rawTopic: Substring, body: [UInt8], keepAlive: Bool) {
        let topic: String
        switch topicName(rawTopic, decoded: false) {
        case .success(let t): topic = t
        case .failure(let p): return fail(c, 400, "bad_topic", p.message, keepAlive)
        }
        if head.framing == .none {
            return fail(c, 411, "length_required", "send the event data with Content-Length or chunked encoding", keepAlive)
        }
        guard let items = PercentDecoding.queryItems(head.query) else {
            return fail(c, 400, "bad_query", "the query string has a malformed percent-escape", keepAlive)
        }
        var name: String?
        for item in items where item.name == "event" {
            guard EventName.isValid(item.value) else {
                return fail(
                    c, 400, "bad_event_name", "event name must match [A-Za-z0-9._-]{1,64} and not start with \"pushd.\"", keepAlive)
            }
            name = item.value
        }
        if body.count > config.http.maxEventBytes {
            return fail(
                c, 413, "event_too_large", "event data is \(body.count) bytes; limits.max_event_bytes is \(config.http.maxEventBytes)",
                keepAlive)
        }
        // SSE is a UTF-8 text protocol (WHATWG HTML §9.2.5).
        guard String(validating: body, as: UTF8.self) != nil else {
            return fail(c, 415, "data_not_utf8", "event data must be valid UTF-8", keepAlive)
        }
        let event = shared.broker.publish(
            topic: topic, name: name, data: SharedBytes(body), fromLoop: index, nowMilliseconds: Clock.wallMilliseconds())
        shared.stats.published()
        let json = "{\"id\":\"\(event.id)\",\"topic\":\(JSON.quoted(topic))}\n"
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
        var lastEventID = head.headers["Last-Event-ID"]
        if let q = items.first(where: { $0.name == "last_event_id" }) { lastEventID = q.value }

        c.mode = .eventStream
        c.parser = nil
        c.out.enqueue(HTTPResponse.eventStreamHead(prelude: shared.ssePrelude))
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
