import PushCore
import PushLoop

/// One accepted connection's state on its loop: the HTTP request being read, what it has to write
/// (`OutboundQueue`), and, once it subscribes, its place in the loop's fan-out.
final class Connection {
    /// What the connection is doing.
    enum Mode {
        /// Reading requests and answering them in order (publishers, health checks).
        case http
        /// An SSE stream: no more requests are read; events flow out until either side closes.
        case eventStream
        /// A WebSocket (RFC 6455): frames are read and written until either side closes; `ws`
        /// holds its state.
        case webSocket
    }

    let id: ConnectionID
    let peer: PeerAddress
    var mode: Mode = .http
    /// The request parser; released once the connection becomes a stream (idle streams hold no
    /// parse state). Stored out of line (`parserBox`, 200+ bytes), so a stream's Connection stays
    /// small: per-connection memory is what bounds how many subscribers one machine holds.
    var parser: HTTPRequestParser? {
        get { parserBox?.value }
        set {
            guard let newValue else {
                parserBox = nil
                if headBox?.value == nil { headBox = nil }
                return
            }
            if let box = parserBox { box.value = newValue } else { parserBox = Box(newValue) }
        }
    }
    private var parserBox: Box<HTTPRequestParser>?
    /// The head of the request whose body is being read; out of line like `parser` (the box is
    /// kept between requests and released with the parser).
    var head: HTTPRequestHead? {
        get { headBox?.value }
        set {
            if let box = headBox { box.value = newValue } else if newValue != nil { headBox = Box(newValue) }
        }
    }
    private var headBox: Box<HTTPRequestHead?>?
    /// Body bytes of the current request.
    var body: [UInt8] = []
    /// Received bytes not parsed yet because `limits.max_pipelined_requests` responses wait to be
    /// written (LoopWorker.handlePlaintext); non-empty exactly while parsing is stalled.
    var backlog: PipelineBacklog
    /// The loop was asked to stop reading the socket (`EventLoop.pauseReceiving`) because requests
    /// wait in `backlog`: TCP flow control then slows the client down.
    var receivePaused = false
    /// Everything to write, in order.
    let out: OutboundQueue
    /// Close once everything queued has been written (after an error response or `Connection: close`).
    var closeAfterFlush = false
    /// `close` was called on the loop; waiting for `closed`.
    var closing = false
    /// Monotonic ns of the last send start or request start (idle/heartbeat/timeouts).
    var lastActivity: UInt64
    /// Monotonic ns when the current phase of reading a request began, 0 when none: the first
    /// byte of a partial head (or the TLS handshake) while `head` is nil — `limits.header_timeout`
    /// counts from here — or the end of the head while its body is read (`head` set) —
    /// `limits.body_timeout` counts from here.
    var phaseStarted: UInt64 = 0
    /// Monotonic ns when the `disconnect` slow policy evicted this subscriber (0 when not).
    var evictedAt: UInt64 = 0
    /// Monotonic ns when the connection became an event stream (for `sse.max_stream_age`).
    var streamStarted: UInt64 = 0
    /// Wall-clock ms when the stream's token expires and the stream is ended (0: never; Auth.swift).
    var authExpiresAt: UInt64 = 0
    /// The token an SSE stream was opened with (header, cookie or `?access_token=`), kept so a
    /// reload that changes `auth.*` can check the stream again (`reauthorizeConnections`); nil
    /// when none was given.
    var streamToken: String?
    /// How many times the `drop` policy skipped this subscriber's backlog.
    var slowDrops = 0
    /// Whether the peer closed its side.
    var peerClosed = false
    /// The connection's place in the shared connection counts (ConnectionLimits.swift); nil when
    /// it was refused.
    var admission: ConnectionAdmission.Ticket?
    /// WebSocket state, once the connection was upgraded.
    var ws: WebSocketSession?
    /// TLS state when the server terminates TLS (TLSSession.swift); nil for plaintext.
    var tls: TLSSession?
    /// An error answer with `close` was queued: the connection ends with a lingering close
    /// (Linger.swift) rather than at once, so the client can read it while still sending.
    var lingerOnClose = false
    /// Monotonic ns when a lingering close gives up waiting for the peer's FIN; 0 when not lingering.
    var lingerUntil: UInt64 = 0
    /// Bytes a lingering connection may still read and discard before it is closed anyway.
    var lingerBytesLeft = 0

    /// `receiveSlack`: bytes the loop may still deliver after reading was paused (its receive
    /// buffers), added to the backlog's bound.
    init(id: ConnectionID, peer: PeerAddress, limits: HTTPParserLimits, receiveSlack: Int, now: UInt64) {
        self.id = id
        self.peer = peer
        self.parserBox = Box(HTTPRequestParser(limits: limits))
        // One largest request, plus what was already received when reading paused.
        self.backlog = PipelineBacklog(
            limit: limits.maxRequestLineBytes + limits.maxHeaderBytes + limits.maxBodyBytes + receiveSlack)
        self.out = OutboundQueue(token: Connection.token(id))
        self.lastActivity = now
    }

    /// Packs a connection id into the opaque token an OutboundQueue carries.
    static func token(_ id: ConnectionID) -> UInt64 { UInt64(id.slot) << 32 | UInt64(id.generation) }
    static func id(fromToken token: UInt64) -> ConnectionID {
        ConnectionID(slot: UInt32(truncatingIfNeeded: token >> 32), generation: UInt32(truncatingIfNeeded: token))
    }
}
