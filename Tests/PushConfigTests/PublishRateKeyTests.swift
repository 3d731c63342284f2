import PushCore
import Testing

@testable import PushServer

/// The publish rate limit is keyed by the publish token, not the address (issue #6): the key a
/// publish is charged to, from real tokens through `authorizePublish`, and the buckets it selects.
@Suite("publish rate keys: by token when authenticated, by address when anonymous")
struct PublishRateKeyTests {
    static let secret = "unit-test-secret-0123456789abcdef0123"
    static let staticToken = "static-token-for-rate-tests"
    // HS256 over `secret`, made with Python (hmac/hashlib) when the test was written. Claims:
    // iss https://issuer.test, exp 2000000000, pushd {publish ["*"]}, plus the named difference.
    /// sub "alice".
    static let alice =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL2lzc3Vlci50ZXN0IiwiZXhwIjoyMDAwMDAwMDAwLCJwdXNoZCI6eyJwdWJsaXNoIjpbIioiXX0sInN1YiI6ImFsaWNlIn0.ZaiHiEWWxntlgoGlViD8xkRxWrstBhp8trUiJ1qcLC8"
    /// sub "alice", exp 2000000001: another token for the same subject.
    static let aliceRefreshed =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL2lzc3Vlci50ZXN0IiwiZXhwIjoyMDAwMDAwMDAxLCJwdXNoZCI6eyJwdWJsaXNoIjpbIioiXX0sInN1YiI6ImFsaWNlIn0.FYH8DsIhLzERuSf5aUQkz8-Y4ozzd8hwcKNI_se2UrU"
    /// sub "bob".
    static let bob =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL2lzc3Vlci50ZXN0IiwiZXhwIjoyMDAwMDAwMDAwLCJwdXNoZCI6eyJwdWJsaXNoIjpbIioiXX0sInN1YiI6ImJvYiJ9.Z8vQRldVgh6xzJ17x07ayx7Nwy5331UexECdj04iqnY"
    /// No sub, jti "1".
    static let noSub1 =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL2lzc3Vlci50ZXN0IiwiZXhwIjoyMDAwMDAwMDAwLCJwdXNoZCI6eyJwdWJsaXNoIjpbIioiXX0sImp0aSI6IjEifQ.-zEolzAY4WsZGPAgPq9ObEFtz5Bf9z8su1ogtMfaK4Q"
    /// No sub, jti "2".
    static let noSub2 =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL2lzc3Vlci50ZXN0IiwiZXhwIjoyMDAwMDAwMDAwLCJwdXNoZCI6eyJwdWJsaXNoIjpbIioiXX0sImp0aSI6IjIifQ.qUY4cXB-aVUHP4rFMCAgdjcOTg47HTjJs5BSdPuDfmQ"
    /// sub 42: not a string, so not a subject.
    static let numericSub =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL2lzc3Vlci50ZXN0IiwiZXhwIjoyMDAwMDAwMDAwLCJwdXNoZCI6eyJwdWJsaXNoIjpbIioiXX0sInN1YiI6NDJ9.8Fhi-5zndg30HN3uFXBgrRfbXPDmL1qmfMroBfJgrOE"

    let now = 1_800_000_000.0

    func context(publishAuth: Bool = true) -> AuthContext {
        var config = ServerConfiguration()
        if publishAuth {
            config.auth.jwtSecrets = [Self.secret]
            config.auth.publishTokens = [Self.staticToken]
        }
        return AuthContext(config)
    }

    func head(token: String?) -> HTTPRequestHead {
        var fields: [HTTPHeaders.Element] = [("Host", "pushd.test")]
        if let token { fields.append(("Authorization", "Bearer " + token)) }
        return HTTPRequestHead(
            method: .post, target: "/topics/news", path: "/topics/news", query: nil, versionMinor: 1,
            headers: HTTPHeaders(fields), framing: .contentLength(1), keepAlive: true, expectsContinue: false)
    }

    /// The key a publish with `token` from `host` is charged to.
    func key(_ token: String?, from host: String = "192.0.2.7", auth: AuthContext? = nil) throws -> String {
        let grant = try LoopWorker.authorizePublish(head(token: token), auth: auth ?? context(), now: now).get()
        return LoopWorker.publishRateKey(peerHost: host, grant: grant)
    }

    @Test("a JWT with sub is charged to issuer + subject, whatever the address or the token")
    func jwtSubject() throws {
        let k = try key(Self.alice)
        #expect(k == "sub:19:https://issuer.test:alice")
        #expect(try key(Self.alice, from: "198.51.100.1") == k)
        #expect(try key(Self.aliceRefreshed, from: "2001:db8::1") == k)
        #expect(try key(Self.bob) != k)
    }

