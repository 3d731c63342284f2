/// Encodes Server-Sent Events wire bytes (WHATWG HTML §9.2.5 "Parsing an event stream").
///
/// Per event: `id: <id>\n`, `event: <type>\n` when set, one `data: <line>\n` per line of the data
/// — split on CRLF, CR and LF, because a client's parser ends a field at any of them — then an
/// empty line that dispatches the event. Empty data is sent as one `data: ` line, which a client
/// dispatches as an empty string.
public enum SSEEncoder {
    /// Bytes for one event. `name` must already be valid (`EventName.isValid`).
    public static func encode(id: EventID, name: String?, data: UnsafeRawBufferPointer) -> SharedBytes {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + 48)
        out.append(contentsOf: "id: ".utf8)
        out.append(contentsOf: id.description.utf8)
        out.append(0x0A)
        if let name {
            out.append(contentsOf: "event: ".utf8)
            out.append(contentsOf: name.utf8)
            out.append(0x0A)
        }
        appendData(data, to: &out)
        out.append(0x0A)
        return SharedBytes(out)
    }

    /// Appends `data: …\n` lines for `data`, splitting on CRLF, CR and LF.
    public static func appendData(_ data: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        let prefix: [UInt8] = Array("data: ".utf8)
        out.append(contentsOf: prefix)
        var i = 0
        let n = data.count
        while i < n {
            let b = data[i]
            if b == 0x0D || b == 0x0A {
                out.append(0x0A)
                out.append(contentsOf: prefix)
                if b == 0x0D && i + 1 < n && data[i + 1] == 0x0A { i += 1 }
            } else {
                out.append(b)
            }
            i += 1
        }
        out.append(0x0A)
    }

    /// A stream's opening bytes: the reconnection delay and a comment, flushed with the headers
    /// so a client sees the stream open before any event.
    public static func prelude(retryMilliseconds: Int) -> [UInt8] {
        Array("retry: \(retryMilliseconds)\n: pushd stream open\n\n".utf8)
    }

    /// A heartbeat: a comment line that keeps intermediaries from timing an idle stream out.
    public static let heartbeat: [UInt8] = Array(":\n".utf8)

    /// The gap signal (API.md "Event ids and replay"): `event: pushd.gap` with JSON data naming the
    /// client's cursor and the oldest id still retained (empty string when nothing is retained).
    public static func gap(lastEventID: String, oldestRetained: EventID?) -> [UInt8] {
        var out: [UInt8] = Array("event: pushd.gap\ndata: ".utf8)
        out.append(contentsOf: "{\"last_event_id\":".utf8)
        out.append(contentsOf: JSON.quoted(lastEventID).utf8)
        out.append(contentsOf: ",\"oldest_retained\":".utf8)
        out.append(contentsOf: JSON.quoted(oldestRetained?.description ?? "").utf8)
        out.append(contentsOf: "}\n\n".utf8)
        return out
    }
}

/// Minimal JSON text helpers for the daemon's own small responses.
public enum JSON {
    /// `s` as a JSON string literal (RFC 8259 §7), escaping quotes, backslashes and control characters.
    public static func quoted(_ s: String) -> String {
        var out = "\""
        out.reserveCapacity(s.utf8.count + 2)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
        return out
    }
}
