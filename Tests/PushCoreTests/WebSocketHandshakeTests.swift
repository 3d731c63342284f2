import Testing
@testable import PushCore

/// Test-only SHA-1 (FIPS 180-4 §6.1) and base64 (RFC 4648 §4), so the handshake can be checked
/// against the RFC 6455 §1.3 vector without OpenSSL in PushCore. Not for production use.
enum TestCrypto {
    static func sha1(_ message: [UInt8]) -> [UInt8] {
        var h: [UInt32] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0]
        var m = message
        let bitLength = UInt64(message.count) * 8
        m.append(0x80)
        while m.count % 64 != 56 { m.append(0) }
        for k in (0..<8).reversed() { m.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(8 * k))) }
        var w = [UInt32](repeating: 0, count: 80)
        for block in stride(from: 0, to: m.count, by: 64) {
            for t in 0..<16 {
                w[t] = m[block + 4 * t..<block + 4 * t + 4].reduce(0) { $0 << 8 | UInt32($1) }
            }
            for t in 16..<80 {
                let x = w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16]
                w[t] = x << 1 | x >> 31
            }
            var (a, b, c, d, e) = (h[0], h[1], h[2], h[3], h[4])
            for t in 0..<80 {
                let f: UInt32
                let k: UInt32
                switch t {
                case 0..<20: f = (b & c) | (~b & d); k = 0x5A82_7999
                case 20..<40: f = b ^ c ^ d; k = 0x6ED9_EBA1
                case 40..<60: f = (b & c) | (b & d) | (c & d); k = 0x8F1B_BCDC
                default: f = b ^ c ^ d; k = 0xCA62_C1D6
                }
                let temp = (a << 5 | a >> 27) &+ f &+ e &+ k &+ w[t]
                e = d; d = c; c = b << 30 | b >> 2; b = a; a = temp
            }
            h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d; h[4] &+= e
        }
        return h.flatMap { word in (0..<4).map { UInt8(truncatingIfNeeded: word >> UInt32(24 - 8 * $0)) } }
    }

    static func base64(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            let n = min(3, bytes.count - i)
            let chunk = UInt32(bytes[i]) << 16 | (n > 1 ? UInt32(bytes[i + 1]) << 8 : 0) | (n > 2 ? UInt32(bytes[i + 2]) : 0)
            for j in 0..<4 {
                out.append(j <= n ? alphabet[Int(chunk >> UInt32(18 - 6 * j) & 63)] : UInt8(ascii: "="))
            }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func sha1Base64(_ s: String) -> String { base64(sha1(Array(s.utf8))) }

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}

@Suite("WebSocketHandshake")
struct WebSocketHandshakeTests {
    static let rfcKey = "dGhlIHNhbXBsZSBub25jZQ=="

