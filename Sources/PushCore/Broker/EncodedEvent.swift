/// One published event, encoded once, immutable, shared by every loop and subscriber.
///
/// The SSE bytes are built at publish time under the Broker's lock (the id is part of them); every
/// delivery and every replay sends these same bytes.
public final class EncodedEvent: Sendable {
    /// The id pushd assigned.
    public let id: EventID
    /// The topic it was published to (a valid topic name).
    public let topic: String
    /// The SSE `event:` type, if any.
    public let name: String?
    /// The published data, as received.
    public let data: SharedBytes
    /// The complete SSE wire bytes of the event (`id:`, `event:`, `data:` lines and the blank line).
    public let sse: SharedBytes
    /// The event's WebSocket frames, built on first use per format (`webSocketFrame(_:)`).
    public let webSocketFrames = WebSocketEventFrames()

    public init(id: EventID, topic: String, name: String?, data: SharedBytes) {
        self.id = id
        self.topic = topic
        self.name = name
        self.data = data
        self.sse = SSEEncoder.encode(id: id, name: name, data: data.buffer)
    }

    /// Bytes counted against replay and queue limits.
    public var retainedBytes: Int { sse.count + data.count + 64 }
}
