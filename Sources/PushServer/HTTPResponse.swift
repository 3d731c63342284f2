import PushCore

/// Builds complete HTTP/1.1 responses (RFC 9112 §4, RFC 9110 §15) as immutable bytes ready to send.
enum HTTPResponse {
    /// A response with a body and Content-Length. `close` adds `Connection: close`.
    static func make(
        status: Int, contentType: String?, body: [UInt8], extraHeaders: [(String, String)] = [], close: Bool = false
    ) -> SharedBytes {
        var head = "HTTP/1.1 \(status) \(reasonPhrase(status))\r\n"
        if let contentType { head += "Content-Type: \(contentType)\r\n" }
        // RFC 9110 §8.6: no Content-Length in a 204 (CORS preflight answers).
        if status != 204 { head += "Content-Length: \(body.count)\r\n" }
        for (name, value) in extraHeaders { head += "\(name): \(value)\r\n" }
        if close { head += "Connection: close\r\n" }
        head += "\r\n"
        var bytes = Array(head.utf8)
        bytes.append(contentsOf: body)
        return SharedBytes(bytes)
    }

    /// A JSON error (API.md "Publish"): `{"error":"<code>","message":"<text>"}`.
    static func error(
        status: Int, code: String, message: String, extraHeaders: [(String, String)] = [], close: Bool = false
    ) -> SharedBytes {
        let body = "{\"error\":\(JSON.quoted(code)),\"message\":\(JSON.quoted(message))}\n"
        return make(
            status: status, contentType: "application/json", body: Array(body.utf8), extraHeaders: extraHeaders,
            close: close)
    }

    /// A JSON success body.
    static func json(_ text: String, status: Int = 200, close: Bool = false) -> SharedBytes {
        make(status: status, contentType: "application/json", body: Array(text.utf8), close: close)
    }

    /// `100 Continue` (RFC 9110 §10.1.1), sent before reading a body the client is holding back.
    static let continueResponse = SharedBytes(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))

    /// The head of an SSE stream (API.md "Subscribe", WHATWG HTML §9.2): no Content-Length — the
    /// body runs until the connection closes — followed at once by the stream prelude.
    static func eventStreamHead(prelude: [UInt8]) -> SharedBytes {
        var bytes = Array(
            ("HTTP/1.1 200 OK\r\n" + "Content-Type: text/event-stream; charset=utf-8\r\n"
                + "Cache-Control: no-store\r\n" + "X-Accel-Buffering: no\r\n" + "Connection: keep-alive\r\n\r\n").utf8)
        bytes.append(contentsOf: prelude)
        return SharedBytes(bytes)
    }

    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 200: return "OK"
        case 204: return "No Content"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 411: return "Length Required"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 426: return "Upgrade Required"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 503: return "Service Unavailable"
        case 505: return "HTTP Version Not Supported"
        default: return "Status \(status)"
        }
    }
}
