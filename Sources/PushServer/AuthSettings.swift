// `auth.*` and `cors.*` configuration values and the checks that need several of them.
import PushCore

/// `auth.*` — who may publish, and who may subscribe to private topics (docs/API.md "Auth").
public struct AuthSettings: Sendable, Equatable {
    /// `auth.publish.tokens`: static bearer tokens that may publish to every topic.
    public var publishTokens: [String] = []
    /// `auth.publish.allow_anonymous`: allow publishing without a token on non-loopback listeners.
    public var allowAnonymousPublish = false
    /// `auth.jwt.secrets`: HMAC secrets for HS256/HS384/HS512 (RFC 7518 §3.2), at least 32 bytes.
    public var jwtSecrets: [String] = []
    /// `auth.jwt.public_keys`: PEM files of RSA (RS256), P-256 (ES256) or Ed25519 (EdDSA) public keys.
    public var jwtPublicKeys: [String] = []
    /// `auth.jwt.audience`: required `aud` value; empty means not checked.
    public var jwtAudience = ""
    /// `auth.jwt.issuer`: required `iss` value; empty means not checked.
    public var jwtIssuer = ""
    /// `auth.jwt.leeway`: seconds of clock skew tolerated on `exp` and `nbf`.
    public var jwtLeeway: Double = 30
    /// `auth.private_topics`: topics (exact names, `prefix/*`, `*`) that need a token to subscribe.
    public var privateTopics: [String] = []
    /// `auth.cookie_name`: the cookie that may carry a subscriber's JWT.
    public var cookieName = "pushd_token"
    public init() {}

    /// Whether any JWT key is configured.
    public var jwtConfigured: Bool { !jwtSecrets.isEmpty || !jwtPublicKeys.isEmpty }
    /// Whether publishing needs a token.
    public var publishConfigured: Bool { !publishTokens.isEmpty || jwtConfigured }
}

/// `cors.*` — cross-origin browser access (Fetch Standard §3.2 "CORS protocol").
public struct CORSSettings: Sendable, Equatable {
    /// `cors.allowed_origins`: origins (`https://app.example.com`) allowed to call pushd; `*` any
    /// origin (only without credentials). Empty: no CORS headers at all.
    public var allowedOrigins: [String] = []
    /// `cors.allow_credentials`: send `Access-Control-Allow-Credentials: true` (cookies).
    public var allowCredentials = false
    /// `cors.max_age`: seconds a browser may cache a preflight answer.
    public var maxAge: Double = 600
    public init() {}
}

/// Checks of `auth.*` / `cors.*` that need several keys or the key files (used by PushConfig).
public enum AuthConfigCheck {
    /// Whether a listen host is loopback-only.
    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// Every problem, as `(key path, what is wrong, offending value)`. Secrets are never quoted.
    public static func problems(_ config: ServerConfiguration) -> [(path: String, message: String, got: String?)] {
        var result: [(String, String, String?)] = []
        let auth = config.auth
        if !auth.publishConfigured && !auth.allowAnonymousPublish,
            let open = config.listen.first(where: { !isLoopback($0.host) })
        {
            result.append((
                "auth.publish",
                "publishing without auth is allowed only when every listener is on loopback: set auth.publish.tokens "
                    + "or auth.jwt.secrets / auth.jwt.public_keys, or auth.publish.allow_anonymous: true",
                "listen \(open)"
            ))
        }
        for (i, path) in auth.jwtPublicKeys.enumerated() {
            if case .failure(let why) = JWTKeyLoader.load(path: path) {
                result.append(("auth.jwt.public_keys[\(i)]", why.message, path))
            }
        }
        if !auth.privateTopics.isEmpty && !auth.jwtConfigured {
            result.append(("auth.private_topics", "needs JWT keys to check subscribers: set auth.jwt.secrets or auth.jwt.public_keys", nil))
        }
        let cors = config.cors
        if cors.allowCredentials && cors.allowedOrigins.contains("*") {
            result.append(("cors.allowed_origins", "cannot hold * when cors.allow_credentials is true (Fetch §3.2.5)", "*"))
        }
        return result
    }

    /// `auth.publish.tokens` entries: at least 16 characters of the RFC 6750 token68 alphabet.
    public static func isValidStaticToken(_ s: String) -> Bool {
        s.utf8.count >= 16 && s.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || "-._~+/=".utf8.contains(c)
        }
    }

    /// `auth.jwt.secrets` entries: at least 32 bytes (RFC 7518 §3.2: no shorter than the hash
    /// output of HS256) and not a PEM key (which would invite algorithm confusion).
    public static func isValidSecret(_ s: String) -> Bool { s.utf8.count >= 32 && !s.contains("-----BEGIN") }

    /// `auth.private_topics` entries: a topic name, `PREFIX/*` or `*`.
    public static func isValidTopicPattern(_ p: String) -> Bool {
        if p == "*" { return true }
        let name = p.hasSuffix("/*") ? String(p.dropLast(2)) : p
        return TopicName.problem(in: name) == nil
    }

    /// `auth.cookie_name`: an RFC 9110 token.
    public static func isValidCookieName(_ s: String) -> Bool { !s.isEmpty && s.utf8.allSatisfy { isTokenChar($0) } }

    static func isTokenChar(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || "!#$%&'*+-.^_`|~".utf8.contains(c)
    }

    /// `scheme://host[:port]`, lower-case, no path, no trailing slash (RFC 6454 §6.2 serialization).
    public static func isOrigin(_ s: String) -> Bool {
        guard let r = s.firstRange(of: "://") else { return false }
        let scheme = s[..<r.lowerBound]
        let rest = s[r.upperBound...]
        guard !scheme.isEmpty, !rest.isEmpty, s == s.lowercased() else { return false }
        return !rest.contains("/") && !rest.contains("?") && !rest.contains("#") && !rest.contains(" ")
    }
}
