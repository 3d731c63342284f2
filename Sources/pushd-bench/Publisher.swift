// The publisher: C keep-alive HTTP/1.1 connections, each with up to P pipelined POSTs in flight.
// Topic t always goes over connection t % C, so the server sees each topic's events in order.
import CPushShim
import Glibc
import Histogram

/// One publisher connection.
final class PublisherConnection {
    /// Socket, -1 while disconnected.
    var fd: Int32 = -1
    /// Bytes not yet written.
    var output: [UInt8] = []
    /// Bytes of `output` already written.
    var outputOffset = 0
    /// Bytes received and not yet parsed.
    var input: [UInt8] = []
    /// Send times of the requests in flight, oldest first.
    var sentTimes: [UInt64] = []
    /// Index of the oldest entry of `sentTimes`.
    var sentHead = 0
    /// Whether EPOLLOUT is armed.
    var wantsWrite = false

    /// Requests awaiting a response.
    var inFlight: Int { sentTimes.count - sentHead }
}

/// Publishes `messages` events on each of `topics` topics (round-robin), paced or flat out.
final class Publisher {
    private let options: PushdBench
    private let run: UInt32
    private let epfd: Int32
    private let tokenBase: UInt64
    private let destination: sockaddr_in
    private var heads: [[UInt8]] = []
    /// The connections.
    private(set) var connections: [PublisherConnection] = []

    /// Events to publish in all.
    let total: Int
    /// Events handed to a connection so far.
    private(set) var issued = 0
    /// 2xx responses.
    private(set) var ok = 0
    /// Non-2xx responses.
    private(set) var errors = 0
    /// Requests whose connection closed before the response.
    private(set) var lost = 0
    /// Reconnects.
    private(set) var reconnects = 0
    /// Last non-2xx status.
    private(set) var lastBadStatus = 0
    /// First error text.
    private(set) var firstError = ""
    /// CLOCK_MONOTONIC of the first request.
    private(set) var startNanos: UInt64 = 0
    /// CLOCK_MONOTONIC of the last response.
    private(set) var lastResponseNanos: UInt64 = 0
    /// Publish round-trip times (ns).
    private(set) var rtt = Histogram<UInt64>(
        lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000_000, numberOfSignificantValueDigits: .three)

    /// All events have been answered (or lost).
    var finished: Bool { issued == total && ok + errors + lost == total }

    /// Prepares connections registered on `epfd` with tokens `tokenBase + index`.
    init(options: PushdBench, run: UInt32, prefix: String, epfd: Int32, tokenBase: UInt64) {
        self.options = options
        self.run = run
        self.epfd = epfd
        self.tokenBase = tokenBase
        self.total = options.idle ? 0 : options.messages * options.topics
        self.destination = socketAddress(parseIPv4(options.host)!, options.port)
        for t in 0..<options.topics {
            let path = expandPath(options.pubPath, topic: prefix + String(t), index: t)
            let text = "POST \(path) HTTP/1.1\r\nHost: \(options.host):\(options.port)\r\n"
                + "Content-Type: text/plain\r\nContent-Length: \(options.size)\r\n\r\n"
            heads.append(Array(text.utf8))
        }
        for _ in 0..<min(options.pubConns, options.topics) { connections.append(PublisherConnection()) }
    }

    /// Opens every connection (blocking connect on loopback). Returns an error text on failure.
    func connect() -> String? {
        for c in connections.indices {
            if let problem = open(c) { return problem }
        }
        return nil
    }

