// JSON Web Tokens: parsing and claim checks, no cryptography (RFC 7519 JWT, RFC 7515 JWS compact
// serialization, RFC 7518 algorithms, RFC 8037 EdDSA). Signatures are checked by an injected
// `JWTSignatureVerifier` (PushServer implements it with OpenSSL), so PushCore stays OpenSSL-free.

/// The JWS algorithms pushd accepts (RFC 7518 §3.1, RFC 8037 §3.1). `none` is not one of them.
public enum JWTAlgorithm: String, Sendable, CaseIterable {
    case hs256 = "HS256", hs384 = "HS384", hs512 = "HS512"
    case rs256 = "RS256"
    case es256 = "ES256"
    case edDSA = "EdDSA"

    /// The kind of key an algorithm needs. Each configured key belongs to exactly one family and
    /// is never used for an algorithm of another (no algorithm confusion, RFC 8725 §2.1, §3.1).
    public enum Family: Sendable, Equatable {
        /// A shared secret (RFC 7518 §3.2).
        case hmac
        /// An RSA public key, RSASSA-PKCS1-v1_5 (RFC 7518 §3.3).
        case rsa
        /// A P-256 public key (RFC 7518 §3.4).
        case ecP256
        /// An Ed25519 public key (RFC 8037 §3.1).
        case ed25519
    }

    public var family: Family {
        switch self {
        case .hs256, .hs384, .hs512: return .hmac
        case .rs256: return .rsa
        case .es256: return .ecP256
        case .edDSA: return .ed25519
        }
    }
}

/// Checks one JWS signature. Implementations must refuse a signature made for another key family.
public protocol JWTSignatureVerifier: Sendable {
    /// Whether `signature` over `signingInput` (ASCII `base64url(header).base64url(payload)`,
    /// RFC 7515 §5.2) verifies with a configured key of `algorithm`'s family.
    func verify(algorithm: JWTAlgorithm, signingInput: [UInt8], signature: [UInt8]) -> Bool
}

/// Why a token was refused. The description never contains the token.
public enum JWTError: Error, Sendable, Equatable, CustomStringConvertible {
    case malformed(String)
    case unsupportedAlgorithm(String)
    case badSignature
    case expired
    case notYetValid
    case wrongAudience
    case wrongIssuer

    public var description: String {
        switch self {
        case .malformed(let why): return "malformed token: \(why)"
        case .unsupportedAlgorithm(let alg): return "algorithm \(alg) is not accepted"
        case .badSignature: return "the token's signature does not verify"
        case .expired: return "the token has expired"
        case .notYetValid: return "the token is not valid yet"
        case .wrongAudience: return "the token is not for this audience"
        case .wrongIssuer: return "the token is not from the expected issuer"
        }
    }
}

/// What a token's claims are checked against (RFC 7519 §4.1).
public struct JWTPolicy: Sendable, Equatable {
    /// `aud` must contain this when set (RFC 7519 §4.1.3).
    public var audience: String?
    /// `iss` must equal this when set (RFC 7519 §4.1.1).
    public var issuer: String?
    /// Clock skew tolerated on `exp` and `nbf`, seconds (RFC 7519 §4.1.4, §4.1.5).
    public var leeway: Double
    public init(audience: String? = nil, issuer: String? = nil, leeway: Double = 0) {
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway
    }
}

/// The verified claims pushd uses.
public struct JWTClaims: Sendable, Equatable {
    /// `exp`, seconds since the epoch (RFC 7519 §4.1.4).
    public var expiresAt: Double?
    /// Topics this token may publish to: `pushd.publish`.
    public var publish: TopicPatterns
    /// Private topics this token may subscribe to: `pushd.subscribe`.
    public var subscribe: TopicPatterns
    /// `sub` when it is a string (RFC 7519 §4.1.2): whom the token was issued to. Publishes are
    /// rate-limited per subject (``PublishRateIdentity``). nil when absent or not a string.
    public var subject: String? = nil
    /// `iss` when it is a string (RFC 7519 §4.1.1); a subject is unique only within its issuer.
    public var issuer: String? = nil
}

