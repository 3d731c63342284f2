/// libFuzzer target for the JWT parser and claim checks of `Sources/PushCore/Auth/JWT.swift`.
///
/// The input is used twice: as a raw token string (any bytes, lossily decoded), and as a JSON
/// claims text wrapped into a well-formed token (`{"alg":"HS256"}` header, the input as the
/// payload), so the mutations reach both the compact-serialization parser and `checkClaims`.
/// Invariants: no crash or ASan report; a verifier that refuses everything never lets a token
/// through; one that accepts everything never lets `alg: none` through; `Base64URL` round-trips;
/// parsing is deterministic.

/// A verifier with a fixed answer, standing in for OpenSSL.
struct FixedVerifier: JWTSignatureVerifier {
    let answer: Bool
    func verify(algorithm: JWTAlgorithm, signingInput: [UInt8], signature: [UInt8]) -> Bool { answer }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJWT(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let policy = JWTPolicy(audience: "pushd", issuer: "fuzz", leeway: 5)

    // 1. The input as a whole token.
    let raw = String(decoding: input, as: UTF8.self)
    if case .success = JWT.verify(raw, verifier: FixedVerifier(answer: false), policy: policy, now: 1e9) {
        fuzzFail("a token passed a verifier that refuses every signature")
    }
    let parsedA = JWT.parse(raw)
    let parsedB = JWT.parse(raw)
    switch (parsedA, parsedB) {
    case (.success(let a), .success(let b)):
        if a.algorithm != b.algorithm || a.claims != b.claims || a.signature != b.signature { fuzzFail("parse not deterministic") }
        if a.signature.isEmpty { fuzzFail("empty signature accepted") }
    case (.failure(let a), .failure(let b)):
        if a != b { fuzzFail("parse errors differ") }
    default:
        fuzzFail("parse not deterministic")
    }
    _ = JWT.verify(raw, verifier: FixedVerifier(answer: true), policy: policy, now: 1e9)

    // 2. The input as the claims of a well-formed token.
    for alg in ["HS256", "none", "RS256"] {
        let header = Base64URL.encode(Array("{\"alg\":\"\(alg)\",\"typ\":\"JWT\"}".utf8))
        let token = header + "." + Base64URL.encode(input) + "." + Base64URL.encode([1, 2, 3])
        let result = JWT.verify(token, verifier: FixedVerifier(answer: true), policy: policy, now: 1e9)
        if alg == "none", case .success = result { fuzzFail("alg none accepted") }
    }
    if case .success(let claims) = JSONValue.parse(input) {
        _ = JWT.checkClaims(claims, policy: policy, now: 1e9)
        _ = JWT.checkClaims(claims, policy: JWTPolicy(), now: -1)
    }

    // 3. Base64URL round trip and decoding of arbitrary text.
    if Base64URL.decode(Array(Base64URL.encode(input).utf8)) != input { fuzzFail("base64url round trip") }
    _ = Base64URL.decode(input)
    return 0
}
