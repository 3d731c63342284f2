import PushCore
import PushServer
import Testing

@testable import PushConfig

#if canImport(Glibc)
import Glibc
#endif

/// `tls.*`: files are loaded and checked while the configuration is loaded, so a bad one is a
/// configuration error (exit 78) naming the key.
@Suite("TLS keys")
struct TLSConfigTests {
    /// A self-signed P-256 certificate for CN=localhost (valid 100 years) and its key, generated
    /// with `openssl req -x509 -newkey ec` for these tests; `otherKey` belongs to another certificate.
    static let certificate = """
-----BEGIN CERTIFICATE-----
MIIBfzCCASWgAwIBAgIUBUHbJxOPj8upFTRORFsHUR5MOX0wCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyOTE4MTg0MloYDzIxMjYxMTA1
MTgxODQyWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAASDXjZhA6p4M6VyjMMJzV38APqtJibKvcB0AR1dlyUaKhZ+7bYWMajv
FWGE6Zc7a+bHA5nlHiTJBtnwKYzXp/Kao1MwUTAdBgNVHQ4EFgQUGNctW8RjVO6E
0EXi9Szv1KmRk4AwHwYDVR0jBBgwFoAUGNctW8RjVO6E0EXi9Szv1KmRk4AwDwYD
VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiAMsRcIYTFuMW2EyWwiNnvV
oOiZAP2v1rjBmW6x5MIXJgIhAIQowgPRlLKmzKXVQ8NsTP5amGtNgMo9KEJB2HXN
NZWc
-----END CERTIFICATE-----
"""
    static let key = """
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgVWMzVs6tZpfLFJ9f
KVG7jbjjkk7A10OlRWrUAgbUEzShRANCAASDXjZhA6p4M6VyjMMJzV38APqtJibK
vcB0AR1dlyUaKhZ+7bYWMajvFWGE6Zc7a+bHA5nlHiTJBtnwKYzXp/Ka
-----END PRIVATE KEY-----
"""
    static let otherKey = """
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgw4P633YCNjUFyDl2
vbkQ726K7ybdpeg1dla9OJoyN1ChRANCAAScrQgLpyK/yOj52OWz9zZIhkDMyouv
WvgPHcwmJ6MDmLLSKpagzIWaDTv4PQ/EDpufvT/PgvFHkDN8Xa6bZBeU
-----END PRIVATE KEY-----
"""

    @Test("off by default; the shipped file keeps it off")
    func offByDefault() throws {
        #expect(!ServerConfiguration().tls.isEnabled)
        #expect(ServerConfiguration().tls.minVersion == .tls12)
    }

    @Test("a valid certificate and key load, from the file or the environment")
    func validPair() throws {
        let cert = TempFile.write(Self.certificate)
        let key = TempFile.write(Self.key)
        defer {
            TempFile.remove(cert)
            TempFile.remove(key)
        }
        let config = try load(yaml: "tls:\n  certificate: \(cert)\n  private_key: \(key)\n  min_version: \"1.3\"\n")
        #expect(config.tls.certificate == cert)
        #expect(config.tls.privateKey == key)
        #expect(config.tls.minVersion == .tls13)
        let fromEnv = try load(environment: ["PUSHD_TLS_CERTIFICATE": cert, "PUSHD_TLS_PRIVATE_KEY": key])
        #expect(fromEnv.tls.isEnabled)
        #expect(fromEnv.tls.minVersion == .tls12)
        #expect(TLSContext.check(fromEnv.tls) == nil)
    }

    @Test("a missing file is an error naming the key and the file")
    func missingFile() throws {
        let key = TempFile.write(Self.key)
        defer { TempFile.remove(key) }
        let found = issues(yaml: "tls:\n  certificate: /nonexistent/cert.pem\n  private_key: \(key)\n")
        #expect(found.count == 1)
        #expect(found.first?.keyPath == "tls.certificate")
        #expect(found.first?.reason.contains("cannot read /nonexistent/cert.pem") == true)
    }

    @Test("one file without the other is an error")
    func bothNeeded() throws {
        let cert = TempFile.write(Self.certificate)
        defer { TempFile.remove(cert) }
        let found = issues(yaml: "tls:\n  certificate: \(cert)\n")
        #expect(found.map(\.keyPath) == ["tls.private_key"])
    }

    @Test("a file that is not PEM, and a key of another certificate, are errors")
    func badContents() throws {
        let cert = TempFile.write(Self.certificate)
        let key = TempFile.write(Self.key)
        let other = TempFile.write(Self.otherKey)
        let junk = TempFile.write("not a certificate\n")
        defer { for f in [cert, key, other, junk] { TempFile.remove(f) } }
        let notPEM = issues(yaml: "tls:\n  certificate: \(junk)\n  private_key: \(key)\n")
        #expect(notPEM.map(\.keyPath) == ["tls.certificate"])
        let keyIsCert = issues(yaml: "tls:\n  certificate: \(cert)\n  private_key: \(junk)\n")
        #expect(keyIsCert.map(\.keyPath) == ["tls.private_key"])
        let mismatch = issues(yaml: "tls:\n  certificate: \(cert)\n  private_key: \(other)\n")
        #expect(mismatch.map(\.keyPath) == ["tls.private_key"])
        #expect(mismatch.first?.reason.contains("does not match") == true)
    }

    @Test("min_version accepts 1.2 and 1.3 only")
    func minVersion() throws {
        #expect(try load(yaml: "tls:\n  min_version: \"1.2\"\n").tls.minVersion == .tls12)
        #expect(try load(environment: ["PUSHD_TLS_MIN_VERSION": "1.3"]).tls.minVersion == .tls13)
        #expect(issues(yaml: "tls:\n  min_version: \"1.1\"\n").map(\.keyPath) == ["tls.min_version"])
    }
}

extension TLSConfigTests {
    @Test("paths must be absolute")
    func absolutePaths() {
        let found = issues(environment: ["PUSHD_TLS_CERTIFICATE": "cert.pem", "PUSHD_TLS_PRIVATE_KEY": "key.pem"])
        #expect(found.map(\.keyPath) == ["tls.certificate", "tls.private_key"])
    }
}
