/// A WebSocket close status code (RFC 6455 §7.4).
///
/// A struct rather than an enum because any code in 3000–4999 is legal on the wire (§7.4.2):
/// the named constants are the codes of §7.4.1 and the IANA "WebSocket Close Code Number"
/// registry (§11.7).
public struct WebSocketCloseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The 16-bit code as sent in network byte order in the first two bytes of a Close payload.
    public var rawValue: UInt16

    /// Wraps any value; use ``isValidInCloseFrame`` to check whether it may be sent or received.
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Same as ``init(rawValue:)``.
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    /// 1000: normal closure — the purpose of the connection was fulfilled (§7.4.1).
    public static let normalClosure = WebSocketCloseCode(1000)
    /// 1001: the endpoint is going away (server shutting down, page navigated away) (§7.4.1).
    public static let goingAway = WebSocketCloseCode(1001)
    /// 1002: protocol error (§7.4.1).
    public static let protocolError = WebSocketCloseCode(1002)
    /// 1003: a data type the endpoint cannot accept, e.g. binary where only text is understood (§7.4.1).
    public static let unsupportedData = WebSocketCloseCode(1003)
    /// 1005: "no status code was present" — for local reporting only, never in a Close frame (§7.4.1).
    public static let noStatusReceived = WebSocketCloseCode(1005)
    /// 1006: "closed abnormally" (no Close frame) — for local reporting only, never in a Close frame (§7.4.1).
    public static let abnormalClosure = WebSocketCloseCode(1006)
    /// 1007: data inconsistent with the message type, e.g. invalid UTF-8 in a text message (§7.4.1, §8.1).
    public static let invalidPayloadData = WebSocketCloseCode(1007)
    /// 1008: a message violates the endpoint's policy (generic) (§7.4.1).
    public static let policyViolation = WebSocketCloseCode(1008)
    /// 1009: a message too big to process (§7.4.1).
    public static let messageTooBig = WebSocketCloseCode(1009)
    /// 1010: (client only) the server did not negotiate a required extension (§7.4.1).
    public static let mandatoryExtension = WebSocketCloseCode(1010)
    /// 1011: the server hit an unexpected condition (§7.4.1, erratum 3227).
    public static let internalError = WebSocketCloseCode(1011)
    /// 1012: the service is restarting (IANA registry, §11.7).
    public static let serviceRestart = WebSocketCloseCode(1012)
    /// 1013: try again later, e.g. the server is overloaded (IANA registry, §11.7).
    public static let tryAgainLater = WebSocketCloseCode(1013)
    /// 1014: bad gateway (IANA registry, §11.7).
    public static let badGateway = WebSocketCloseCode(1014)
    /// 1015: TLS handshake failure — for local reporting only, never in a Close frame (§7.4.1).
    public static let tlsHandshakeFailure = WebSocketCloseCode(1015)

    /// Whether this code may appear in a Close frame, sent or received (RFC 6455 §7.4.1, §7.4.2,
    /// IANA registry):
    /// - 1000–1003, 1007–1011: defined by §7.4.1;
    /// - 1012–1014: registered with IANA since (service restart, try again later, bad gateway);
    /// - 3000–4999: libraries, frameworks and applications (§7.4.2).
    ///
    /// Everything else is invalid: 0–999 (unused), 1004 (reserved), 1005/1006/1015 (local
    /// reporting only), 1016–2999 (reserved for future extensions), 5000 and above. Receiving an
    /// invalid code is a protocol error (1002).
    public var isValidInCloseFrame: Bool {
        switch rawValue {
        case 1000...1003, 1007...1014, 3000...4999: return true
        default: return false
        }
    }

    /// The decimal code, e.g. `"1002"`.
    public var description: String { String(rawValue) }
}
