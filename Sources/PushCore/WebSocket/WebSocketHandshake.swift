/// Why an upgrade request was refused (RFC 6455 §4.2.1, §4.2.2), with the HTTP answer to send.
public enum WebSocketHandshakeError: Error, Equatable, Sendable {
    /// The method is not `GET` (§4.2.1 item 1). Answer 405 with `Allow: GET`.
    case methodNotAllowed
    /// The request is HTTP/1.0 (§4.2.1 item 1 needs HTTP/1.1 or higher). Answer 400.
    case httpVersionNotSupported
    /// `Connection` does not list the `upgrade` token (§4.2.1 item 4). Answer 400.
    case missingConnectionUpgrade
    /// `Upgrade` does not list the `websocket` token (§4.2.1 item 3). Answer 400.
    case missingUpgradeWebSocket
    /// `Sec-WebSocket-Version` is absent, repeated or not `13` (§4.2.1 item 6). Answer 426
    /// Upgrade Required with `Sec-WebSocket-Version: 13` (§4.2.2 item 4).
    case unsupportedVersion
    /// `Sec-WebSocket-Key` is absent or repeated (§4.2.1 item 5). Answer 400.
    case missingKey
    /// `Sec-WebSocket-Key` is not the base64 of exactly 16 bytes (§4.2.1 item 5). Answer 400.
    case invalidKey

    /// The HTTP status code to answer with: 405, 426 or 400.
    public var status: Int {
        switch self {
        case .methodNotAllowed: 405
        case .unsupportedVersion: 426
        default: 400
        }
    }

    /// Header fields the answer must carry besides the usual ones: `Allow: GET` for 405,
    /// `Sec-WebSocket-Version: 13` (and `Upgrade: websocket`, RFC 9110 §15.5.22) for 426.
    public var responseHeaders: HTTPHeaders {
        switch self {
        case .methodNotAllowed: HTTPHeaders([("Allow", "GET")])
        case .unsupportedVersion: HTTPHeaders([("Sec-WebSocket-Version", "13"), ("Upgrade", "websocket")])
        default: HTTPHeaders()
        }
    }

    /// A short English explanation for the response body or the log.
    public var message: String {
        switch self {
        case .methodNotAllowed: "a WebSocket upgrade must use GET"
        case .httpVersionNotSupported: "a WebSocket upgrade needs HTTP/1.1"
        case .missingConnectionUpgrade: "Connection header must contain \"upgrade\""
        case .missingUpgradeWebSocket: "Upgrade header must contain \"websocket\""
        case .unsupportedVersion: "only Sec-WebSocket-Version 13 is supported"
        case .missingKey: "exactly one Sec-WebSocket-Key header is required"
        case .invalidKey: "Sec-WebSocket-Key must be the base64 of 16 bytes"
        }
    }
}

/// An accepted upgrade: what to send in the `101 Switching Protocols` response (RFC 6455 §4.2.2)
/// and what was agreed.
public struct WebSocketHandshakeResponse: Equatable, Sendable {
    /// The `Sec-WebSocket-Accept` value (§4.2.2 item 5.4).
    public var accept: String
    /// The chosen subprotocol (`Sec-WebSocket-Protocol`), nil when none was agreed.
    public var subprotocol: String?
    /// The agreed permessage-deflate parameters, nil when declined or not offered.
    public var permessageDeflate: PerMessageDeflateParameters?

