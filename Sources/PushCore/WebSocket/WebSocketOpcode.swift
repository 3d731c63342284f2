/// A frame opcode (RFC 6455 §5.2, §11.8). Opcodes 0x3–0x7 and 0xB–0xF are reserved and have no
/// case: a frame carrying one is a protocol error (1002).
public enum WebSocketOpcode: UInt8, Sendable, Equatable {
    /// 0x0: a continuation fragment of a data message (§5.4).
    case continuation = 0x0
    /// 0x1: the first frame of a text (UTF-8) message (§5.6).
    case text = 0x1
    /// 0x2: the first frame of a binary message (§5.6).
    case binary = 0x2
    /// 0x8: Close (§5.5.1).
    case close = 0x8
    /// 0x9: Ping (§5.5.2).
    case ping = 0x9
    /// 0xA: Pong (§5.5.3).
    case pong = 0xA

    /// Whether this is a control opcode (high bit of the nibble set, §5.5): Close, Ping or Pong.
    /// Control frames must not be fragmented and carry at most 125 payload bytes.
    public var isControl: Bool { rawValue & 0x8 != 0 }
}
