/// One extension offered in `Sec-WebSocket-Extensions` (RFC 6455 §9.1): a name and its
/// parameters in order, values unquoted. `permessage-deflate; client_max_window_bits` is
/// `name: "permessage-deflate", parameters: [("client_max_window_bits", nil)]`.
public struct WebSocketExtensionOffer: Equatable, Sendable {
    /// One `name[=value]` parameter; `value` is nil when no `=` was given.
    public struct Parameter: Equatable, Sendable {
        /// The parameter name (a token), as sent.
        public var name: String
        /// The value with quotes removed, or nil for a bare parameter.
        public var value: String?
        /// A parameter from parts.
        public init(name: String, value: String?) {
            self.name = name
            self.value = value
        }
    }

    /// The extension token, as sent (compare case-insensitively).
    public var name: String
    /// The parameters in the order sent.
    public var parameters: [Parameter]

    /// An offer from parts.
    public init(name: String, parameters: [Parameter]) {
        self.name = name
        self.parameters = parameters
    }

    /// Parses the values of every `Sec-WebSocket-Extensions` field (one string per field line)
    /// into offers in order (RFC 6455 §9.1 grammar: `1#( token *( ";" token [ "=" ( token /
    /// quoted-string ) ] ) )`, OWS around separators). A field line that does not match the
    /// grammar — including a quoted value that is not a token once unquoted — contributes no
    /// offer at all, so the server simply declines what it cannot read.
    public static func parse(_ fieldValues: [String]) -> [WebSocketExtensionOffer] {
        var offers: [WebSocketExtensionOffer] = []
        for value in fieldValues {
            if let parsed = parseField(Array(value.utf8)) { offers += parsed }
        }
        return offers
    }

    private static func parseField(_ s: [UInt8]) -> [WebSocketExtensionOffer]? {
        var i = 0
        let n = s.count
        func skipOWS() { while i < n, HTTPSyntax.isWhitespace(s[i]) { i += 1 } }
        func token() -> String? {
            let start = i
            while i < n, HTTPSyntax.isTokenChar(s[i]) { i += 1 }
            return i > start ? String(decoding: s[start..<i], as: UTF8.self) : nil
        }
        func quoted() -> String? {
            // quoted-string (RFC 9110 §5.6.4); RFC 6455 §9.1 requires the unquoted value to be a token.
            i += 1
            var out: [UInt8] = []
            while i < n {
                var b = s[i]
                i += 1
                if b == UInt8(ascii: "\"") {
                    guard !out.isEmpty, out.allSatisfy(HTTPSyntax.isTokenChar) else { return nil }
                    return String(decoding: out, as: UTF8.self)
                }
                if b == UInt8(ascii: "\\") {
                    guard i < n else { return nil }
                    b = s[i]
                    i += 1
                }
                out.append(b)
            }
            return nil
        }
        var offers: [WebSocketExtensionOffer] = []
        while true {
            skipOWS()
            if i < n, s[i] == HTTPSyntax.comma { i += 1; continue }  // empty list elements (RFC 9110 §5.6.1)
            if i == n { break }
            guard let name = token() else { return nil }
            var offer = WebSocketExtensionOffer(name: name, parameters: [])
            while true {
                skipOWS()
                if i == n || s[i] == HTTPSyntax.comma { break }
                guard s[i] == HTTPSyntax.semicolon else { return nil }
                i += 1
                skipOWS()
                guard let parameterName = token() else { return nil }
                skipOWS()
                var parameterValue: String?
                if i < n, s[i] == UInt8(ascii: "=") {
                    i += 1
                    skipOWS()
                    guard i < n else { return nil }
                    parameterValue = s[i] == UInt8(ascii: "\"") ? quoted() : token()
                    guard parameterValue != nil else { return nil }
                }
                offer.parameters.append(Parameter(name: parameterName, value: parameterValue))
            }
            offers.append(offer)
        }
        return offers
    }
}

