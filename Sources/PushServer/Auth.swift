// Publish and subscribe authorization (docs/API.md "Auth"): static bearer tokens and JWTs
// (RFC 7519) whose `pushd` claim lists topic patterns, checked with OpenSSL (AuthOpenSSL.swift).
//
// Hooks for the WebSocket upgrade (all on LoopWorker, loop thread), called before answering 101:
//   `authorizeWebSocketOrigin(head) -> Refusal?` — 403 when a browser's Origin is not allowed
//     (CORS.swift); call it first.
//   `authorizeSubscribe(head, topics:) -> Result<AuthGrant, Refusal>` — for the topics of the URL
//     (401 no/bad token, 403 topic not granted), and again with the token of the upgrade request
//     for each later `{"op":"subscribe"}` (answer `{"op":"error"}` on failure). Store
//     `grant.expiresAtMilliseconds` in `c.authExpiresAt` and end the connection when it passes
//     (LoopWorker.secondTick does this for `.eventStream`; a WebSocket mode needs the same check,
//     closing with 1008 policy violation or 4001 on a frame boundary).
//   `authorizePublish(head) -> Result<PublishGrant, Refusal>` once at upgrade when the client may
//     publish, then `checkPublish(grant, topic:)` for each `{"op":"publish"}`.
// Answer a Refusal with `HTTPResponse.error(status:code:message:)` (add `WWW-Authenticate: Bearer`
// for 401, RFC 6750 §3). Tokens must never be logged: redact the target with `redactedQuery`.
import PushCore

/// Everything auth and CORS need, derived once per configuration snapshot (rebuilt on SIGHUP).
final class AuthContext: Sendable {
    let settings: AuthSettings
    let verifier: OpenSSLJWTVerifier?
    let policy: JWTPolicy
    let privateTopics: TopicPatterns
    let staticTokens: [[UInt8]]
    let cors: CORSPolicy
    /// SHA-256 over the content of every `auth.jwt.public_keys` file as read now: a key rotated
    /// in place (same path, new content) is a change of rules too.
    let keyFingerprint: String

    init(_ config: ServerConfiguration) {
        let auth = config.auth
        settings = auth
        if auth.jwtConfigured {
            // A key that fails to load verifies nothing (the config check refuses it at start
            // and on reload; this only matters when the file changed in between).
            let keys = auth.jwtPublicKeys.compactMap { try? JWTKeyLoader.load(path: $0).get() }
            verifier = OpenSSLJWTVerifier(secrets: auth.jwtSecrets.map { Array($0.utf8) }, publicKeys: keys)
        } else {
            verifier = nil
        }
        policy = JWTPolicy(
            audience: auth.jwtAudience.isEmpty ? nil : auth.jwtAudience,
            issuer: auth.jwtIssuer.isEmpty ? nil : auth.jwtIssuer, leeway: auth.jwtLeeway)
        privateTopics = TopicPatterns(auth.privateTopics)
        staticTokens = auth.publishTokens.map { Array($0.utf8) }
        cors = CORSPolicy(config.cors)
        var keyFiles: [UInt8] = []
        for path in auth.jwtPublicKeys {
            keyFiles += Array(path.utf8) + [0]
            if case .success(let bytes) = JWTKeyLoader.readSmallFile(path) { keyFiles += bytes }
        }
        keyFingerprint = sha256Hex(keyFiles)
    }

    /// Whether `other` authorizes exactly as this context does: the same `auth.*` settings and the
    /// same JWT key material. CORS is not part of it (it is decided per request).
    func sameRules(as other: AuthContext) -> Bool {
        settings == other.settings && keyFingerprint == other.keyFingerprint
    }

    /// Whether `token` (UTF-8 bytes) is one of the configured static publish tokens
    /// (`auth.publish.tokens`). Every candidate is compared in constant time, and the loop never
    /// stops early, so the time taken says neither which token matched nor how much of it.
    func isStaticToken(_ token: [UInt8]) -> Bool {
        var matched = false
        for candidate in staticTokens where constantTimeEqual(candidate, token) { matched = true }
        return matched
    }
}

/// What an authorized subscriber may receive.
struct AuthGrant: Sendable {
    /// Wall-clock ms when the token (with leeway) expires and the stream must end; nil: never.
    var expiresAtMilliseconds: UInt64?
    static let open = AuthGrant(expiresAtMilliseconds: nil)
}