    static func headers(_ extra: [(String, String)] = [], omit: Set<String> = []) -> HTTPHeaders {
        var fields: [(name: String, value: String)] = [
            ("Host", "server.example.com"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", rfcKey), ("Sec-WebSocket-Version", "13"), ("Origin", "http://example.com"),
        ]
        fields.removeAll { omit.contains($0.name) }
        fields += extra.map { (name: $0.0, value: $0.1) }
        return HTTPHeaders(fields)
    }

    static func negotiate(
        method: HTTPMethod = .get, versionMinor: Int = 1, _ headers: HTTPHeaders,
        subprotocols: [String] = [], deflate: PerMessageDeflateConfiguration? = nil
    ) -> Result<WebSocketHandshakeResponse, WebSocketHandshakeError> {
        WebSocketHandshake.negotiate(method: method, versionMinor: versionMinor, headers: headers,
                                     subprotocols: subprotocols, deflate: deflate, sha1Base64: TestCrypto.sha1Base64)
    }

    @Test("test SHA-1 and base64 match known vectors")
    func testCryptoVectors() {
        #expect(TestCrypto.hex(TestCrypto.sha1(Array("abc".utf8))) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(TestCrypto.hex(TestCrypto.sha1([])) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(TestCrypto.hex(TestCrypto.sha1(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
            == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        #expect(TestCrypto.base64(Array("foobar".utf8)) == "Zm9vYmFy")
        #expect(TestCrypto.base64(Array("fooba".utf8)) == "Zm9vYmE=")
        #expect(TestCrypto.base64(Array("foob".utf8)) == "Zm9vYg==")
    }

    @Test("RFC 6455 §1.3 example: accept value")
    func rfcAccept() {
        #expect(WebSocketHandshake.acceptValue(key: Self.rfcKey, sha1Base64: TestCrypto.sha1Base64)
            == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    @Test("valid request: 101 headers with the RFC accept value")
    func validRequest() throws {
        let response = try Self.negotiate(Self.headers()).get()
        #expect(response.accept == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        #expect(response.subprotocol == nil)
        #expect(response.permessageDeflate == nil)
        #expect(response.headers == HTTPHeaders([
            ("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ]))
    }

    @Test("Firefox-style and case-varied token lists are accepted")
    func tokenLists() throws {
        let firefox = Self.headers([("Connection", "keep-alive, Upgrade"), ("Upgrade", "WebSocket")],
                                   omit: ["Connection", "Upgrade"])
        #expect(throws: Never.self) { try Self.negotiate(firefox).get() }
        let split = Self.headers([("Connection", "keep-alive"), ("connection", "UPGRADE"), ("upgrade", "h2c, websocket")],
                                 omit: ["Connection", "Upgrade"])
        #expect(throws: Never.self) { try Self.negotiate(split).get() }
        #expect(WebSocketHandshake.isUpgradeRequest(split))
        #expect(!WebSocketHandshake.isUpgradeRequest(Self.headers(omit: ["Upgrade"])))
    }

    @Test("refusals and their HTTP answers")
    func refusals() {
        func error(_ r: Result<WebSocketHandshakeResponse, WebSocketHandshakeError>) -> WebSocketHandshakeError? {
            if case .failure(let e) = r { return e }
            return nil
        }
        #expect(error(Self.negotiate(method: .post, Self.headers())) == .methodNotAllowed)
        #expect(WebSocketHandshakeError.methodNotAllowed.status == 405)
        #expect(WebSocketHandshakeError.methodNotAllowed.responseHeaders["Allow"] == "GET")
        #expect(error(Self.negotiate(versionMinor: 0, Self.headers())) == .httpVersionNotSupported)
        #expect(error(Self.negotiate(Self.headers(omit: ["Connection"]))) == .missingConnectionUpgrade)
        #expect(error(Self.negotiate(Self.headers([("Connection", "keep-alive")], omit: ["Connection"]))) == .missingConnectionUpgrade)
        #expect(error(Self.negotiate(Self.headers([("Connection", "upgraded")], omit: ["Connection"]))) == .missingConnectionUpgrade)
        #expect(error(Self.negotiate(Self.headers(omit: ["Upgrade"]))) == .missingUpgradeWebSocket)
        #expect(error(Self.negotiate(Self.headers([("Upgrade", "h2c")], omit: ["Upgrade"]))) == .missingUpgradeWebSocket)
        #expect(WebSocketHandshakeError.missingUpgradeWebSocket.status == 400)
        for version in [[], ["8"], ["13", "13"], ["13, 8"], ["14"]] {
            let h = Self.headers(version.map { ("Sec-WebSocket-Version", $0) }, omit: ["Sec-WebSocket-Version"])
            #expect(error(Self.negotiate(h)) == .unsupportedVersion, "version \(version)")
        }
        #expect(WebSocketHandshakeError.unsupportedVersion.status == 426)
        #expect(WebSocketHandshakeError.unsupportedVersion.responseHeaders["Sec-WebSocket-Version"] == "13")
        #expect(error(Self.negotiate(Self.headers(omit: ["Sec-WebSocket-Key"]))) == .missingKey)
        #expect(error(Self.negotiate(Self.headers([("Sec-WebSocket-Key", Self.rfcKey)]))) == .missingKey)
        for key in ["", "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZQ===", "dGhlIHNhbXBsZSBub25j", "dGhlIHNhbXBsZSBub25jZR==",
                    "dGhlIHNhbXBsZSBub25jZ*==", "AAAAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAAA=", "dGhlIHNhbXBsZSBub25jZQ== "] {
            let h = Self.headers([("Sec-WebSocket-Key", key)], omit: ["Sec-WebSocket-Key"])
            #expect(error(Self.negotiate(h)) == .invalidKey, "key \(key)")
        }
        #expect(WebSocketHandshakeError.invalidKey.status == 400)
    }

    @Test("key decoding returns the 16 nonce bytes")
    func decodeKey() {
        #expect(WebSocketHandshake.decodeKey(Self.rfcKey) == Array("the sample nonce".utf8))
        #expect(WebSocketHandshake.decodeKey("AAAAAAAAAAAAAAAAAAAAAA==") == [UInt8](repeating: 0, count: 16))
        #expect(WebSocketHandshake.decodeKey("/////////////////////w==") == [UInt8](repeating: 0xFF, count: 16))
        // Every canonical key round-trips through the test encoder.
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<64 {
            for j in 0..<16 { bytes[j] = UInt8(truncatingIfNeeded: i &* 37 &+ j &* 11) }
            #expect(WebSocketHandshake.decodeKey(TestCrypto.base64(bytes)) == bytes)
        }
    }

    @Test("subprotocol: the first client offer the server supports")
    func subprotocols() throws {
        let h = Self.headers([("Sec-WebSocket-Protocol", "v1.pushd, chat"), ("Sec-WebSocket-Protocol", "superchat")])
        #expect(WebSocketHandshake.subprotocolOffers(h) == ["v1.pushd", "chat", "superchat"])
        #expect(try Self.negotiate(h, subprotocols: ["superchat", "chat"]).get().subprotocol == "chat")
        #expect(try Self.negotiate(h, subprotocols: ["superchat"]).get().subprotocol == "superchat")
        #expect(try Self.negotiate(h, subprotocols: ["CHAT"]).get().subprotocol == nil)
        let response = try Self.negotiate(h, subprotocols: ["chat"]).get()
        #expect(response.headers["Sec-WebSocket-Protocol"] == "chat")
        #expect(try Self.negotiate(Self.headers(), subprotocols: ["chat"]).get().subprotocol == nil)
    }

    // MARK: Extensions (RFC 6455 §9.1, RFC 7692)

    @Test("extension offers parse with parameters, quoted values and several fields")
    func parseOffers() {
        typealias P = WebSocketExtensionOffer.Parameter
        let offers = WebSocketExtensionOffer.parse([
            "permessage-deflate; client_max_window_bits, permessage-deflate ;server_max_window_bits = \"10\"",
            "x-webkit-deflate-frame",
        ])
        #expect(offers == [
            WebSocketExtensionOffer(name: "permessage-deflate", parameters: [P(name: "client_max_window_bits", value: nil)]),
            WebSocketExtensionOffer(name: "permessage-deflate", parameters: [P(name: "server_max_window_bits", value: "10")]),
            WebSocketExtensionOffer(name: "x-webkit-deflate-frame", parameters: []),
        ])
        // Malformed fields contribute nothing; other fields still count.
        for bad in ["permessage-deflate; ", "permessage-deflate; a=", "permessage-deflate; a=\"\"", "permessage-deflate; a=\"1 0\"",
                    "permessage-deflate; a=\"10", "; a", "permessage-deflate a", "permessage-deflate; =1"] {
            #expect(WebSocketExtensionOffer.parse([bad, "foo"]) == [WebSocketExtensionOffer(name: "foo", parameters: [])], "\(bad)")
        }
    }

    @Test("permessage-deflate offer validation (RFC 7692 §7.1)")
    func offerValidation() {
        typealias P = WebSocketExtensionOffer.Parameter
        let full = PerMessageDeflateOffer([P(name: "server_no_context_takeover", value: nil), P(name: "client_no_context_takeover", value: nil),
                                           P(name: "server_max_window_bits", value: "10"), P(name: "client_max_window_bits", value: "9")])
        #expect(full?.serverNoContextTakeover == true)
        #expect(full?.clientNoContextTakeover == true)
        #expect(full?.serverMaxWindowBits == 10)
        #expect(full?.clientMaxWindowBitsOffered == true)
        #expect(full?.clientMaxWindowBits == 9)
        let refused: [[P]] = [
            [P(name: "unknown", value: nil)],
            [P(name: "server_no_context_takeover", value: nil), P(name: "server_no_context_takeover", value: nil)],
            [P(name: "server_no_context_takeover", value: "1")],
            [P(name: "server_max_window_bits", value: nil)],
            [P(name: "server_max_window_bits", value: "7")],
            [P(name: "server_max_window_bits", value: "16")],
            [P(name: "server_max_window_bits", value: "010")],
            [P(name: "client_max_window_bits", value: "x")],
        ]
        for parameters in refused { #expect(PerMessageDeflateOffer(parameters) == nil, "\(parameters)") }
    }

    @Test("permessage-deflate negotiation: response values")
    func deflateNegotiation() throws {
        func agreed(_ value: String, _ config: PerMessageDeflateConfiguration = .init()) throws -> String? {
            let h = Self.headers([("Sec-WebSocket-Extensions", value)])
            return try Self.negotiate(h, deflate: config).get().permessageDeflate?.responseHeaderValue
        }
        // Chrome's offer.
        #expect(try agreed("permessage-deflate; client_max_window_bits") == "permessage-deflate")
        #expect(try agreed("permessage-deflate; server_max_window_bits=10") == "permessage-deflate; server_max_window_bits=10")
        #expect(try agreed("permessage-deflate; server_no_context_takeover")
            == "permessage-deflate; server_no_context_takeover")
        #expect(try agreed("permessage-deflate; client_no_context_takeover")
            == "permessage-deflate; client_no_context_takeover")
        // 8 is below zlib's minimum: that offer is declined, the next one accepted.
        #expect(try agreed("permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits=9")
            == "permessage-deflate; server_max_window_bits=9")
        #expect(try agreed("permessage-deflate; server_max_window_bits=8") == nil)
        // Invalid offers are skipped; other extensions are ignored.
        #expect(try agreed("permessage-deflate; bogus, permessage-deflate") == "permessage-deflate")
        #expect(try agreed("x-webkit-deflate-frame") == nil)
        // Server configuration.
        let small = PerMessageDeflateConfiguration(serverMaxWindowBits: 11, serverNoContextTakeover: true,
                                                   clientNoContextTakeover: true, clientMaxWindowBits: 12)
        #expect(try agreed("permessage-deflate; client_max_window_bits", small)
            == "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=12")
        // client_max_window_bits is never sent unless offered; a smaller offered value wins.
        #expect(try agreed("permessage-deflate", small)
            == "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11")
        #expect(try agreed("permessage-deflate; client_max_window_bits=10; server_max_window_bits=13", small)
            == "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=10")
        let p = try #require(try Self.negotiate(Self.headers([("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits=10")]),
                                                deflate: .init()).get().permessageDeflate)
        #expect(p.clientMaxWindowBits == 10)
        #expect(p.serverMaxWindowBits == 15)
        // Not configured: never negotiated, even when offered.
        let h = Self.headers([("Sec-WebSocket-Extensions", "permessage-deflate")])
        let response = try Self.negotiate(h).get()
        #expect(response.permessageDeflate == nil)
        #expect(response.headers["Sec-WebSocket-Extensions"] == nil)
        #expect(try Self.negotiate(h, deflate: .init()).get().headers["Sec-WebSocket-Extensions"] == "permessage-deflate")
    }
}
