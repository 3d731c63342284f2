// JWS signature verification with OpenSSL (RFC 7515 §5.2, RFC 7518 §3, RFC 8037 §3.1).
import COpenSSL
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import PushCore

/// A public key read from a PEM file, with the one algorithm family it may verify.
final class JWTPublicKey: @unchecked Sendable {
    // @unchecked: the EVP_PKEY is never mutated after loading; OpenSSL 3 allows concurrent
    // verification with one key from several threads, each with its own EVP_MD_CTX.
    let key: OpaquePointer
    let family: JWTAlgorithm.Family
    init(key: OpaquePointer, family: JWTAlgorithm.Family) {
        self.key = key
        self.family = family
    }
    deinit { EVP_PKEY_free(key) }
}

struct KeyLoadError: Error {
    var message: String
}

/// Reads `auth.jwt.public_keys` files.
enum JWTKeyLoader {
    /// Loads one PEM `PUBLIC KEY` (SubjectPublicKeyInfo) and binds it to its family: RSA of at
    /// least 2048 bits → RS256, EC on P-256 → ES256, Ed25519 → EdDSA. Anything else is refused.
    static func load(path: String) -> Result<JWTPublicKey, KeyLoadError> {
        let pem: [UInt8]
        switch readSmallFile(path) {
        case .success(let b): pem = b
        case .failure(let e): return .failure(e)
        }
        let parsed: OpaquePointer? = pem.withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_PUBKEY(bio, nil, nil, nil)
        }
        ERR_clear_error()
        guard let key = parsed else {
            return .failure(KeyLoadError(message: "must be a PEM public key (-----BEGIN PUBLIC KEY-----)"))
        }
        let type = EVP_PKEY_get_base_id(key)
        let family: JWTAlgorithm.Family
        if type == EVP_PKEY_RSA {
            guard EVP_PKEY_get_bits(key) >= 2048 else {
                EVP_PKEY_free(key)
                return .failure(KeyLoadError(message: "RSA keys must have at least 2048 bits (RFC 7518 §3.3)"))
            }
            family = .rsa
        } else if type == EVP_PKEY_EC {
            var name = [CChar](repeating: 0, count: 64)
            var length = 0
            guard EVP_PKEY_get_group_name(key, &name, name.count, &length) == 1,
                String(decoding: name.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self) == "prime256v1"
            else {
                EVP_PKEY_free(key)
                return .failure(KeyLoadError(message: "EC keys must be on P-256 (ES256, RFC 7518 §3.4)"))
            }
            family = .ecP256
        } else if type == EVP_PKEY_ED25519 {
            family = .ed25519
        } else {
            EVP_PKEY_free(key)
            return .failure(KeyLoadError(message: "must be an RSA, P-256 or Ed25519 public key"))
        }
        return .success(JWTPublicKey(key: key, family: family))
    }

    static func readSmallFile(_ path: String) -> Result<[UInt8], KeyLoadError> {
        guard let file = fopen(path, "rb") else {
            return .failure(KeyLoadError(message: "cannot read the key file: \(String(cString: strerror(errno)))"))
        }
        defer { fclose(file) }
        var bytes = [UInt8](repeating: 0, count: 64 * 1024)
        let n = bytes.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
        guard n < bytes.count else { return .failure(KeyLoadError(message: "the key file is larger than 64 KiB")) }
        return .success(Array(bytes[0..<n]))
    }
}

/// Verifies JWS signatures with the configured keys, each only for its own algorithm family.
struct OpenSSLJWTVerifier: JWTSignatureVerifier {
    let secrets: [[UInt8]]
    let publicKeys: [JWTPublicKey]

    func verify(algorithm: JWTAlgorithm, signingInput: [UInt8], signature: [UInt8]) -> Bool {
        switch algorithm.family {
        case .hmac:
            let md: OpaquePointer?
            switch algorithm {
            case .hs256: md = EVP_sha256()
            case .hs384: md = EVP_sha384()
            default: md = EVP_sha512()
            }
            var ok = false
            for secret in secrets where verifyHMAC(md, secret: secret, input: signingInput, signature: signature) {
                ok = true
            }
            return ok
        case .rsa, .ecP256, .ed25519:
            var sig = signature
            if algorithm == .es256 {
                // JWS carries R || S, 32 bytes each (RFC 7518 §3.4); OpenSSL wants DER.
                guard signature.count == 64, let der = Self.ecdsaDER(signature) else { return false }
                sig = der
            }
            let md: OpaquePointer? = algorithm == .edDSA ? nil : EVP_sha256()
            for key in publicKeys where key.family == algorithm.family {
                if verifyPublic(key.key, md: md, input: signingInput, signature: sig) { return true }
            }
            return false
        }
    }

    private func verifyHMAC(_ md: OpaquePointer?, secret: [UInt8], input: [UInt8], signature: [UInt8]) -> Bool {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let done = secret.withUnsafeBytes { key in
            input.withUnsafeBufferPointer { data in
                HMAC(md, key.baseAddress, Int32(key.count), data.baseAddress, data.count, &out, &length)
            }
        }
        guard done != nil, Int(length) == signature.count else { return false }
        return CRYPTO_memcmp(out, signature, signature.count) == 0
    }

    private func verifyPublic(_ key: OpaquePointer, md: OpaquePointer?, input: [UInt8], signature: [UInt8]) -> Bool {
        guard let ctx = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestVerifyInit(ctx, nil, md, nil, key) == 1 else {
            ERR_clear_error()
            return false
        }
        let r = EVP_DigestVerify(ctx, signature, signature.count, input, input.count)
        ERR_clear_error()
        return r == 1
    }

    /// `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` (RFC 3279 §2.2.3) from R || S.
    static func ecdsaDER(_ raw: [UInt8]) -> [UInt8]? {
        func integer(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
            var b = Array(bytes.drop(while: { $0 == 0 }))
            if b.isEmpty { b = [0] }
            if b[0] & 0x80 != 0 { b.insert(0, at: 0) }
            return [0x02, UInt8(b.count)] + b
        }
        let body = integer(raw[0..<32]) + integer(raw[32..<64])
        return [0x30, UInt8(body.count)] + body
    }
}

/// Constant-time equality of two byte strings of any lengths: both are hashed with SHA-256 and
/// the digests compared with `CRYPTO_memcmp`, so neither the content nor the length leaks.
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    var da = [UInt8](repeating: 0, count: 32)
    var db = [UInt8](repeating: 0, count: 32)
    _ = a.withUnsafeBufferPointer { SHA256($0.baseAddress, $0.count, &da) }
    _ = b.withUnsafeBufferPointer { SHA256($0.baseAddress, $0.count, &db) }
    return CRYPTO_memcmp(da, db, 32) == 0 && a.count == b.count
}

/// SHA-256 of `bytes` as 64 lower-case hex digits: the rate-limit identity of a token without a
/// subject (``PublishRateIdentity/token(digest:)``), so the bucket table never holds a credential.
func sha256Hex(_ bytes: [UInt8]) -> String {
    var digest = [UInt8](repeating: 0, count: 32)
    _ = bytes.withUnsafeBufferPointer { SHA256($0.baseAddress, $0.count, &digest) }
    let hex = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(64)
    for b in digest {
        out.append(hex[Int(b >> 4)])
        out.append(hex[Int(b & 0x0F)])
    }
    return String(decoding: out, as: UTF8.self)
}
