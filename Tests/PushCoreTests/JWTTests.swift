import Testing

@testable import PushCore

/// A verifier that accepts exactly one (algorithm, signature) and records what it was asked.
struct FakeVerifier: JWTSignatureVerifier {
    var algorithm: JWTAlgorithm
    var signature: [UInt8]
    func verify(algorithm: JWTAlgorithm, signingInput: [UInt8], signature: [UInt8]) -> Bool {
        algorithm == self.algorithm && signature == self.signature
    }
}

@Suite("JWT parsing and claims (RFC 7519, RFC 7515 compact JWS, RFC 7518, RFC 8037)")
struct JWTTests {
    // Generated once with Python (hmac/hashlib) at test-writing time; HS256 over the secret
    // "unit-test-secret-0123456789abcdef0123". Claims: iss https://issuer.test, aud
    // ["pushd","other"], exp 2000000000, nbf 1700000000,
    // pushd {publish ["news","chat/*"], subscribe ["private/a"]}.
    static let hs256 =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL2lzc3Vlci50ZXN0IiwiYXVkIjpbInB1c2hkIiwib3RoZXIiXSwiZXhwIjoyMDAwMDAwMDAwLCJuYmYiOjE3MDAwMDAwMDAsInB1c2hkIjp7InB1Ymxpc2giOlsibmV3cyIsImNoYXQvKiJdLCJzdWJzY3JpYmUiOlsicHJpdmF0ZS9hIl19fQ.tzzMcbvwX9um9hSIGwTrNZUrPXt5qn3zMVf8NyuAuEM"
    static let hs256Signature = hex("b73ccc71bbf05fdba6f614881b04eb35952b3d7b79aa7df33157fc372b80b843")
    /// The same claims with `{"alg":"none","typ":"JWT"}` and an empty signature.
    static let none =
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpc3MiOiJodHRwczovL2lzc3Vlci50ZXN0IiwiYXVkIjpbInB1c2hkIiwib3RoZXIiXSwiZXhwIjoyMDAwMDAwMDAwLCJuYmYiOjE3MDAwMDAwMDAsInB1c2hkIjp7InB1Ymxpc2giOlsibmV3cyIsImNoYXQvKiJdLCJzdWJzY3JpYmUiOlsicHJpdmF0ZS9hIl19fQ."