    @Test("a JWT without a string sub, or a static token, is charged to the token's SHA-256")
    func tokenDigest() throws {
        let a = try key(Self.noSub1)
        #expect(a.hasPrefix("token:") && a.count == 6 + 64)
        #expect(try key(Self.noSub1, from: "198.51.100.1") == a)
        #expect(try key(Self.noSub2) != a)
        #expect(try key(Self.numericSub).hasPrefix("token:"))
        #expect(
            try key(Self.staticToken, from: "198.51.100.9")
                == "token:5f7ea3011b41c72e2d1942dab1df1dd8f09c81a08287bd8028846270cbbda300")
        #expect(!(try key(Self.staticToken)).contains(Self.staticToken))
    }

    @Test("an anonymous publish (no publish auth configured) is charged to its address")
    func anonymous() throws {
        let open = context(publishAuth: false)
        #expect(try key(nil, from: "192.0.2.7", auth: open) == "ip:192.0.2.7")
        #expect(try key(nil, from: "::1", auth: open) == "ip:::1")
        // Publish auth configured: no token is a refusal, never a fallback to the address.
        #expect(throws: LoopWorker.Refusal.self) { try LoopWorker.authorizePublish(head(token: nil), auth: context(), now: now).get() }
    }

    @Test("subject keys cannot collide across issuers, and the three kinds never collide")
    func noCollisions() {
        let a = PublishRateIdentity.subject(issuer: "a:b", subject: "c").key
        let b = PublishRateIdentity.subject(issuer: "a", subject: "b:c").key
        #expect(a != b)
        #expect(PublishRateIdentity.subject(issuer: nil, subject: "x").key == "sub:0::x")
        #expect(Set([PublishRateIdentity.address("x").key, PublishRateIdentity.token(digest: "x").key,
                     PublishRateIdentity.subject(issuer: nil, subject: "x").key]).count == 3)
    }

    @Test("two tokens from one address each get a burst; one token from two addresses shares one")
    func bucketsFollowTheKey() throws {
        let limiter = PublishRateLimiter()
        let t: UInt64 = 1_000_000_000
        func take(_ token: String, _ host: String) throws -> Int? {
            limiter.take(try key(token, from: host), count: 1, rate: 1, burst: 3, now: t)
        }
        for _ in 0..<3 { #expect(try take(Self.alice, "192.0.2.7") == nil) }
        #expect(try take(Self.alice, "192.0.2.7") == 1)  // alice's burst is spent
        for _ in 0..<3 { #expect(try take(Self.bob, "192.0.2.7") == nil) }  // same address, own bucket
        #expect(try take(Self.bob, "192.0.2.7") == 1)
        #expect(try take(Self.aliceRefreshed, "198.51.100.1") == 1)  // alice elsewhere: still spent
        for _ in 0..<3 { #expect(try take(Self.noSub1, "198.51.100.1") == nil) }
        #expect(try take(Self.noSub1, "203.0.113.5") == 1)
    }

    /// A batch larger than the burst passes from a full bucket but is paid for in full: the
    /// bucket goes into debt and the next publish waits until it is refilled, so batches cannot
    /// beat `publish_rate` (found by an adversarial test: 10,000-event batches every 5 s passed
    /// with rate 1/s, burst 5).
    @Test func batchesOverTheBurstArePaidInFull() {
        let limiter = PublishRateLimiter()
        let t0: UInt64 = 1_000_000_000_000
        #expect(limiter.take("k", count: 10, rate: 1, burst: 5, now: t0) == nil)
        // Debt of 5: one more event needs 6 s of refill.
        #expect(limiter.take("k", count: 1, rate: 1, burst: 5, now: t0) == 6)
        #expect(limiter.take("k", count: 1, rate: 1, burst: 5, now: t0 + 5_000_000_000) == 1)
        #expect(limiter.take("k", count: 1, rate: 1, burst: 5, now: t0 + 6_000_000_000) == nil)
        // A second big batch needs a full bucket again (5 tokens): 4 s after the last publish, refused.
        #expect(limiter.take("k", count: 10_000, rate: 1, burst: 5, now: t0 + 10_000_000_000) == 1)
        #expect(limiter.take("k", count: 10_000, rate: 1, burst: 5, now: t0 + 11_000_000_000) == nil)
        #expect(limiter.take("k", count: 1, rate: 1, burst: 5, now: t0 + 12_000_000_000) == 9_995)
    }

    /// A WebSocket keeps the publish grant of its upgrade; the JWT's `exp` must still bound it.
    @Test func publishGrantCarriesTheTokenExpiry() throws {
        let grant = try LoopWorker.authorizePublish(head(token: Self.alice), auth: context(), now: now).get()
        #expect(grant.expiresAt == 2_000_000_030)  // exp + the default 30 s leeway
        #expect(!grant.isExpired(now: 2_000_000_029))
        #expect(grant.isExpired(now: 2_000_000_030))
        let staticGrant = try LoopWorker.authorizePublish(head(token: Self.staticToken), auth: context(), now: now).get()
        #expect(staticGrant.expiresAt == nil)
        #expect(!staticGrant.isExpired(now: 9e12))
    }
}