/// A parsed but not yet verified JWS in compact serialization (RFC 7515 §7.1).
public struct JWTToken: Sendable {
    public var algorithm: JWTAlgorithm
    public var header: JSONValue
    public var claims: JSONValue
    /// `base64url(header) "." base64url(payload)`, the bytes the signature covers.
    public var signingInput: [UInt8]
    public var signature: [UInt8]
}

public enum JWT {
    /// Longest token accepted, bytes.
    public static let maxTokenBytes = 8192

    /// Splits and decodes a compact JWS (RFC 7515 §7.1, §5.2): three base64url parts, a JSON
    /// header with a supported `alg` (never `none`, RFC 7518 §3.6) and no `crit` (RFC 7515
    /// §4.1.11: pushd understands no extension), a JSON object payload (RFC 7519 §7.2).
    public static func parse(_ token: String) -> Result<JWTToken, JWTError> {
        let bytes = Array(token.utf8)
        guard bytes.count <= maxTokenBytes else { return .failure(.malformed("longer than \(maxTokenBytes) bytes")) }
        let parts = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 3 else { return .failure(.malformed("a JWS has three dot-separated parts")) }
        guard let headerBytes = Base64URL.decode(parts[0]), let payloadBytes = Base64URL.decode(parts[1]),
            let signature = Base64URL.decode(parts[2])
        else { return .failure(.malformed("a part is not unpadded base64url")) }
        guard case .success(let header) = JSONValue.parse(headerBytes), case .object = header else {
            return .failure(.malformed("the header is not a JSON object"))
        }
        guard let algName = header["alg"]?.stringValue else { return .failure(.malformed("the header has no alg")) }
        guard let algorithm = JWTAlgorithm(rawValue: algName) else { return .failure(.unsupportedAlgorithm(algName)) }
        if header["crit"] != nil { return .failure(.malformed("crit extensions are not supported")) }
        if let typ = header["typ"] {
            guard let t = typ.stringValue, ["jwt", "at+jwt", "application/jwt"].contains(t.lowercased()) else {
                return .failure(.malformed("typ must be JWT"))
            }
        }
        guard case .success(let claims) = JSONValue.parse(payloadBytes), case .object = claims else {
            return .failure(.malformed("the claims are not a JSON object"))
        }
        guard !signature.isEmpty else { return .failure(.badSignature) }
        let signingInput = Array(bytes[bytes.startIndex..<parts[1].endIndex])
        return .success(
            JWTToken(algorithm: algorithm, header: header, claims: claims, signingInput: signingInput, signature: signature))
    }

    /// Parses, verifies the signature, then checks `exp`, `nbf`, `aud`, `iss` and reads the
    /// `pushd` claim. `now` is seconds since the epoch.
    public static func verify(
        _ token: String, verifier: some JWTSignatureVerifier, policy: JWTPolicy, now: Double
    ) -> Result<JWTClaims, JWTError> {
        let parsed: JWTToken
        switch parse(token) {
        case .success(let t): parsed = t
        case .failure(let e): return .failure(e)
        }
        guard verifier.verify(algorithm: parsed.algorithm, signingInput: parsed.signingInput, signature: parsed.signature)
        else { return .failure(.badSignature) }
        return checkClaims(parsed.claims, policy: policy, now: now)
    }