    static func hex(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = s.startIndex
        while i < s.endIndex {
            let j = s.index(i, offsetBy: 2)
            out.append(UInt8(s[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    /// A token with the given header and claims JSON and a one-byte signature.
    static func token(_ header: String, _ claims: String, signature: [UInt8] = [1]) -> String {
        Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(claims.utf8)) + "."
            + Base64URL.encode(signature)
    }

    let good = FakeVerifier(algorithm: .hs256, signature: JWTTests.hs256Signature)
    let policy = JWTPolicy(audience: "pushd", issuer: "https://issuer.test", leeway: 30)
    let now = 1_800_000_000.0

    @Test func parsesTheFixedVector() throws {
        let t = try JWT.parse(Self.hs256).get()
        #expect(t.algorithm == .hs256)
        #expect(t.signature == Self.hs256Signature)
        #expect(t.signingInput == Array(Self.hs256.split(separator: ".").prefix(2).joined(separator: ".").utf8))
        #expect(t.claims["iss"] == .string("https://issuer.test"))
    }

    @Test func verifiesAndReadsTheClaims() throws {
        let claims = try JWT.verify(Self.hs256, verifier: good, policy: policy, now: now).get()
        #expect(claims.expiresAt == 2_000_000_030)
        #expect(claims.publish.matches("news") && claims.publish.matches("chat/room"))
        #expect(!claims.publish.matches("chat") && !claims.publish.matches("newsroom") && !claims.publish.matches("private/a"))
        #expect(claims.subscribe.matches("private/a") && !claims.subscribe.matches("private/b"))
    }

    @Test func refusesForgedSignaturesAndOtherAlgorithms() {
        let forged = FakeVerifier(algorithm: .hs256, signature: [0])
        #expect(JWT.verify(Self.hs256, verifier: forged, policy: policy, now: now).failure == .badSignature)
        // The verifier is asked for the header's algorithm: a key for another family never matches.
        let rsa = FakeVerifier(algorithm: .rs256, signature: Self.hs256Signature)
        #expect(JWT.verify(Self.hs256, verifier: rsa, policy: policy, now: now).failure == .badSignature)
    }

    @Test func refusesAlgNoneInEveryShape() {
        #expect(JWT.parse(Self.none).failure == .unsupportedAlgorithm("none"))
        for alg in ["none", "None", "NONE", "nOnE", "HS256 ", "hs256", "RS512", "PS256", "ES384", "Ed25519", ""] {
            let t = Self.token(#"{"alg":"\#(alg)"}"#, "{}")
            #expect(JWT.parse(t).failure == .unsupportedAlgorithm(alg), "\(alg)")
        }
        #expect(JWT.parse(Self.token(#"{"alg":null}"#, "{}")).failure == .malformed("the header has no alg"))
        #expect(JWT.parse(Self.token(#"{"typ":"JWT"}"#, "{}")).failure == .malformed("the header has no alg"))
        // An empty signature is never valid.
        #expect(JWT.parse(Self.token(#"{"alg":"HS256"}"#, "{}", signature: [])).failure == .badSignature)
    }

    @Test func acceptsEachSupportedAlgorithmName() throws {
        for alg in JWTAlgorithm.allCases {
            #expect(try JWT.parse(Self.token(#"{"alg":"\#(alg.rawValue)"}"#, "{}")).get().algorithm == alg)
        }
        #expect(JWTAlgorithm.hs384.family == .hmac && JWTAlgorithm.rs256.family == .rsa)
        #expect(JWTAlgorithm.es256.family == .ecP256 && JWTAlgorithm.edDSA.family == .ed25519)
    }

    @Test(arguments: [
        "", "a", "a.b", "a.b.c.d", "..", "e30.e30.AQ", "e30=.e30.AQ", "e30.e30.AQ==", "e30.e 30.AQ", "e30.e30.A+",
        "eyJhbGciOiJIUzI1NiJ9.W10.AQ",  // claims are an array
        "eyJhbGciOiJIUzI1NiJ9.e30x.AQ",  // 5 characters: not base64url
        "eyJhbGciOiJIUzI1NiJ9.e31.AQ",  // non-zero unused bits (non-canonical)
        "W10.e30.AQ",  // header is an array
    ])
    func refusesMalformedTokens(_ text: String) {
        guard case .failure(let e) = JWT.parse(text) else {
            Issue.record("\(text) parsed")
            return
        }
        #expect(e != .badSignature || text.hasSuffix("."), "\(text): \(e)")
    }

    @Test func refusesCritAndOddTyp() {
        #expect(JWT.parse(Self.token(#"{"alg":"HS256","crit":["exp"]}"#, "{}")).failure != nil)
        #expect(JWT.parse(Self.token(#"{"alg":"HS256","typ":"JOSE+JSON"}"#, "{}")).failure != nil)
        #expect(JWT.parse(Self.token(#"{"alg":"HS256","typ":"jwt"}"#, "{}")).failure == nil)
        // Duplicate member names are refused by the strict JSON parser.
        #expect(JWT.parse(Self.token(#"{"alg":"none","alg":"HS256"}"#, "{}")).failure != nil)
        #expect(JWT.parse(String(repeating: "A", count: JWT.maxTokenBytes + 1)).failure != nil)
    }

    private func check(_ claims: String, _ policy: JWTPolicy? = nil, now: Double? = nil) -> Result<JWTClaims, JWTError> {
        JWT.checkClaims(try! JSONValue.parse(Array(claims.utf8)).get(), policy: policy ?? self.policy, now: now ?? self.now)
    }

    @Test func checksExpAndNbfWithLeeway() {
        let p = JWTPolicy(leeway: 10)
        #expect(check(#"{"exp":1000}"#, p, now: 1009).failure == nil)
        #expect(check(#"{"exp":1000}"#, p, now: 1010).failure == .expired)
        #expect(check(#"{"exp":1000.5}"#, JWTPolicy(), now: 1000.6).failure == .expired)
        #expect(check(#"{"nbf":1000}"#, p, now: 990).failure == nil)
        #expect(check(#"{"nbf":1000}"#, p, now: 989).failure == .notYetValid)
        #expect(check(#"{"exp":"2000000000"}"#, p, now: 0).failure == .malformed("exp must be a NumericDate"))
        #expect(check(#"{"nbf":true}"#, p, now: 0).failure == .malformed("nbf must be a NumericDate"))
        #expect(check("{}", JWTPolicy(), now: 0).success?.expiresAt == nil)
    }

    @Test("sub and iss are read when they are strings (the publish rate identity)")
    func readsSubjectAndIssuer() {
        let c = check(#"{"sub":"alice","iss":"https://issuer.test"}"#, JWTPolicy()).success
        #expect(c?.subject == "alice" && c?.issuer == "https://issuer.test")
        // Not strings: no subject, no issuer, and the token is still accepted.
        let odd = check(#"{"sub":42,"iss":["x"]}"#, JWTPolicy()).success
        #expect(odd != nil && odd?.subject == nil && odd?.issuer == nil)
        #expect(PublishRateIdentity.jwt(c!, tokenDigest: { "unused" }) == .subject(issuer: "https://issuer.test", subject: "alice"))
        #expect(PublishRateIdentity.jwt(odd!, tokenDigest: { "d1" }) == .token(digest: "d1"))
    }

    @Test func checksAudienceAndIssuer() {
        let p = JWTPolicy(audience: "pushd", issuer: "iss")
        #expect(check(#"{"aud":"pushd","iss":"iss"}"#, p).failure == nil)
        #expect(check(#"{"aud":["x","pushd"],"iss":"iss"}"#, p).failure == nil)
        #expect(check(#"{"aud":"other","iss":"iss"}"#, p).failure == .wrongAudience)
        #expect(check(#"{"aud":["other"],"iss":"iss"}"#, p).failure == .wrongAudience)
        #expect(check(#"{"iss":"iss"}"#, p).failure == .wrongAudience)
        #expect(check(#"{"aud":"PUSHD","iss":"iss"}"#, p).failure == .wrongAudience)
        #expect(check(#"{"aud":"pushd","iss":"evil"}"#, p).failure == .wrongIssuer)
        #expect(check(#"{"aud":"pushd"}"#, p).failure == .wrongIssuer)
        // Not configured: not checked.
        #expect(check(#"{"aud":"anything","iss":"anyone"}"#, JWTPolicy()).failure == nil)
    }

    @Test func readsThePushdClaim() {
        let c = check(#"{"pushd":{"publish":["*"]}}"#, JWTPolicy()).success
        #expect(c?.publish.matches("any/topic") == true && c?.subscribe.isEmpty == true)
        #expect(check(#"{}"#, JWTPolicy()).success?.publish.isEmpty == true)
        #expect(check(#"{"pushd":["news"]}"#, JWTPolicy()).failure != nil)
        #expect(check(#"{"pushd":{"publish":"news"}}"#, JWTPolicy()).failure != nil)
        #expect(check(#"{"pushd":{"publish":["news",1]}}"#, JWTPolicy()).failure != nil)
    }

    @Test func topicPatterns() {
        let p = TopicPatterns(["news", "chat/*", "a/b/*"])
        #expect(p.matches("news") && p.matches("chat/x") && p.matches("chat/x/y") && p.matches("a/b/c"))
        #expect(!p.matches("chat/") && !p.matches("chat") && !p.matches("chatx/y") && !p.matches("a/bc"))
        #expect(!p.matches("new") && !p.matches("news/1") && !p.matches("NEWS"))
        #expect(TopicPatterns([]).isEmpty && !TopicPatterns([]).matches("news"))
        #expect(TopicPatterns(["*"]).matches("x"))
        // A `*` inside a name is literal.
        #expect(TopicPatterns(["a*"]).matches("a*") && !TopicPatterns(["a*"]).matches("ab"))
    }

    @Test func base64URLRoundTripsAndIsStrict() {
        for n in 0..<40 {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            #expect(Base64URL.decode(Array(Base64URL.encode(bytes).utf8)) == bytes)
        }
        #expect(Base64URL.encode([0xfb, 0xff]) == "-_8")
        for bad in ["A", "AB=", "A/", "A+", "AB==", "AB C", "AF"] {
            #expect(Base64URL.decode(Array(bad.utf8)) == nil, "\(bad)")
        }
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
    fileprivate var success: Success? {
        if case .success(let v) = self { return v }
        return nil
    }
}