    private func open(_ c: Int) -> String? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { return "socket: \(errnoText(errno))" }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var sa = destination
        let rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 {
            let code = errno
            close(fd)
            return "publisher connect to \(options.host):\(options.port): \(errnoText(code))"
        }
        setNonBlocking(fd)
        let conn = connections[c]
        conn.fd = fd
        conn.wantsWrite = false
        epollControl(epfd, EPOLL_CTL_ADD, fd, EPOLLIN.rawValue, tokenBase + UInt64(c))
        return nil
    }

    /// Nanoseconds until the next paced publish is due (0 when due or flat out / done).
    func nanosUntilDue(now: UInt64) -> UInt64 {
        guard options.rate > 0, issued < total, startNanos != 0 else { return 0 }
        let due = startNanos + UInt64(Double(issued) * 1e9 / options.rate)
        return due > now ? due - now : 0
    }

    /// Issues every publish that is due and fits the in-flight limit, then writes.
    func step(now: UInt64) {
        if startNanos == 0 && total > 0 { startNanos = now }
        let topics = options.topics
        var touched = false
        while issued < total {
            if options.rate > 0 {
                let due = startNanos + UInt64(Double(issued) * 1e9 / options.rate)
                if due > now { break }
            }
            let topic = issued % topics
            let seq = issued / topics
            let conn = connections[topic % connections.count]
            if conn.fd < 0 || conn.inFlight >= options.pubDepth { break }
            let sent = monotonicNanos()
            conn.output.append(contentsOf: heads[topic])
            EventBody.append(to: &conn.output, size: options.size, run: run, topic: topic, seq: seq, sentNanos: sent)
            conn.sentTimes.append(sent)
            issued += 1
            touched = true
        }
        if touched {
            for c in connections.indices where connections[c].outputOffset < connections[c].output.count { flush(c) }
        }
    }

    /// Handles readiness of connection `c`.
    func handle(_ c: Int, events: UInt32) {
        let conn = connections[c]
        if conn.fd < 0 { return }
        if events & EPOLLOUT.rawValue != 0 { flush(c) }
        if events & (EPOLLIN.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 { receive(c) }
    }

    private func flush(_ c: Int) {
        let conn = connections[c]
        while conn.outputOffset < conn.output.count {
            let n = conn.output.withUnsafeBytes {
                write(conn.fd, $0.baseAddress! + conn.outputOffset, $0.count - conn.outputOffset)
            }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { break }
                broken(c, "publish write: \(errnoText(errno))")
                return
            }
            conn.outputOffset += n
        }
        if conn.outputOffset == conn.output.count {
            conn.output.removeAll(keepingCapacity: true)
            conn.outputOffset = 0
        }
        let want = conn.outputOffset < conn.output.count
        if want != conn.wantsWrite {
            conn.wantsWrite = want
            let ev = EPOLLIN.rawValue | (want ? EPOLLOUT.rawValue : 0)
            epollControl(epfd, EPOLL_CTL_MOD, conn.fd, ev, tokenBase + UInt64(c))
        }
    }

    private func receive(_ c: Int) {
        let conn = connections[c]
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(conn.fd, $0.baseAddress!, 65536) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { break }
                broken(c, "publish read: \(errnoText(errno))")
                return
            }
            if n == 0 {
                broken(c, "server closed the publisher connection")
                return
            }
            conn.input.append(contentsOf: chunk[0..<n])
            if n < 65536 { break }
        }
        parseResponses(c)
    }

    private func parseResponses(_ c: Int) {
        let conn = connections[c]
        var at = 0
        var closeAfter = false
        while true {
            let parsed: (status: Int, length: Int, close: Bool)? = conn.input.withUnsafeBytes { all in
                let buf = UnsafeRawBufferPointer(rebasing: all[at...])
                guard let end = findBytes(buf, Array("\r\n\r\n".utf8)) else { return nil }
                let status = httpStatus(buf)
                let head = asciiLowercased(UnsafeRawBufferPointer(rebasing: buf[0..<end]))
                let close = head.withUnsafeBytes { findBytes($0, Array("connection: close".utf8)) } != nil
                var bodyLength = 0
                if let cl = head.withUnsafeBytes({ findBytes($0, Array("content-length:".utf8)) }) {
                    var i = cl + 15
                    while i < head.count && head[i] == 32 { i += 1 }
                    while i < head.count && head[i] >= 48 && head[i] <= 57 {
                        bodyLength = bodyLength * 10 + Int(head[i] - 48)
                        i += 1
                    }
                } else if head.withUnsafeBytes({ findBytes($0, Array("transfer-encoding: chunked".utf8)) }) != nil {
                    guard let z = findBytes(buf, Array("0\r\n\r\n".utf8), from: end + 4) else { return nil }
                    bodyLength = z + 5 - (end + 4)
                } else if status == 204 || status == 304 || (status >= 100 && status < 200) {
                    bodyLength = 0
                }
                guard buf.count >= end + 4 + bodyLength else { return nil }
                return (status, end + 4 + bodyLength, close)
            }
            guard let parsed else { break }
            at += parsed.length
            if parsed.status >= 100 && parsed.status < 200 { continue }
            let now = monotonicNanos()
            if conn.inFlight > 0 {
                let sent = conn.sentTimes[conn.sentHead]
                conn.sentHead += 1
                _ = rtt.record(Swift.max(now > sent ? now - sent : 0, 1))
            }
            lastResponseNanos = now
            if parsed.status >= 200 && parsed.status < 300 {
                ok += 1
            } else {
                errors += 1
                lastBadStatus = parsed.status
                if firstError.isEmpty { firstError = "publish answered \(parsed.status)" }
            }
            if parsed.close { closeAfter = true; break }
        }
        if at > 0 { conn.input.removeFirst(at) }
        if conn.sentHead > 4096 && conn.sentHead == conn.sentTimes.count {
            conn.sentTimes.removeAll(keepingCapacity: true)
            conn.sentHead = 0
        }
        if closeAfter { broken(c, "server closed the publisher connection (Connection: close); use --pub-depth 1") }
    }

    /// The connection broke: requests in flight are lost; reconnect (a bounded number of times).
    private func broken(_ c: Int, _ why: String) {
        let conn = connections[c]
        if conn.fd >= 0 { close(conn.fd) }
        conn.fd = -1
        lost += conn.inFlight
        if conn.inFlight > 0 && firstError.isEmpty { firstError = why }
        conn.sentTimes.removeAll()
        conn.sentHead = 0
        conn.output.removeAll()
        conn.outputOffset = 0
        conn.input.removeAll()
        reconnects += 1
        if reconnects <= 1000, issued < total {
            if let problem = open(c), firstError.isEmpty { firstError = problem }
        }
    }

    /// Marks every unanswered request lost (end of run).
    func abandon() {
        for c in connections where c.inFlight > 0 { lost += c.inFlight }
    }
}