    /// The registered-claim checks of RFC 7519 §4.1 and the `pushd` claim, on verified claims.
    public static func checkClaims(_ claims: JSONValue, policy: JWTPolicy, now: Double) -> Result<JWTClaims, JWTError> {
        var expiresAt: Double?
        if let exp = claims["exp"] {
            guard let value = numericDate(exp) else { return .failure(.malformed("exp must be a NumericDate")) }
            if now >= value + policy.leeway { return .failure(.expired) }
            expiresAt = value + policy.leeway
        }
        if let nbf = claims["nbf"] {
            guard let value = numericDate(nbf) else { return .failure(.malformed("nbf must be a NumericDate")) }
            if now + policy.leeway < value { return .failure(.notYetValid) }
        }
        if let audience = policy.audience {
            switch claims["aud"] {
            case .string(let s)?: if s != audience { return .failure(.wrongAudience) }
            case .array(let list)?: if !list.contains(.string(audience)) { return .failure(.wrongAudience) }
            default: return .failure(.wrongAudience)
            }
        }
        if let issuer = policy.issuer, claims["iss"]?.stringValue != issuer { return .failure(.wrongIssuer) }
        var publish = TopicPatterns([])
        var subscribe = TopicPatterns([])
        if let pushd = claims["pushd"] {
            guard case .object = pushd else { return .failure(.malformed("the pushd claim must be an object")) }
            for (member, target) in [("publish", 0), ("subscribe", 1)] {
                guard let value = pushd[member] else { continue }
                guard case .array(let items) = value else {
                    return .failure(.malformed("pushd.\(member) must be an array of strings"))
                }
                var patterns: [String] = []
                for item in items {
                    guard let s = item.stringValue else { return .failure(.malformed("pushd.\(member) must be an array of strings")) }
                    patterns.append(s)
                }
                if target == 0 { publish = TopicPatterns(patterns) } else { subscribe = TopicPatterns(patterns) }
            }
        }
        return .success(
            JWTClaims(
                expiresAt: expiresAt, publish: publish, subscribe: subscribe,
                subject: claims["sub"]?.stringValue, issuer: claims["iss"]?.stringValue))
    }

    /// A NumericDate (RFC 7519 §2): a JSON number of seconds since the epoch.
    static func numericDate(_ value: JSONValue) -> Double? {
        guard case .number(let text) = value, let d = Double(text), d.isFinite else { return nil }
        return d
    }
}

/// Topic patterns of the `pushd` claim and of `auth.private_topics`: an exact topic name,
/// `prefix/*` (every topic starting with `prefix/`), or `*` (every topic).
public struct TopicPatterns: Sendable, Equatable {
    public private(set) var exact: Set<String> = []
    public private(set) var prefixes: [String] = []
    public private(set) var all = false

    public init(_ patterns: [String]) {
        for p in patterns {
            if p == "*" {
                all = true
            } else if p.hasSuffix("/*") {
                prefixes.append(String(p.dropLast()))  // keeps the slash
            } else {
                exact.insert(p)
            }
        }
    }

    public var isEmpty: Bool { exact.isEmpty && prefixes.isEmpty && !all }

    public func matches(_ topic: String) -> Bool {
        if all || exact.contains(topic) { return true }
        return prefixes.contains { topic.hasPrefix($0) && topic.utf8.count > $0.utf8.count }
    }
}

/// Unpadded base64url (RFC 4648 §5, as JWS uses it: RFC 7515 §2). Strict: no padding, no
/// whitespace, no other alphabet, and unused trailing bits must be zero (one encoding per value).
public enum Base64URL {
    public static func decode<C: Collection>(_ text: C) -> [UInt8]? where C.Element == UInt8 {
        if text.count % 4 == 1 { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(text.count * 3 / 4)
        var acc: UInt32 = 0
        var bits = 0
        for c in text {
            let v: UInt32
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): v = UInt32(c - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): v = UInt32(c - UInt8(ascii: "a")) + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = UInt32(c - UInt8(ascii: "0")) + 52
            case UInt8(ascii: "-"): v = 62
            case UInt8(ascii: "_"): v = 63
            default: return nil
            }
            acc = (acc << 6) | v
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
                acc &= (1 << UInt32(bits)) - 1
            }
        }
        if acc != 0 { return nil }  // non-zero leftover bits
        return out
    }

    public static func encode(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var out: [UInt8] = []
        var i = 0
        while i + 3 <= bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            for s in [18, 12, 6, 0] { out.append(alphabet[Int((n >> UInt32(s)) & 63)]) }
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let n = UInt32(bytes[i]) << 16
            for s in [18, 12] { out.append(alphabet[Int((n >> UInt32(s)) & 63)]) }
        } else if rest == 2 {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            for s in [18, 12, 6] { out.append(alphabet[Int((n >> UInt32(s)) & 63)]) }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