/// The parameters of one `permessage-deflate` offer (RFC 7692 §7.1), validated.
public struct PerMessageDeflateOffer: Equatable, Sendable {
    /// `server_no_context_takeover` was offered (§7.1.1.1).
    public var serverNoContextTakeover = false
    /// `client_no_context_takeover` was offered (§7.1.1.2): the client will reset its context anyway.
    public var clientNoContextTakeover = false
    /// `server_max_window_bits=N` (8–15), nil when absent (§7.1.2.1).
    public var serverMaxWindowBits: Int?
    /// `client_max_window_bits` was offered, with or without a value (§7.1.2.2).
    public var clientMaxWindowBitsOffered = false
    /// Its value (8–15), nil when absent or given without a value.
    public var clientMaxWindowBits: Int?

    /// An offer with no parameters.
    public init() {}

    /// Validates the parameters of a `permessage-deflate` offer. Returns nil — the offer must be
    /// declined (RFC 7692 §7.1) — for an unknown parameter, a repeated parameter, a value on
    /// a no-context-takeover parameter, or a window-bits value that is not a decimal 8–15 without
    /// leading zeros (§7.1.2). Parameter names are compared exactly (they are lowercase tokens).
    public init?(_ parameters: [WebSocketExtensionOffer.Parameter]) {
        var seen = Set<String>()
        for p in parameters {
            guard seen.insert(p.name).inserted else { return nil }
            switch p.name {
            case "server_no_context_takeover":
                guard p.value == nil else { return nil }
                serverNoContextTakeover = true
            case "client_no_context_takeover":
                guard p.value == nil else { return nil }
                clientNoContextTakeover = true
            case "server_max_window_bits":
                guard let v = p.value, let bits = Self.windowBits(v) else { return nil }
                serverMaxWindowBits = bits
            case "client_max_window_bits":
                clientMaxWindowBitsOffered = true
                if let v = p.value {
                    guard let bits = Self.windowBits(v) else { return nil }
                    clientMaxWindowBits = bits
                }
            default:
                return nil
            }
        }
    }

    /// `1*DIGIT` with value 8–15 and no leading zero (RFC 7692 §7.1.2.1).
    static func windowBits(_ s: String) -> Int? {
        guard let first = s.utf8.first, first != UInt8(ascii: "0"), s.utf8.count <= 2,
            let v = Int(s), (8...15).contains(v)
        else { return nil }
        return v
    }
}

/// What the server is able and willing to do for permessage-deflate (RFC 7692). The actual
/// compression is not part of PushCore; this only drives negotiation.
public struct PerMessageDeflateConfiguration: Equatable, Sendable {
    /// The largest LZ77 window the server compresses with, 2^N bytes (9–15; default 15).
    public var serverMaxWindowBits: Int
    /// The smallest window the server's deflater can honour (default 9: zlib cannot produce raw
    /// deflate with an 8-bit window). An offer asking for less is declined.
    public var minimumServerWindowBits: Int
    /// Whether the server resets its compression context after each message (saves memory per
    /// connection; advertised as `server_no_context_takeover`).
    public var serverNoContextTakeover: Bool
    /// Whether to ask the client to reset its context after each message (`client_no_context_takeover`).
    public var clientNoContextTakeover: Bool
    /// A cap on the client's window (bounds the server's inflater memory), applied only when the
    /// client offered `client_max_window_bits` (§7.1.2.2); nil for no cap.
    public var clientMaxWindowBits: Int?

    /// A configuration; the defaults accept any valid offer with full windows.
    public init(
        serverMaxWindowBits: Int = 15, minimumServerWindowBits: Int = 9,
        serverNoContextTakeover: Bool = false, clientNoContextTakeover: Bool = false,
        clientMaxWindowBits: Int? = nil
    ) {
        self.serverMaxWindowBits = serverMaxWindowBits
        self.minimumServerWindowBits = minimumServerWindowBits
        self.serverNoContextTakeover = serverNoContextTakeover
        self.clientNoContextTakeover = clientNoContextTakeover
        self.clientMaxWindowBits = clientMaxWindowBits
    }
}