/// What an authorized publisher may publish to, and whom its events are charged to.
struct PublishGrant {
    /// The topics a publisher may publish to.
    enum Scope {
        /// Any topic: a static token, or no publish auth configured.
        case everything
        /// The topics of a JWT's `pushd.publish` claim.
        case topics(TopicPatterns)
    }

    var scope: Scope
    /// The token the publish rate is charged to (RateLimiter.swift); nil for an anonymous publish,
    /// which is charged to its client address.
    var rateIdentity: PublishRateIdentity?
    /// When the JWT that granted this stops being valid (`exp` plus leeway, seconds since the
    /// epoch); nil for static tokens, tokens without `exp` and anonymous publishing. A grant kept
    /// past one request (a WebSocket's, from its upgrade) is checked against it on every use.
    var expiresAt: Double? = nil

    /// Anonymous publishing (no publish auth configured): anything, charged to the address.
    static let anonymous = PublishGrant(scope: .everything, rateIdentity: nil)

    /// Whether the grant has expired at `now` (seconds since the epoch).
    func isExpired(now: Double) -> Bool { expiresAt.map { now >= $0 } ?? false }

    func allows(_ topic: String) -> Bool {
        switch scope {
        case .everything: return true
        case .topics(let patterns): return patterns.matches(topic)
        }
    }
}

extension LoopWorker {
    /// Authorizes a publisher from `Authorization: Bearer`. Without publish auth configured
    /// (allowed only on loopback listeners, or with `auth.publish.allow_anonymous`) anyone may.
    func authorizePublish(_ head: HTTPRequestHead) -> Result<PublishGrant, Refusal> {
        Self.authorizePublish(head, auth: auth, now: Double(Clock.wallMilliseconds()) / 1000)
    }

    /// `authorizePublish(_:)` against `auth` at `now` (seconds since the epoch), with no loop
    /// state. The grant's `rateIdentity` is the token's: a static token's digest, a JWT's
    /// subject (or its digest without `sub`); nil when no publish auth is configured.
    static func authorizePublish(_ head: HTTPRequestHead, auth: AuthContext, now: Double) -> Result<PublishGrant, Refusal> {
        guard auth.settings.publishConfigured else { return .success(.anonymous) }
        guard let token = bearerToken(head) else {
            return .failure(Refusal(401, "unauthorized", "publishing needs Authorization: Bearer <token>"))
        }
        let bytes = Array(token.utf8)
        if auth.isStaticToken(bytes) {
            return .success(PublishGrant(scope: .everything, rateIdentity: .token(digest: sha256Hex(bytes))))
        }
        guard let verifier = auth.verifier else {
            return .failure(Refusal(401, "invalid_token", "the bearer token is not valid"))
        }
        switch JWT.verify(token, verifier: verifier, policy: auth.policy, now: now) {
        case .success(let claims):
            let identity = PublishRateIdentity.jwt(claims) { sha256Hex(bytes) }
            return .success(PublishGrant(scope: .topics(claims.publish), rateIdentity: identity, expiresAt: claims.expiresAt))
        case .failure(let e): return .failure(Refusal(401, "invalid_token", e.description))
        }
    }

    /// Publishes whose body is large (over 64 KiB, chunked, or held back behind
    /// `Expect: 100-continue`) are authorized on their head, so an anonymous client cannot make
    /// pushd read megabytes: 401 (never `100 Continue`) and the connection is closed, since the
    /// unread body cannot be skipped. Small bodies are read and authorized once, in the handler.
    /// Returns whether the request was refused.
    func refusedBeforeBody(_ c: Connection, _ head: HTTPRequestHead) -> Bool {
        guard head.method == .post, auth.settings.publishConfigured,
            head.path.hasPrefix("/topics/") || head.path == "/publish"
        else { return false }
        switch head.framing {
        case .none: return false
        case .contentLength(let n): if n <= 65536 && !head.expectsContinue { return false }
        case .chunked: break
        }
        guard case .failure(let refusal) = authorizePublish(head) else { return false }
        shared.stats.request()
        if config.accessLog { accessPending = head }
        corsLines = Self.corsLines(auth.cors, head)
        defer { corsLines = "" }
        c.head = nil
        reply(
            c,
            HTTPResponse.error(
                status: refusal.status, code: refusal.code, message: refusal.message,
                extraHeaders: [("WWW-Authenticate", "Bearer")], close: true),
            close: true)
        return true
    }