    /// The header fields of the 101 response, in order: `Upgrade: websocket`,
    /// `Connection: Upgrade`, `Sec-WebSocket-Accept`, then `Sec-WebSocket-Protocol` and
    /// `Sec-WebSocket-Extensions` when agreed.
    public var headers: HTTPHeaders {
        var h = HTTPHeaders([("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept)])
        if let subprotocol { h.append(name: "Sec-WebSocket-Protocol", value: subprotocol) }
        if let permessageDeflate {
            h.append(name: "Sec-WebSocket-Extensions", value: permessageDeflate.responseHeaderValue)
        }
        return h
    }

    /// A response from parts.
    public init(accept: String, subprotocol: String?, permessageDeflate: PerMessageDeflateParameters?) {
        self.accept = accept
        self.subprotocol = subprotocol
        self.permessageDeflate = permessageDeflate
    }
}

/// The server side of the opening handshake (RFC 6455 §4.2): validation and negotiation,
/// pure and without cryptography.
///
/// PushCore carries no OpenSSL dependency, so the SHA-1/base64 step is injected: pass a function
/// returning `base64(SHA-1(utf8(input)))` (the server wires OpenSSL's `SHA1` and
/// `EVP_EncodeBlock`). The RFC logic — appending the GUID — stays here.
public enum WebSocketHandshake {
    /// The GUID appended to the client's key before hashing (§1.3, §4.2.2 item 5.4).
    public static let acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// Whether a request asks for a WebSocket at all: its `Upgrade` header lists `websocket`
    /// (ASCII case-insensitive). Routing uses this to choose WebSocket over SSE; everything else
    /// is checked by ``negotiate(method:versionMinor:headers:subprotocols:deflate:sha1Base64:)``.
    public static func isUpgradeRequest(_ headers: HTTPHeaders) -> Bool {
        headers.containsToken("websocket", in: "Upgrade")
    }

    /// The `Sec-WebSocket-Accept` value for `key`: `sha1Base64(key + GUID)` (§4.2.2 item 5.4).
    /// For the §1.3 example key `dGhlIHNhbXBsZSBub25jZQ==` it is `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`.
    public static func acceptValue(key: String, sha1Base64: (String) -> String) -> String {
        sha1Base64(key + acceptGUID)
    }

    /// Decodes a `Sec-WebSocket-Key`: exactly 24 characters of the standard base64 alphabet
    /// (RFC 4648 §4) ending in `==`, whose unused bits are zero (canonical, RFC 4648 §3.5).
    /// Returns the 16 nonce bytes, or nil. No whitespace is allowed inside.
    public static func decodeKey(_ key: String) -> [UInt8]? {
        let s = Array(key.utf8)
        guard s.count == 24, s[22] == UInt8(ascii: "="), s[23] == UInt8(ascii: "=") else { return nil }
        var bits: UInt32 = 0
        var bitCount = 0
        var out: [UInt8] = []
        out.reserveCapacity(16)
        for c in s[..<22] {
            guard let v = base64Value(c) else { return nil }
            bits = bits << 6 | UInt32(v)
            bitCount += 6
            if bitCount >= 8 {
                bitCount -= 8
                out.append(UInt8(truncatingIfNeeded: bits >> UInt32(bitCount)))
                bits &= (1 << UInt32(bitCount)) - 1
            }
        }
        // 22 characters carry 132 bits: 128 of data and 4 that must be zero.
        guard out.count == 16, bits == 0 else { return nil }
        return out
    }

    private static func base64Value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): c - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): c - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): 62
        case UInt8(ascii: "/"): 63
        default: nil
        }
    }

    /// The subprotocols offered in every `Sec-WebSocket-Protocol` field, in order (§4.2.1 item 8;
    /// comma-separated tokens, OWS trimmed, empty elements skipped).
    public static func subprotocolOffers(_ headers: HTTPHeaders) -> [String] {
        var offers: [String] = []
        for value in headers.values("Sec-WebSocket-Protocol") {
            HTTPSyntax.forEachListElement(value) { element in
                offers.append(String(decoding: element, as: UTF8.self))
                return true
            }
        }
        return offers
    }

    /// Validates an upgrade request (§4.2.1) and negotiates it (§4.2.2).
    ///
    /// Checks, in this order: method `GET` (405), HTTP/1.1 or later (400), `Connection` lists
    /// `upgrade` and `Upgrade` lists `websocket`, both as case-insensitive list tokens so that
    /// Firefox's `Connection: keep-alive, Upgrade` passes (400), exactly one
    /// `Sec-WebSocket-Version: 13` (426), exactly one `Sec-WebSocket-Key` decoding to 16 bytes
    /// (400). `Host` is already required by the HTTP parser; `Origin` is the caller's policy.
    ///
    /// Negotiation: the subprotocol is the first one the client offers that is in
    /// `subprotocols` (compared exactly, case-sensitively), else none — a client that offered
    /// only unknown subprotocols then decides itself whether to go on (§4.1). permessage-deflate
    /// is negotiated only when `deflate` is given (see ``PerMessageDeflateParameters/negotiate(offers:configuration:)``);
    /// other extensions are ignored (declined).
    /// - Parameters:
    ///   - sha1Base64: returns `base64(SHA-1(utf8(input)))`; called once, only on success.
    /// - Returns: the 101 response to send, or why to refuse.
    public static func negotiate(
        method: HTTPMethod, versionMinor: Int, headers: HTTPHeaders,
        subprotocols: [String] = [], deflate: PerMessageDeflateConfiguration? = nil,
        sha1Base64: (String) -> String
    ) -> Result<WebSocketHandshakeResponse, WebSocketHandshakeError> {
        guard method == .get else { return .failure(.methodNotAllowed) }
        guard versionMinor >= 1 else { return .failure(.httpVersionNotSupported) }
        guard headers.containsToken("upgrade", in: "Connection") else { return .failure(.missingConnectionUpgrade) }
        guard headers.containsToken("websocket", in: "Upgrade") else { return .failure(.missingUpgradeWebSocket) }
        guard headers.values("Sec-WebSocket-Version") == ["13"] else { return .failure(.unsupportedVersion) }
        let keys = headers.values("Sec-WebSocket-Key")
        guard keys.count == 1 else { return .failure(.missingKey) }
        guard decodeKey(keys[0]) != nil else { return .failure(.invalidKey) }

        let subprotocol = subprotocolOffers(headers).first { subprotocols.contains($0) }
        var agreed: PerMessageDeflateParameters?
        if let deflate {
            let offers = WebSocketExtensionOffer.parse(headers.values("Sec-WebSocket-Extensions"))
            agreed = PerMessageDeflateParameters.negotiate(offers: offers, configuration: deflate)
        }
        return .success(WebSocketHandshakeResponse(
            accept: acceptValue(key: keys[0], sha1Base64: sha1Base64),
            subprotocol: subprotocol, permessageDeflate: agreed))
    }

    /// ``negotiate(method:versionMinor:headers:subprotocols:deflate:sha1Base64:)`` for a parsed head.
    public static func negotiate(
        _ head: HTTPRequestHead, subprotocols: [String] = [], deflate: PerMessageDeflateConfiguration? = nil,
        sha1Base64: (String) -> String
    ) -> Result<WebSocketHandshakeResponse, WebSocketHandshakeError> {
        negotiate(method: head.method, versionMinor: head.versionMinor, headers: head.headers,
                  subprotocols: subprotocols, deflate: deflate, sha1Base64: sha1Base64)
    }
}
