// Cross-origin requests from browsers (Fetch Standard §3.2 "CORS protocol"; `cors.*`).
//
// A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered before any
// auth: 204 with the allow headers for an allowed origin, 403 JSON and no CORS header otherwise.
// Actual responses to an allowed origin (publish JSON, errors, the SSE stream head) carry
// `Access-Control-Allow-Origin` echoing the origin and `Vary: Origin`. `*` is never sent with
// credentials (Fetch §3.2.5); the config check refuses that combination.
import PushCore

/// `cors.*` as a decision procedure.
struct CORSPolicy: Sendable {
    let origins: Set<String>
    let wildcard: Bool
    let credentials: Bool
    let maxAge: Int

    init(_ s: CORSSettings) {
        origins = Set(s.allowedOrigins.filter { $0 != "*" })
        wildcard = s.allowedOrigins.contains("*") && !s.allowCredentials
        credentials = s.allowCredentials
        maxAge = Int(s.maxAge)
    }

    var isEnabled: Bool { wildcard || !origins.isEmpty }

    func allows(_ origin: String) -> Bool { wildcard || origins.contains(origin) }

    /// The headers for an actual response to `origin` (empty when it is not allowed).
    func responseHeaders(origin: String?) -> [(String, String)] {
        guard let origin, allows(origin) else { return [] }
        if wildcard && !origins.contains(origin) { return [("Access-Control-Allow-Origin", "*")] }
        var h = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
        if credentials { h.append(("Access-Control-Allow-Credentials", "true")) }
        return h
    }

    static let allowMethods = "GET, POST, OPTIONS"
    static let allowHeaders = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID"
}

extension LoopWorker {
    /// `OPTIONS` on any path (RFC 9110 §9.3.7; a CORS preflight when it carries `Origin` and
    /// `Access-Control-Request-Method`, Fetch §3.2.2).
    func handleOptions(_ c: Connection, head: HTTPRequestHead, keepAlive: Bool) {
        let cors = auth.cors
        guard let origin = head.headers["Origin"], head.headers["Access-Control-Request-Method"] != nil else {
            return reply(
                c, HTTPResponse.make(status: 204, contentType: nil, body: [], extraHeaders: [("Allow", "GET, HEAD, POST, OPTIONS")], close: !keepAlive),
                close: !keepAlive)
        }
        guard cors.allows(origin) else {
            return reply(
                c,
                HTTPResponse.error(
                    status: 403, code: "origin_not_allowed", message: "origin \(origin) is not in cors.allowed_origins",
                    close: !keepAlive),
                close: !keepAlive)
        }
        var headers = cors.responseHeaders(origin: origin)
        headers += [
            ("Access-Control-Allow-Methods", CORSPolicy.allowMethods),
            ("Access-Control-Allow-Headers", CORSPolicy.allowHeaders),
            ("Access-Control-Max-Age", String(cors.maxAge)),
        ]
        if !headers.contains(where: { $0.0 == "Vary" }) { headers.append(("Vary", "Origin")) }
        reply(c, HTTPResponse.make(status: 204, contentType: nil, body: [], extraHeaders: headers, close: !keepAlive), close: !keepAlive)
    }

    /// CORS header lines for the current request's responses ("" when none).
    static func corsLines(_ cors: CORSPolicy, _ head: HTTPRequestHead) -> String {
        guard cors.isEnabled else { return "" }
        return cors.responseHeaders(origin: head.headers["Origin"]).map { "\($0.0): \($0.1)\r\n" }.joined()
    }

    /// `response` with `lines` inserted after its status line.
    static func inserting(_ lines: String, into response: SharedBytes) -> SharedBytes {
        guard !lines.isEmpty else { return response }
        var bytes = [UInt8](UnsafeRawBufferPointer(start: response.base, count: response.count))
        guard let cr = bytes.firstIndex(of: 13) else { return response }
        // "…200 OK" + "\r\nName: value" per line, before the status line's own CRLF.
        bytes.insert(contentsOf: Array(("\r\n" + lines).utf8).dropLast(2), at: cr)
        return SharedBytes(bytes)
    }

    /// The WebSocket upgrade's Origin check, before 101 (RFC 6455 §10.2): no `Origin` (not a
    /// browser) passes; a browser's origin must be in `cors.allowed_origins` (or match `*`), or,
    /// when that list is empty, be the same origin as the `Host` the request was sent to.
    /// Returns the 403 to answer, or nil.
    func authorizeWebSocketOrigin(_ head: HTTPRequestHead) -> Refusal? {
        guard let origin = head.headers["Origin"] else { return nil }
        let cors = auth.cors
        if cors.allows(origin) { return nil }
        if !cors.isEnabled, let host = head.headers["Host"],
            origin == "http://" + host || origin == "https://" + host
        {
            return nil
        }
        return Refusal(403, "origin_not_allowed", "origin \(origin) is not in cors.allowed_origins")
    }
}