    /// Checks that `token` is a credential pushd accepts at all: a configured static publish token
    /// (constant-time compare), or a JWT that verifies now (signature, `exp`/`nbf` with leeway,
    /// `aud`/`iss`). What it grants is decided by `authorizePublish` / `authorizeSubscribe`.
    /// Used by the WebSocket `{"op":"auth"}` command. Failure: 401 `invalid_token`.
    func verifyToken(_ token: String) -> Refusal? {
        if auth.isStaticToken(Array(token.utf8)) { return nil }
        guard let verifier = auth.verifier else { return Refusal(401, "invalid_token", "the token is not valid") }
        switch JWT.verify(token, verifier: verifier, policy: auth.policy, now: Double(Clock.wallMilliseconds()) / 1000) {
        case .success: return nil
        case .failure(let e): return Refusal(401, "invalid_token", e.description)
        }
    }

    /// Refuses (403) a topic the grant does not cover.
    func checkPublish(_ grant: PublishGrant, topic: String, field: String = "") -> Refusal? {
        grant.allows(topic)
            ? nil : Refusal(403, "forbidden_topic", field + "this token may not publish to topic \(topic)")
    }

    /// Authorizes a subscription to `topics` (decoded names), before any byte of the stream (or a
    /// WebSocket 101) is sent. Public topics need nothing; if any topic is private
    /// (`auth.private_topics`), a JWT must be given in `Authorization: Bearer`, the
    /// `auth.cookie_name` cookie or `?access_token=`, and its `pushd.subscribe` claim must cover
    /// every private topic. No token: 401; a token that does not grant a topic: 403. The grant's
    /// expiry is when the stream must end (see `endStream`).
    func authorizeSubscribe(_ head: HTTPRequestHead, topics: [String]) -> Result<AuthGrant, Refusal> {
        let auth = self.auth
        let privateOnes = topics.filter { auth.privateTopics.matches($0) }
        if privateOnes.isEmpty { return .success(.open) }
        guard let token = Self.subscriberToken(head, cookieName: auth.settings.cookieName) else {
            return .failure(
                Refusal(
                    401, "unauthorized",
                    "topic \(privateOnes[0]) is private: give a token in Authorization: Bearer, the "
                        + "\(auth.settings.cookieName) cookie or ?access_token="))
        }
        if auth.isStaticToken(Array(token.utf8)) {
            // A valid credential, just not one that can grant a private topic.
            return .failure(
                Refusal(403, "forbidden_topic", "a static publish token grants no private topic (topic \(privateOnes[0]))"))
        }
        guard let verifier = auth.verifier else { return .failure(Refusal(401, "invalid_token", "the token is not valid")) }
        let claims: JWTClaims
        switch JWT.verify(token, verifier: verifier, policy: auth.policy, now: Double(Clock.wallMilliseconds()) / 1000) {
        case .success(let c): claims = c
        case .failure(let e): return .failure(Refusal(401, "invalid_token", e.description))
        }
        if let denied = privateOnes.first(where: { !claims.subscribe.matches($0) }) {
            return .failure(Refusal(403, "forbidden_topic", "this token may not subscribe to topic \(denied)"))
        }
        // Clamped: an absurd `exp` (1e300) must not trap the conversion.
        return .success(AuthGrant(expiresAtMilliseconds: claims.expiresAt.map { UInt64(min(max(1, $0 * 1000), 1e15)) }))
    }

    /// A request head with no credential at all.
    static let anonymousHead = HTTPRequestHead(
        method: .get, target: "/", path: "/", query: nil, versionMinor: 1, headers: HTTPHeaders(),
        framing: .none, keepAlive: true, expectsContinue: false)

    /// A request head carrying only `Authorization: Bearer <token>`: how a token that did not come
    /// on a request (the WebSocket `auth` command, a stream's kept token) is authorized.
    static func bearerHead(_ token: String) -> HTTPRequestHead {
        var headers = HTTPHeaders()
        headers.append(name: "Authorization", value: "Bearer " + token)
        return HTTPRequestHead(
            method: .get, target: "/", path: "/", query: nil, versionMinor: 1, headers: headers,
            framing: .none, keepAlive: true, expectsContinue: false)
    }

