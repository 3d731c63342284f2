import Synchronization

/// How a WebSocket subscriber receives events (API.md "Subscribe"): which message, and whether it
/// is compressed with permessage-deflate. Part of ``StreamFormat``, so subscribers with the same
/// topics and the same `WebSocketFrameFormat` on one loop read the same ``StreamLog``.
public struct WebSocketFrameFormat: Hashable, Sendable, CustomStringConvertible {
    /// The message carried by each event's frame.
    public enum Message: Hashable, Sendable {
        /// The JSON envelope `{"id":"..","topic":"..","event":"..","data":".."}` in a text frame.
        case envelope
        /// The bare event data (`?format=raw`): a text frame when the data is valid UTF-8 (always
        /// the case for events published over HTTP), a binary frame otherwise (RFC 6455 §5.6).
        case raw
    }

    /// The message carried by each event's frame.
    public var message: Message
    /// 0: frames are not compressed. 9–15: each message is compressed on its own with
    /// permessage-deflate and an LZ77 window of 2^N bytes (RFC 7692 §7.1.2.1), with
    /// `server_no_context_takeover` (§7.1.1.1), so the compressed bytes depend only on the event
    /// and the window and are the same for every subscriber that agreed on that window.
    public var deflateWindowBits: Int

    /// A format; `deflateWindowBits` 0 means uncompressed.
    public init(message: Message, deflateWindowBits: Int = 0) {
        self.message = message
        self.deflateWindowBits = deflateWindowBits
    }

    /// E.g. `envelope`, `raw+deflate15`.
    public var description: String {
        (message == .envelope ? "envelope" : "raw") + (deflateWindowBits > 0 ? "+deflate\(deflateWindowBits)" : "")
    }
}

/// The WebSocket frames of one event, built lazily, at most once per ``WebSocketFrameFormat``,
/// and shared by every loop and subscriber (RFC 6455 §5.2 framing, RFC 7692 §6 compression).
///
/// Why lazily and not at publish: most deployments have SSE-only or WebSocket-only topics, and a
/// deployment with compression may serve several windows; building every variant eagerly under
/// the Broker's lock would put envelope encoding (and deflate) on the publisher's critical path
/// for formats nobody reads. Lazily, the first loop that fans the event out to a log of a format
/// builds it under this cache's own small lock; every other loop (and every replay) finds it
/// built. Each frame is therefore built once per event and format, never once per subscriber.
/// The lock is per event, so loops only ever contend when they fan out the very same event at
/// the very same moment, and then only for the duration of one lookup or one build.
public final class WebSocketEventFrames: Sendable {
    private let built = Mutex<[(WebSocketFrameFormat, SharedBytes)]>([])

    /// An empty cache.
    public init() {}

    /// The frame for `format`, building it with `build` if this is the first request.
    /// `build` runs under the lock, at most once per format.
    public func frame(_ format: WebSocketFrameFormat, build: () -> SharedBytes) -> SharedBytes {
        built.withLock { list in
            for (f, bytes) in list where f == format { return bytes }
            let bytes = build()
            list.append((format, bytes))
            return bytes
        }
    }

    /// Bytes held by the frames built so far.
    public var retainedBytes: Int { built.withLock { $0.reduce(0) { $0 + $1.1.count } } }
}

extension EncodedEvent {
    /// This event's complete WebSocket frame in `format`, built on first use (see
    /// ``WebSocketEventFrames``) and then shared. Unmasked, final, RSV1 set when compressed
    /// (RFC 6455 §5.2, RFC 7692 §6.1).
    public func webSocketFrame(_ format: WebSocketFrameFormat) -> SharedBytes {
        webSocketFrames.frame(format) { WebSocketEventFrameBuilder.build(self, format) }
    }
}

/// Builds one event's frame for one format. Internal: use ``EncodedEvent/webSocketFrame(_:)``.
enum WebSocketEventFrameBuilder {
    static func build(_ event: EncodedEvent, _ format: WebSocketFrameFormat) -> SharedBytes {
        let opcode: WebSocketOpcode
        var payload: [UInt8]
        switch format.message {
        case .envelope:
            opcode = .text
            payload = WebSocketMessages.event(id: event.id, topic: event.topic, event: event.name, data: event.data.buffer)
        case .raw:
            opcode = WebSocketUTF8Validator.isValid(event.data.buffer) ? .text : .binary
            payload = event.data.array
        }
        if format.deflateWindowBits > 0, let compressed = PerMessageDeflateCodec.compress(payload, windowBits: format.deflateWindowBits) {
            return WebSocketFrameEncoder.sharedFrame(opcode, payload: compressed, compressed: true)
        }
        return WebSocketFrameEncoder.sharedFrame(opcode, payload: payload)
    }
}
