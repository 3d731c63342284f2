import Glibc
import PushLoop
import Synchronization

/// Admission control for new connections (`limits.max_connections`,
/// `limits.max_connections_per_ip`), shared by every loop.
///
/// The table is touched only when a connection is accepted or closed, never per request or per
/// event, so one `Mutex` is cheap enough: a few hundred nanoseconds per accept.
///
/// A refused connection is answered `503` with `Retry-After` and closed; it is never counted.
final class ConnectionAdmission: Sendable {
    /// Why a connection was refused.
    enum Refusal: Error, Equatable {
        /// `limits.max_connections` connections are open.
        case overall(limit: Int)
        /// This client address already has `limits.max_connections_per_ip` connections open.
        case perClient(limit: Int)
    }

    /// What an admitted connection holds; handed back to ``release(_:)`` when it closes.
    struct Ticket: Sendable {
        /// The client address counted in the per-client table, or nil when it was exempt.
        let host: String?
    }

    private struct Table {
        var total = 0
        var perHost: [String: Int] = [:]
    }

    private let table = Mutex(Table())

    /// Counts a new connection from `host`, or says why it must be refused. A `maxTotal` of 0
    /// means "derived from RLIMIT_NOFILE" (``derivedMaxConnections``); a `maxPerHost` of 0 means
    /// no per-client limit. Loopback peers are not counted per client when `exemptLoopback` is set
    /// (a reverse proxy on the same host makes every internet client look like 127.0.0.1).
    func admit(host: String, maxTotal: Int, maxPerHost: Int, exemptLoopback: Bool) -> Result<Ticket, Refusal> {
        let total = maxTotal > 0 ? maxTotal : Self.derivedMaxConnections
        let perClient = maxPerHost > 0 && !(exemptLoopback && Self.isLoopback(host))
        return table.withLock { t in
            if t.total >= total { return .failure(.overall(limit: total)) }
            if perClient {
                let n = t.perHost[host, default: 0]
                if n >= maxPerHost { return .failure(.perClient(limit: maxPerHost)) }
                t.perHost[host] = n + 1
            }
            t.total += 1
            return .success(Ticket(host: perClient ? host : nil))
        }
    }

    /// Forgets a connection admitted with `ticket`.
    func release(_ ticket: Ticket) {
        table.withLock { t in
            t.total -= 1
            if let host = ticket.host {
                let n = t.perHost[host, default: 1] - 1
                t.perHost[host] = n > 0 ? n : nil
            }
        }
    }

    /// Connections open now (admitted and not yet released).
    var openConnections: Int { table.withLock { $0.total } }

    /// The default of `limits.max_connections`: the soft RLIMIT_NOFILE (read once, after pushd
    /// raised it to the hard limit at start-up) minus 64 descriptors kept for listeners, the
    /// io_uring/epoll descriptors, the state directory, logging and the refusals themselves.
    static let derivedMaxConnections: Int = {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 - 64 }
        let soft = UInt64(limit.rlim_cur)  // RLIM_INFINITY is UInt64.max: clamped below
        return max(16, Int(min(soft, 1 << 24)) - 64)
    }()

    /// Whether a numeric host is a loopback address (127.0.0.0/8, ::1, ::ffff:127.x.x.x).
    static func isLoopback(_ host: String) -> Bool {
        host.hasPrefix("127.") || host == "::1" || host.hasPrefix("::ffff:127.")
    }
}

extension LoopWorker {
    /// Admits a just-accepted connection or answers `503` + `Retry-After` and closes it.
    /// Returns whether the connection was admitted.
    func admitConnection(_ c: Connection) -> Bool {
        let h = config.http
        switch shared.admission.admit(
            host: c.peer.host, maxTotal: h.maxConnections, maxPerHost: h.maxConnectionsPerIP,
            exemptLoopback: h.exemptLoopback)
        {
        case .success(let ticket):
            c.admission = ticket
            return true
        case .failure(let refusal):
            shared.stats.badRequest()
            let message: String
            let code: String
            switch refusal {
            case .overall(let limit):
                code = "too_many_connections"
                message = "pushd has \(limit) connections open (limits.max_connections); retry later"
            case .perClient(let limit):
                code = "too_many_connections_from_client"
                message = "\(limit) connections from this address are open (limits.max_connections_per_ip)"
            }
            logger.debug("connection refused: \(code)", metadata: ["peer": "\(c.peer)"])
            reply(
                c,
                HTTPResponse.error(status: 503, code: code, message: message, extraHeaders: [("Retry-After", "5")], close: true),
                close: true)
            return false
        }
    }
}