    /// After a reload changed the auth rules (`AuthContext.sameRules(as:)` false: `auth.*`, or a
    /// JWT key file's content) or `websocket.allow_publish`, checks every open stream again as if it subscribed now, so a
    /// revoked token, a removed key or a topic made private takes effect on open connections too:
    /// - an SSE stream with a private topic whose kept token no longer grants it (or that has no
    ///   token: the topic became private) is ended cleanly (`endStream`): the client reconnects,
    ///   is authorized anew and replays what it missed with `Last-Event-ID`;
    /// - a WebSocket likewise is closed with 1008 "authorization changed by a configuration
    ///   reload"; one that stays gets its publish rights and expiry from the new rules.
    /// Streams that keep every topic get the new token expiry (0 when none is private any more).
    func reauthorizeConnections() {
        var ended = 0
        var closed = 0
        for case let c? in connections where !c.closing && !c.closeAfterFlush {
            switch c.mode {
            case .eventStream:
                guard let topics = c.out.log?.key.topics else { continue }
                guard topics.contains(where: { auth.privateTopics.matches($0) }) else {
                    c.authExpiresAt = 0
                    continue
                }
                if let token = c.streamToken, case .success(let grant) = authorizeSubscribe(Self.bearerHead(token), topics: topics) {
                    c.authExpiresAt = grant.expiresAtMilliseconds.map { max($0, 1) } ?? 0
                } else {
                    endStream(c)
                    ended += 1
                }
            case .webSocket:
                guard let s = c.ws, !s.closeSent else { continue }
                if s.topics.contains(where: { auth.privateTopics.matches($0) }) {
                    guard let head = s.authHead, case .success(let grant) = authorizeSubscribe(head, topics: s.topics) else {
                        wsClose(c, .policyViolation, "authorization changed by a configuration reload")
                        closed += 1
                        continue
                    }
                    c.authExpiresAt = grant.expiresAtMilliseconds ?? 0
                } else {
                    c.authExpiresAt = 0
                }
                if config.websocket.allowPublish, case .success(let grant) = authorizePublish(s.authHead ?? Self.anonymousHead) {
                    s.publishGrant = grant
                } else {
                    s.publishGrant = nil
                }
            case .http:
                continue
            }
        }
        if ended + closed > 0 {
            logger.notice(
                "auth rules changed by the reload: ended \(ended) SSE stream(s) and closed \(closed) WebSocket(s) that the new rules do not authorize; their clients reconnect and are authorized anew",
                metadata: ["loop": "\(index)"])
        }
    }

    /// `Authorization: Bearer <token>` (RFC 6750 §2.1); the scheme is case-insensitive.
    static func bearerToken(_ head: HTTPRequestHead) -> String? {
        guard let value = head.headers["Authorization"] else { return nil }
        let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingCharacters(inSet: " \t")
        return token.isEmpty ? nil : token
    }

    /// The subscriber's token: the Authorization header, else the cookie, else `?access_token=`.
    static func subscriberToken(_ head: HTTPRequestHead, cookieName: String) -> String? {
        if let t = bearerToken(head) { return t }
        for header in head.headers.values("Cookie") {
            for pair in header.split(separator: ";") {
                let p = pair.trimmingCharacters(inSet: " \t")
                if let eq = p.firstIndex(of: "="), p[..<eq] == cookieName {
                    let v = String(p[p.index(after: eq)...])
                    if !v.isEmpty { return v }
                }
            }
        }
        if let items = PercentDecoding.queryItems(head.query),
            let t = items.last(where: { $0.name == "access_token" })?.value, !t.isEmpty
        {
            return t
        }
        return nil
    }

    /// The query string with every `access_token` value replaced by `REDACTED` (access log).
    static func redactedQuery(_ query: String) -> String {
        // Names are compared decoded, as the query parser reads them (`access%5Ftoken` too).
        guard query.contains("token") || query.contains("%") else { return query }
        return query.split(separator: "&", omittingEmptySubsequences: false).map { item -> String in
            let name = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let decoded = PercentDecoding.decode(name, plusIsSpace: true) ?? String(name)
            return decoded == "access_token" ? "access_token=REDACTED" : String(item)
        }.joined(separator: "&")
    }
}

extension StringProtocol {
    fileprivate func trimmingCharacters(inSet set: String) -> String {
        let chars = Set(set)
        var s = Substring(self)
        while let f = s.first, chars.contains(f) { s.removeFirst() }
        while let l = s.last, chars.contains(l) { s.removeLast() }
        return String(s)
    }
}
