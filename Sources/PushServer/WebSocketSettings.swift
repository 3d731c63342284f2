import PushCore

/// `websocket.*` — the WebSocket transport (RFC 6455, RFC 7692; API.md "Subscribe").
public struct WebSocketSettings: Sendable, Equatable {
    /// `websocket.max_message_bytes`: the largest client message accepted, after joining
    /// fragments and after inflating; larger ones close the connection with 1009 (RFC 6455 §7.4.1),
    /// checked on the declared frame length before any payload byte is buffered (§10.4).
    public var maxMessageBytes: Int = 64 * 1024
    /// `websocket.ping_interval`: seconds between server Pings (RFC 6455 §5.5.2); 0 disables.
    public var pingInterval: Double = 30
    /// `websocket.pong_timeout`: seconds a Pong may take; after that the connection is closed
    /// with 1011 (§7.4.1) and cut 2 s later if the peer does not answer the Close.
    public var pongTimeout: Double = 10
    /// `websocket.permessage_deflate`: whether to accept permessage-deflate offers (RFC 7692).
    /// pushd always answers with `server_no_context_takeover`, so each event is compressed once
    /// per window size and shared by every subscriber.
    public var permessageDeflate: Bool = true
    /// `websocket.allow_publish`: whether the `publish` command is allowed. Until authentication
    /// exists (issue 6) this switch is what "publish rights" means; off by default.
    public var allowPublish: Bool = false
    /// `websocket.echo_endpoint`: serve `GET /ws/echo`, which echoes every message (for the
    /// Autobahn|Testsuite conformance run). Off by default.
    public var echoEndpoint: Bool = false
    /// The defaults above.
    public init() {}
}
