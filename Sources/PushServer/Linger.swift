// Lingering close (RFC 9112 §9.6): after an error answered before the request was read to its
// end (413 from Content-Length, 431, 400, 408, 401 before a body…), the client may still be
// sending. Closing the socket with unread input makes the kernel send RST, and a client that has
// not read the answer yet may lose it. So such a connection, once its answer is written, is
// half-closed (`EventLoop.shutdownWrite`: FIN after the answer) and kept reading — every byte
// discarded — until the peer closes its side, `limits.linger_bytes` were discarded, or
// `limits.linger_timeout` passed; then it is closed.
//
// A WebSocket ends the same way once its Close frame is written (WebSocketEndpoint.wsClose): the
// client's Close reply, or the rest of a message refused with 1009, is discarded until its FIN.
//
// Only error answers on admitted connections linger: a `Connection: close` after a complete
// request leaves nothing unread, and the 503s of connection limits and draining are answered to
// shed load, where holding the socket longer would defeat their purpose.
import PushCore
import PushLoop

extension LoopWorker {
    /// Marks `c` for a lingering close when `response` (queued with `close`) is an error answer.
    func noteLingerOnClose(_ c: Connection, _ response: SharedBytes) {
        guard c.mode == .http, c.admission != nil, !shared.isDraining,
            Self.statusCode(of: response) >= 400
        else { return }
        c.lingerOnClose = true
    }

    /// Ends a connection whose last bytes are written: a lingering close when it answered an error
    /// and the peer may still be sending, else `close` at once.
    func closeFlushed(_ c: Connection) {
        let timeout = config.http.lingerTimeout
        guard c.lingerOnClose, c.lingerUntil == 0, !c.closing, !c.peerClosed, timeout > 0,
            config.http.lingerBytes > 0, !c.out.isSending, loop.shutdownWrite(c.id)
        else { return close(c) }
        c.lingerUntil = Clock.monotonicNanoseconds() &+ UInt64(timeout * 1e9)
        c.lingerBytesLeft = config.http.lingerBytes
        c.parser = nil
        c.head = nil
        c.body = []
        c.backlog.removeAll()
        if c.receivePaused {
            c.receivePaused = false
            loop.resumeReceiving(c.id)  // lingering reads (and discards) what the peer still sends
        }
        lingering.append(c.id)
    }

    /// Bytes read during a lingering close: discarded; past `limits.linger_bytes` the connection
    /// is closed.
    func lingerDiscard(_ c: Connection, _ count: Int) {
        c.lingerBytesLeft -= count
        if c.lingerBytesLeft <= 0 { close(c) }
    }

    /// Closes lingering connections whose `limits.linger_timeout` passed; forgets ended ones.
    func expireLingering() {
        lingering.removeAll { id in
            guard let c = connection(id), !c.closing, c.lingerUntil != 0 else { return true }
            guard now >= c.lingerUntil else { return false }
            close(c)
            return true
        }
    }

    /// The status code of an HTTP/1.1 response's bytes ("HTTP/1.1 413 …": bytes 9..<12); 0 when
    /// `response` is too short or not a status line.
    static func statusCode(of response: SharedBytes) -> Int {
        guard response.count >= 12 else { return 0 }
        var status = 0
        for i in 9..<12 {
            let digit = response.base.load(fromByteOffset: i, as: UInt8.self) &- UInt8(ascii: "0")
            guard digit <= 9 else { return 0 }
            status = status * 10 + Int(digit)
        }
        return status
    }
}
