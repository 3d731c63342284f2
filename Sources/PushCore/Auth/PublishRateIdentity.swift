// Whom a publish is charged to under `limits.publish_rate` / `limits.publish_burst`
// (docs/SECURITY.md "Limits"): the key of its token bucket. Pure, so the choice is unit-tested
// without a socket; the buckets themselves live in PushServer (RateLimiter.swift).

/// The identity a publish's events are charged to.
///
/// An authenticated publish is charged to its token, not to the address it came from: two
/// publishers with different tokens behind one NAT get a bucket each, and one token used from many
/// addresses shares one bucket. Only an anonymous publish is charged to its client address.
public enum PublishRateIdentity: Sendable, Hashable {
    /// An anonymous publish: the client's numeric address.
    case address(String)
    /// A JWT with a string `sub` claim: the subject within its issuer (RFC 7519 §4.1.2: a subject
    /// is unique only in the context of its issuer). Every token issued to the subject shares it,
    /// so a refreshed token does not bring a fresh burst.
    case subject(issuer: String?, subject: String)
    /// A static bearer token, or a JWT without `sub`: a digest of the token (hex), so the bucket
    /// table never holds a credential.
    case token(digest: String)

    /// The identity of a publish authorized by a verified JWT: its subject when it has one, else
    /// `tokenDigest()` (called only then).
    public static func jwt(_ claims: JWTClaims, tokenDigest: () -> String) -> PublishRateIdentity {
        if let subject = claims.subject { return .subject(issuer: claims.issuer, subject: subject) }
        return .token(digest: tokenDigest())
    }

    /// The bucket key: `ip:<address>`, `sub:<issuer byte count>:<issuer>:<subject>` (the count
    /// keeps `iss "a:b", sub "c"` apart from `iss "a", sub "b:c"`; no issuer counts as empty), or
    /// `token:<digest>`. The three prefixes never collide.
    public var key: String {
        switch self {
        case .address(let host): return "ip:" + host
        case .subject(let issuer, let subject):
            let iss = issuer ?? ""
            return "sub:\(iss.utf8.count):" + iss + ":" + subject
        case .token(let digest): return "token:" + digest
        }
    }
}
