// The LoopWorker side of TLS termination: the two seams where LoopWorker.swift hands a TLS
// connection's bytes here — received ciphertext is decrypted before the HTTP parser sees it
// (`receivedTLS`), and the OutboundQueue's plaintext is encrypted before `loop.send`
// (`startTLSSend`, `tlsSendCompleted`). PushLoop is untouched: TLS works the same on io_uring and
// epoll.
//
// Cost: the fan-out shares one plaintext stream log per topic per loop, but TLS records are per
// connection (keys, sequence numbers), so each subscriber's range is encrypted into its own
// buffer: one AEAD pass and one copy per subscriber per send, instead of zero copies.
import Logging
import PushCore
import PushLoop

extension LoopWorker {
    /// Most plaintext encrypted for one send: bounds a connection's ciphertext buffer (the rest of
    /// a longer range goes out with the next send, like a short send).
    static let tlsPlaintextPerSend = 64 * 1024

    /// A new connection on a TLS server gets its session. The header timeout
    /// (`limits.header_timeout`) runs from now, so it also bounds the handshake.
    func startTLS(_ c: Connection) {
        guard let context = shared.tls.context else { return }
        guard let session = TLSSession(context: context) else {
            logger.warning("TLS: cannot allocate a session", metadata: ["peer": "\(c.peer)"])
            close(c)
            return
        }
        c.tls = session
        c.phaseStarted = now
    }

    /// Seam 1: ciphertext in → plaintext to `handlePlaintext` (the HTTP parser).
    func receivedTLS(_ c: Connection, _ tls: TLSSession, _ bytes: UnsafeRawBufferPointer) {
        guard !tls.failed else { return }
        if !tls.firstBytesSeen {
            tls.firstBytesSeen = true
            if TLSWire.looksLikePlaintextHTTP(bytes) {
                logger.debug("TLS: plaintext HTTP on a TLS port, answered 400", metadata: ["peer": "\(c.peer)"])
                tls.failed = true
                tls.queueRaw(TLSWire.plaintextRequestResponse)
                failTLS(c)
                return
            }
        }
        let outcome = tls.receive(
            bytes,
            established: {
                // Handshake done: from now on the header timeout waits for a request head again.
                if c.parser?.hasPartialHead != true { c.phaseStarted = 0 }
                c.lastActivity = now
                logger.trace("TLS established", metadata: ["peer": "\(c.peer)", "version": "\(tls.version)"])
            },
            deliver: { plain in
                guard !c.closing else { return }
                handlePlaintext(c, plain)
            })
        guard !c.closing else { return }
        switch outcome {
        case .needMore:
            startSend(c)  // a handshake flight, session tickets, or nothing
        case .peerClosed:
            receiveEnded(c.id, error: 0)
            if !c.closing { startSend(c) }
        case .failed(let reason):
            logger.debug(
                tls.established ? "TLS error, closing" : "TLS handshake failed",
                metadata: ["peer": "\(c.peer)", "reason": "\(reason)"])
            tls.failed = true
            failTLS(c)
        }
    }

    /// Closes a connection that has nothing left to write, cleanly: on TLS, after close_notify
    /// (RFC 8446 §6.1) was written, so the client can tell the end from a truncation; on plaintext
    /// (nothing to send) at once, exactly like `close`. Used where an idle connection is ended on
    /// purpose (idle timeout, drain, `sse.max_stream_age`); errors still use `close`.
    func finish(_ c: Connection) {
        c.closeAfterFlush = true
        if !startSend(c) && c.out.isIdle { closeFlushed(c) }
    }

    /// Sends the alert OpenSSL produced (if any), then closes.
    private func failTLS(_ c: Connection) {
        c.out.discardQueued()
        c.closeAfterFlush = true
        if !startSend(c) { close(c) }
    }

    /// Seam 2: the TLS part of `startSend`. Returns whether a send is in flight (or the
    /// connection was closed), so callers do not close a connection whose last ciphertext —
    /// possibly close_notify — is still being written.
    func startTLSSend(_ c: Connection, _ tls: TLSSession) -> Bool {
        if tls.sending { return true }
        if tls.failed { return sendStaged(c, tls) }
        if !tls.established {
            if c.closeAfterFlush {
                // A 408 or 503 before the handshake finished cannot be said in TLS: just close.
                close(c)
                return true
            }
            return sendStaged(c, tls)
        }
        if tls.heldPlaintext == nil {
            let deliveredBefore = c.out.deliveredEvents
            if let range = c.out.nextSend() {
                deliveredEvents &+= c.out.deliveredEvents &- deliveredBefore  // /metrics
                tls.heldPlaintext = UnsafeRawBufferPointer(rebasing: range.prefix(Self.tlsPlaintextPerSend))
            }
        }
        if let plain = tls.heldPlaintext {
            switch tls.encrypt(plain) {
            case .encrypted:
                tls.heldPlaintext = nil
                c.lastActivity = now
            case .wantRead:
                break  // retried when the peer's bytes arrive (received → startSend)
            case .failed(let reason):
                logger.debug("TLS write failed, closing", metadata: ["peer": "\(c.peer)", "reason": "\(reason)"])
                tls.failed = true
                close(c)
                return true
            }
        } else if c.closeAfterFlush, c.out.isIdle, !tls.shutdownSent {
            tls.shutdown()  // everything answered: close_notify before the FIN
        }
        return sendStaged(c, tls)
    }

    private func sendStaged(_ c: Connection, _ tls: TLSSession) -> Bool {
        guard let bytes = tls.stage() else { return false }
        loop.send(c.id, bytes)
        return true
    }

    /// Seam 2, completion: `result > 0` ciphertext bytes were written. Returns true when the
    /// whole staged buffer is written (its plaintext is reported to the queue and the common
    /// path continues); false when more ciphertext was sent or the connection closed.
    func tlsSendCompleted(_ c: Connection, _ tls: TLSSession, _ result: Int) -> Bool {
        shared.stats.bytesOut(result)
        if let rest = tls.sent(result) {
            loop.send(c.id, rest)
            return false
        }
        if tls.failed {
            close(c)
            return false
        }
        let plain = tls.takePlaintextWritten()
        if plain > 0 { c.out.completed(plain) }
        return true
    }
}