/// The permessage-deflate parameters agreed in a handshake (RFC 7692 §7.1), what each side
/// must use, and the response header value that states them.
public struct PerMessageDeflateParameters: Equatable, Sendable {
    /// The server resets its compression context after every message.
    public var serverNoContextTakeover: Bool
    /// The client resets its compression context after every message.
    public var clientNoContextTakeover: Bool
    /// The server compresses with a window of at most 2^N bytes (8–15).
    public var serverMaxWindowBits: Int
    /// The client compresses with a window of at most 2^N bytes: the server's inflater needs this.
    public var clientMaxWindowBits: Int
    /// Whether `server_max_window_bits` goes in the response.
    var sendServerMaxWindowBits: Bool
    /// Whether `client_max_window_bits` goes in the response.
    var sendClientMaxWindowBits: Bool

    /// The `Sec-WebSocket-Extensions` response value, e.g.
    /// `permessage-deflate; server_no_context_takeover; server_max_window_bits=10`.
    public var responseHeaderValue: String {
        var s = "permessage-deflate"
        if serverNoContextTakeover { s += "; server_no_context_takeover" }
        if clientNoContextTakeover { s += "; client_no_context_takeover" }
        if sendServerMaxWindowBits { s += "; server_max_window_bits=\(serverMaxWindowBits)" }
        if sendClientMaxWindowBits { s += "; client_max_window_bits=\(clientMaxWindowBits)" }
        return s
    }

    /// Picks the first acceptable `permessage-deflate` offer, in the client's order of
    /// preference (RFC 7692 §5, §7.1). Returns nil to decline the extension (send no
    /// `Sec-WebSocket-Extensions`): no such offer, every one invalid, or every one asking for a
    /// server window smaller than `configuration.minimumServerWindowBits`.
    ///
    /// For an accepted offer: `server_no_context_takeover` is echoed when offered or configured;
    /// `client_no_context_takeover` is sent when configured or offered (§7.1.1.2: a hint the
    /// client follows anyway); `server_max_window_bits` is the smaller of the offer and the
    /// configuration, sent when offered or below 15; `client_max_window_bits` is sent only when
    /// offered (§7.1.2.2), capped by the configuration and the offered value.
    public static func negotiate(
        offers: [WebSocketExtensionOffer], configuration: PerMessageDeflateConfiguration
    ) -> PerMessageDeflateParameters? {
        for offer in offers where HTTPSyntax.equalsIgnoringCase(offer.name.utf8, "permessage-deflate".utf8) {
            guard let p = PerMessageDeflateOffer(offer.parameters) else { continue }
            var serverBits = configuration.serverMaxWindowBits
            if let asked = p.serverMaxWindowBits {
                if asked < configuration.minimumServerWindowBits { continue }
                serverBits = min(serverBits, asked)
            }
            var clientBits = 15
            var sendClientBits = false
            if p.clientMaxWindowBitsOffered {
                clientBits = min(p.clientMaxWindowBits ?? 15, configuration.clientMaxWindowBits ?? 15)
                sendClientBits = configuration.clientMaxWindowBits != nil
            }
            return PerMessageDeflateParameters(
                serverNoContextTakeover: p.serverNoContextTakeover || configuration.serverNoContextTakeover,
                clientNoContextTakeover: p.clientNoContextTakeover || configuration.clientNoContextTakeover,
                serverMaxWindowBits: serverBits,
                clientMaxWindowBits: clientBits,
                sendServerMaxWindowBits: p.serverMaxWindowBits != nil || serverBits < 15,
                sendClientMaxWindowBits: sendClientBits)
        }
        return nil
    }
}
