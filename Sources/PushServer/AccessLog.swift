// `log.access: true`: one `info` line per HTTP request (method, target, status, peer).
//
// The request being handled is remembered for the duration of `handleRequest` (one at a time on a
// loop); the first response queued for it, or the stream it became, gives the status.
import PushCore

extension LoopWorker {
    /// Calls `handleRequest`, logging the request when the access log is on.
    func handleRequestLogged(_ c: Connection, head: HTTPRequestHead, body: [UInt8]) {
        guard config.accessLog else { return handleRequest(c, head: head, body: body) }
        accessPending = head
        handleRequest(c, head: head, body: body)
        if accessPending != nil { logAccess(c, status: c.mode == .eventStream ? 200 : 0) }
    }

    /// Logs the pending request with the status of `response` (the first bytes of an HTTP/1.1 reply).
    func noteResponse(_ c: Connection, _ response: SharedBytes) {
        guard accessPending != nil else { return }
        var status = 0
        // "HTTP/1.1 200 …": the status is bytes 9..<12.
        if response.count >= 12 {
            for i in 9..<12 { status = status * 10 + Int(response.base.load(fromByteOffset: i, as: UInt8.self) &- UInt8(ascii: "0")) }
        }
        if status == 100 { return }  // the final answer follows
        logAccess(c, status: status)
    }

    private func logAccess(_ c: Connection, status: Int) {
        guard let head = accessPending else { return }
        accessPending = nil
        let target = head.query.map { head.path + "?" + Self.redactedQuery($0) } ?? head.path  // no tokens in logs
        logger.info(
            "\("\(head.method)".uppercased()) \(target) \(status)",
            metadata: ["peer": "\(c.peer)", "access": "1"])
    }
}
