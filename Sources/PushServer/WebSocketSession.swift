import PushCore

/// The WebSocket state of one upgraded connection (RFC 6455): the frame decoder for what the
/// client sends, what was negotiated, the topic set, the replay cursor, and the keep-alive and
/// closing handshake. Lives on the connection's loop.
final class WebSocketSession {
    /// Decodes client frames (masking, limits, fragmentation, UTF-8, RFC 6455 §5). Made when
    /// bytes arrive and dropped again when it is at rest between frames (`parse`), so an idle
    /// WebSocket holds no decoder: per-connection memory bounds how many subscribers fit.
    private var decoderBox: Box<WebSocketFrameDecoder>?
    private let maxMessageBytes: Int
    /// `GET /ws/echo`: every message is sent back; no commands, no subscription.
    let echo: Bool
    /// Envelope or raw (`?format=raw`).
    let message: WebSocketFrameFormat.Message
    /// What most sessions never use, kept out of line (one pointer when absent): negotiated
    /// compression, the inflater, the upgrade head kept for later authorization, publish rights.
    private struct Rare {
        var deflate: PerMessageDeflateParameters?
        var inflater: PerMessageInflater?
        var authHead: HTTPRequestHead?
        var publishGrant: PublishGrant?
        var failedAuthCommands = 0
    }
    private var rare: Box<Rare>?
    private func withRare(_ change: (inout Rare) -> Void) {
        if let rare { change(&rare.value) } else {
            var r = Rare()
            change(&r)
            rare = Box(r)
        }
    }
    /// The agreed permessage-deflate parameters (RFC 7692 §7.1), nil when not in use.
    var deflate: PerMessageDeflateParameters? { rare?.value.deflate }
    /// Inflates compressed client messages (RFC 7692 §7.2.2); created on first use.
    var inflater: PerMessageInflater? {
        get { rare?.value.inflater }
        set { withRare { $0.inflater = newValue } }
    }
    /// The subscribed topics, in the order the client added them.
    var topics: [String] = []
    /// The upgrade request's head, kept only when private topics exist, so a later
    /// `{"op":"subscribe"}` is authorized with the same token (Auth.swift).
    var authHead: HTTPRequestHead? {
        get { rare?.value.authHead }
        set { withRare { $0.authHead = newValue } }
    }
    /// What `{"op":"publish"}` may publish to (nil: no publish rights).
    var publishGrant: PublishGrant? {
        get { rare?.value.publishGrant }
        set { withRare { $0.publishGrant = newValue } }
    }
    /// `{"op":"auth"}` commands refused for a bad token; at `WebSocketSession.maxFailedAuth` the
    /// connection is closed (1008), so one socket cannot try tokens without end.
    var failedAuthCommands: Int {
        get { rare?.value.failedAuthCommands ?? 0 }
        set { withRare { $0.failedAuthCommands = newValue } }
    }
    /// Bad tokens one connection may send in `{"op":"auth"}` before it is closed.
    static let maxFailedAuth = 3
    /// See `LoopFanout.Move.cursor`: every event of `topics` up to this id was given.
    var cursor: EventID?
    /// `LoopFanout.Move.attachedAtEvent` of the current log.
    var attachedAtEvent: UInt64 = 0
    /// A Close frame was queued (RFC 6455 §5.5.1): nothing else is sent; once it is written the
    /// TCP connection ends with a lingering close (Linger.swift), or it is cut 2 s after
    /// `closeSentAt` if the frame cannot be written.
    var closeSent = false
    /// Monotonic ns when the Close frame was queued.
    var closeSentAt: UInt64 = 0
    /// Monotonic ns of the last server Ping.
    var lastPingAt: UInt64
    /// Monotonic ns when the unanswered Ping was sent, 0 when none is outstanding.
    var pingOutstandingSince: UInt64 = 0

    init(
        maxMessageBytes: Int, echo: Bool, message: WebSocketFrameFormat.Message,
        deflate: PerMessageDeflateParameters?, now: UInt64
    ) {
        self.maxMessageBytes = maxMessageBytes
        self.echo = echo
        self.message = message
        self.lastPingAt = now
        if let deflate { self.rare = Box(Rare(deflate: deflate)) }
    }

    /// Decodes the next frame event from the front of `bytes` (`WebSocketFrameDecoder.parse`).
    /// When more bytes are needed at a frame boundary the decoder is released.
    func parse(_ bytes: UnsafeRawBufferPointer) -> (consumed: Int, event: WebSocketFrameEvent) {
        let box = decoderBox ?? Box(WebSocketFrameDecoder(maxMessageBytes: maxMessageBytes, permessageDeflate: deflate != nil))
        let result = box.value.parse(bytes)
        if case .needMoreData = result.event, box.value.isAtRest {
            decoderBox = nil
        } else {
            decoderBox = box
        }
        return result
    }

    /// The stream format of this subscriber's log: its message form and compression window.
    var format: StreamFormat {
        .webSocket(WebSocketFrameFormat(message: message, deflateWindowBits: deflate.map { max(9, $0.serverMaxWindowBits) } ?? 0))
    }
}
