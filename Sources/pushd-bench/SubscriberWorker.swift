// A subscriber worker process: one thread, one epoll instance, up to ~18,000 non-blocking
// subscriber sockets. Parses SSE (or WebSocket frames) incrementally per connection and checks
// every delivery. Talks to the coordinator over its stdin (commands) and stdout (status lines):
//   coordinator -> worker:  "stop\n"
//   worker -> coordinator:  "S <subscribed> <failed> <retries> <deliveries> <disconnects>\n" (every 50 ms)
//                           at the end "R k=v ...\n", "H v:c ...\n", "X <first error>\n", "E\n"
import CPushShim
import Glibc
import Histogram

/// Per-connection state, kept in one flat buffer (no per-connection object, no ARC).
struct SubscriberConnection {
    /// Socket, -1 when closed.
    var fd: Int32 = -1
    /// `SubscriberWorker.State` raw value.
    var state: UInt8 = 0
    /// Connect attempts so far.
    var attempts: UInt8 = 0
    /// Whether `partials[i]` holds unparsed bytes.
    var hasPartial = false
    /// Whether the response head was accepted (the subscription counts).
    var subscribed = false
    /// Topic index this subscriber listens on.
    var topic: Int32 = 0
    /// Highest sequence number seen so far (-1: none).
    var lastSeq: Int32 = -1
    /// Distinct sequence numbers received.
    var received: Int32 = 0
}

/// One subscriber worker process (see the file comment for its protocol).
final class SubscriberWorker {
    /// Connection states.
    enum State: UInt8 {
        case queued = 0, connecting, head, streaming, done
    }

    private let options: PushdBench
    private let count: Int
    private let first: Int
    private let runID: UInt32
    private let messages: Int
    private let wordsPerSub: Int
    private let epfd: Int32
    private let conns: UnsafeMutablePointer<SubscriberConnection>
    private var partials: [[UInt8]]
    private let bitmap: UnsafeMutablePointer<UInt64>
    private let readBuffer: UnsafeMutableRawPointer
    private let readCapacity = 256 * 1024
    private var requests: [[UInt8]] = []
    private let perSubscriberRequests: Bool
    private let destination: sockaddr_in
    private var sources: [in_addr] = []

    private var pending: [Int] = []
    private var pendingHead = 0
    private var inFlight = 0

    private var subscribedCount = 0
    private var failed = 0
    private var retries = 0
    private var deliveries: UInt64 = 0
    private var duplicates: UInt64 = 0
    private var outOfOrder: UInt64 = 0
    private var foreign: UInt64 = 0
    private var malformed: UInt64 = 0
    private var disconnects = 0
    private var bytesReceived: UInt64 = 0
    private var latencySum: UInt64 = 0
    private var latencyMax: UInt64 = 0
    private var firstReceive: UInt64 = 0
    private var lastReceive: UInt64 = 0
    private var wsPings: UInt64 = 0
    private var firstError = ""
    private var histogram = Histogram<UInt64>(
        lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000_000, numberOfSignificantValueDigits: .three)

    private static let controlToken = UInt64.max
    private static let wsKey = "cHVzaGQtYmVuY2gta2V5MQ=="

    /// Prepares (but does not start) a worker from the options the coordinator passed on.
    init(options: PushdBench) {
        self.options = options
        self.count = options.workerCount
        self.first = options.workerFirst
        self.runID = UInt32(options.runId ?? "0", radix: 16) ?? 0
        self.messages = options.idle ? 0 : options.messages
        self.wordsPerSub = (messages + 63) / 64
        raiseFileLimit()
        self.epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        self.conns = .allocate(capacity: max(count, 1))
        self.conns.initialize(repeating: SubscriberConnection(), count: max(count, 1))
        self.partials = Array(repeating: [], count: count)
        let words = max(count * wordsPerSub, 1)
        self.bitmap = .allocate(capacity: words)
        self.bitmap.initialize(repeating: 0, count: words)
        self.readBuffer = .allocate(byteCount: readCapacity, alignment: 16)
        self.destination = socketAddress(parseIPv4(options.host)!, options.port)
        if options.srcAddrs > 0 {
            let base = UInt32(bigEndian: parseIPv4(options.srcBase)!.s_addr)
            for k in 0..<options.srcAddrs { sources.append(in_addr(s_addr: (base + UInt32(k)).bigEndian)) }
        }
        let prefix = options.topicPrefix ?? "pb\(options.runId ?? "0")-"
        let hostHeader = "\(options.host):\(options.port)"
        // One request per topic (requests[t]) unless the path uses {i}: then one per subscriber.
        let perSubscriber = options.subPath.contains("{i}")
        self.perSubscriberRequests = perSubscriber
        for k in 0..<(perSubscriber ? count : options.topics) {
            let index = perSubscriber ? first + k : k
            let topic = perSubscriber ? index % options.topics : k
            let path = expandPath(options.subPath, topic: prefix + String(topic), index: index)
            var text = "GET \(path) HTTP/1.1\r\nHost: \(hostHeader)\r\n"
            switch options.mode {
            case .sse: text += "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
            case .ws:
                text += "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: \(Self.wsKey)\r\n"
                    + "Sec-WebSocket-Version: 13\r\n\r\n"
            }
            requests.append(Array(text.utf8))
        }
        for k in 0..<count {
            conns[k].topic = Int32((first + k) % options.topics)
            pending.append(k)
        }
    }

    /// Runs the worker until the coordinator says stop (or its pipe closes), then reports.
    func run() {
        setNonBlocking(0)
        epollControl(epfd, EPOLL_CTL_ADD, 0, EPOLLIN.rawValue, Self.controlToken)
        let deadline = monotonicNanos() + UInt64((options.timeout + 30) * 1e9)
        let maxEvents: Int32 = 1024
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: Int(maxEvents))
        var lastStatus: UInt64 = 0
        var stop = false
        startMore()
        while !stop {
            let n = epoll_wait(epfd, events, maxEvents, 20)
            let waited = monotonicNanos()
            if n > 0 {
                for k in 0..<Int(n) {
                    let token = events[k].data.u64
                    if token == Self.controlToken {
                        switch readControl() {
                        case .stop: stop = true
                        case .parentGone: exit(3)
                        case .none: break
                        }
                        continue
                    }
                    handle(Int(token), events: events[k].events)
                }
            }
            let now = n > 0 ? monotonicNanos() : waited
            if now - lastStatus >= 50_000_000 {
                lastStatus = now
                sendStatus()
            }
            if now > deadline { stop = true; note("worker deadline passed") }
        }
        sendStatus()
        report()
    }

    // MARK: connections

    private func startMore() {
        while inFlight < options.conc && pendingHead < pending.count {
            let k = pending[pendingHead]
            pendingHead += 1
            startConnection(k)
        }
        if pendingHead == pending.count && pendingHead > 0 {
            pending.removeAll(keepingCapacity: false)
            pendingHead = 0
        }
    }

    private func startConnection(_ k: Int) {
        let global = first + k
        let source = sources.isEmpty ? nil : sources[global % sources.count]
        conns[k].attempts &+= 1
        let fd = startConnect(destination: destination, source: source, noDelay: false)
        if fd < 0 {
            connectFailed(k, "connect: \(errnoText(-fd))")
            return
        }
        conns[k].fd = fd
        conns[k].state = State.connecting.rawValue
        inFlight += 1
        if epollControl(epfd, EPOLL_CTL_ADD, fd, EPOLLOUT.rawValue, UInt64(k)) != 0 {
            let code = errno
            closeConnection(k)
            connectFailed(k, "epoll_ctl: \(errnoText(code))")
        }
    }

    private func closeConnection(_ k: Int) {
        let c = conns[k]
        if c.fd >= 0 { close(c.fd) }
        if c.state == State.connecting.rawValue || c.state == State.head.rawValue { inFlight -= 1 }
        conns[k].fd = -1
        conns[k].state = State.done.rawValue
        if c.hasPartial {
            partials[k] = []
            conns[k].hasPartial = false
        }
    }

    /// A connection failed before it subscribed: retry a few times, then count it failed.
    private func connectFailed(_ k: Int, _ why: String) {
        if conns[k].attempts < 4 {
            retries += 1
            conns[k].state = State.queued.rawValue
            pending.append(k)
        } else {
            failed += 1
            note(why)
        }
        startMore()
    }

    private func note(_ why: String) {
        if firstError.isEmpty { firstError = why }
    }

    @inline(__always)
    private func handle(_ k: Int, events: UInt32) {
        let state = conns[k].state
        if state == State.connecting.rawValue {
            let err = socketError(conns[k].fd)
            if err != 0 || events & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 {
                closeConnection(k)
                connectFailed(k, "connect: \(errnoText(err != 0 ? err : ECONNRESET))")
                return
            }
            let request = requests[perSubscriberRequests ? k : Int(conns[k].topic)]
            let written = request.withUnsafeBytes { write(conns[k].fd, $0.baseAddress!, $0.count) }
            if written != request.count {
                let code = errno
                closeConnection(k)
                connectFailed(k, "write request: \(errnoText(code))")
                return
            }
            conns[k].state = State.head.rawValue
            epollControl(epfd, EPOLL_CTL_MOD, conns[k].fd, EPOLLIN.rawValue, UInt64(k))
            return
        }
        if state != State.head.rawValue && state != State.streaming.rawValue { return }
        let n = read(conns[k].fd, readBuffer, readCapacity)
        if n <= 0 {
            if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
            let why = n == 0 ? "server closed the connection" : "read: \(errnoText(errno))"
            if state == State.streaming.rawValue {
                disconnects += 1
                note(why)
                closeConnection(k)
            } else {
                closeConnection(k)
                connectFailed(k, why + " before the response head")
            }
            return
        }
        bytesReceived &+= UInt64(n)
        // Receive time per read (vDSO clock: ~20 ns against ~1 µs for the read itself), not per
        // epoll batch: a batch of 1,024 reads would otherwise understate the latency of its tail.
        let rx = monotonicNanos()
        if state == State.head.rawValue {
            readHead(k, n, rx: rx)
        } else {
            feedBody(k, UnsafeRawPointer(readBuffer).assumingMemoryBound(to: UInt8.self), n, rx: rx)
        }
    }

    private func readHead(_ k: Int, _ n: Int, rx: UInt64) {
        partials[k].append(contentsOf: UnsafeRawBufferPointer(start: readBuffer, count: n))
        conns[k].hasPartial = true
        let head = partials[k]
        let end = head.withUnsafeBytes { findBytes($0, Array("\r\n\r\n".utf8)) }
        guard let end else {
            if head.count > 16_384 {
                closeConnection(k)
                failed += 1
                note("response head larger than 16 KiB")
                startMore()
            }
            return
        }
        let status = head.withUnsafeBytes { httpStatus($0) }
        let lower = head.withUnsafeBytes { asciiLowercased(UnsafeRawBufferPointer(rebasing: $0[0..<end])) }
        let expected = options.mode == .ws ? 101 : 200
        var problem: String?
        if status != expected {
            let line = String(decoding: head.prefix(while: { $0 != 13 }).prefix(120), as: UTF8.self)
            problem = "expected \(expected), got '\(line)'"
        } else if lower.withUnsafeBytes({ findBytes($0, Array("transfer-encoding: chunked".utf8)) }) != nil {
            problem = "chunked SSE responses are not supported"
        }
        if let problem {
            closeConnection(k)
            failed += 1
            note(problem)
            startMore()
            return
        }
        conns[k].state = State.streaming.rawValue
        conns[k].subscribed = true
        subscribedCount += 1
        inFlight -= 1
        partials[k] = []
        conns[k].hasPartial = false
        let rest = Array(head[(end + 4)...])
        if !rest.isEmpty {
            rest.withUnsafeBufferPointer { feedBody(k, $0.baseAddress!, $0.count, rx: rx) }
        }
        startMore()
    }

    // MARK: parsing

    @inline(__always)
    private func feedBody(_ k: Int, _ p: UnsafePointer<UInt8>, _ n: Int, rx: UInt64) {
        if !conns[k].hasPartial {
            let used = parse(k, p, n, rx: rx)
            if used < n && conns[k].state == State.streaming.rawValue {
                partials[k] = Array(UnsafeBufferPointer(start: p + used, count: n - used))
                conns[k].hasPartial = true
            }
            return
        }
        partials[k].append(contentsOf: UnsafeBufferPointer(start: p, count: n))
        var buffer = partials[k]
        partials[k] = []
        let used = buffer.withUnsafeBufferPointer { parse(k, $0.baseAddress!, $0.count, rx: rx) }
        if conns[k].state != State.streaming.rawValue { return }
        if used == buffer.count {
            conns[k].hasPartial = false
        } else {
            buffer.removeFirst(used)
            partials[k] = buffer
        }
    }

    @inline(__always)
    private func parse(_ k: Int, _ p: UnsafePointer<UInt8>, _ n: Int, rx: UInt64) -> Int {
        options.mode == .sse ? parseSSE(k, p, n, rx: rx) : parseWebSocket(k, p, n, rx: rx)
    }

    /// Consumes complete SSE lines; returns the bytes consumed. Only `data:` lines matter (one per
    /// event: the bodies are single lines); `id:`, `retry:`, comments and blank lines are skipped.
    private func parseSSE(_ k: Int, _ p: UnsafePointer<UInt8>, _ n: Int, rx: UInt64) -> Int {
        var start = 0
        while start < n {
            guard let nl = memchr(p + start, 10, n - start) else { break }
            let lineEnd = UnsafeRawPointer(nl).assumingMemoryBound(to: UInt8.self) - p
            var end = lineEnd
            if end > start && p[end - 1] == 13 { end -= 1 }
            let len = end - start
            if len >= 5, p[start] == UInt8(ascii: "d"), p[start + 1] == UInt8(ascii: "a"),
                p[start + 2] == UInt8(ascii: "t"), p[start + 3] == UInt8(ascii: "a"), p[start + 4] == UInt8(ascii: ":")
            {
                var s = start + 5
                if s < end && p[s] == UInt8(ascii: " ") { s += 1 }
                deliver(k, p + s, end - s, rx: rx)
            }
            start = lineEnd + 1
        }
        return start
    }

    /// Consumes complete WebSocket frames; returns the bytes consumed. Text/binary frames are events,
    /// pings are answered, a close frame ends the connection.
    private func parseWebSocket(_ k: Int, _ p: UnsafePointer<UInt8>, _ n: Int, rx: UInt64) -> Int {
        var at = 0
        while n - at >= 2 {
            let opcode = p[at] & 0x0f
            let masked = p[at + 1] & 0x80 != 0
            var length = Int(p[at + 1] & 0x7f)
            var header = 2
            if length == 126 {
                guard n - at >= 4 else { break }
                length = Int(p[at + 2]) << 8 | Int(p[at + 3])
                header = 4
            } else if length == 127 {
                guard n - at >= 10 else { break }
                length = 0
                for b in 0..<8 { length = length << 8 | Int(p[at + 2 + b]) }
                header = 10
            }
            if masked { header += 4 }
            guard n - at >= header + length else { break }
            let payload = p + at + header
            switch opcode {
            case 1, 2: deliver(k, payload, length, rx: rx)
            case 9:
                wsPings += 1
                sendPong(k, payload, length)
            case 8:
                disconnects += 1
                note("server sent a WebSocket close frame")
                closeConnection(k)
                return n
            default: break
            }
            at += header + length
        }
        return at
    }

    private func sendPong(_ k: Int, _ payload: UnsafePointer<UInt8>, _ length: Int) {
        guard length <= 125 else { return }
        var frame: [UInt8] = [0x8a, 0x80 | UInt8(length), 0x12, 0x34, 0x56, 0x78]
        let mask: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        for i in 0..<length { frame.append(payload[i] ^ mask[i & 3]) }
        _ = frame.withUnsafeBytes { write(conns[k].fd, $0.baseAddress!, $0.count) }
    }

    /// Checks one event body received by subscriber `k` at `rx`.
    @inline(__always)
    private func deliver(_ k: Int, _ p: UnsafePointer<UInt8>, _ n: Int, rx: UInt64) {
        guard let f = EventBody.parse(p, n) else {
            malformed += 1
            return
        }
        if f.run != runID || f.topic != Int(conns[k].topic) {
            foreign += 1
            return
        }
        if f.seq >= messages {
            malformed += 1
            return
        }
        let word = bitmap + (k * wordsPerSub + f.seq >> 6)
        let bit: UInt64 = 1 << UInt64(f.seq & 63)
        if word.pointee & bit != 0 {
            duplicates += 1
            return
        }
        word.pointee |= bit
        conns[k].received += 1
        deliveries += 1
        if Int32(f.seq) < conns[k].lastSeq { outOfOrder += 1 } else { conns[k].lastSeq = Int32(f.seq) }
        let latency = rx > f.sentNanos ? rx - f.sentNanos : 0
        _ = histogram.record(Swift.max(latency, 1))
        latencySum &+= latency
        if latency > latencyMax { latencyMax = latency }
        if firstReceive == 0 { firstReceive = rx }
        lastReceive = rx
    }

    // MARK: control and reporting

    private enum Control { case none, stop, parentGone }

    private func readControl() -> Control {
        var buf = [UInt8](repeating: 0, count: 256)
        let n = buf.withUnsafeMutableBytes { read(0, $0.baseAddress!, 256) }
        if n == 0 { return .parentGone }
        if n < 0 { return errno == EAGAIN || errno == EINTR ? .none : .parentGone }
        return buf[0..<n].contains(UInt8(ascii: "s")) ? .stop : .none
    }

    private func sendStatus() {
        writeAll(1, Array("S \(subscribedCount) \(failed) \(retries) \(deliveries) \(disconnects)\n".utf8))
    }

    private func report() {
        var missing: UInt64 = 0
        var subsWithLoss = 0
        if !options.idle {
            for k in 0..<count where conns[k].subscribed {
                let lost = messages - Int(conns[k].received)
                if lost > 0 {
                    missing += UInt64(lost)
                    subsWithLoss += 1
                }
            }
        }
        let cpu = ownCPUSeconds(children: false)
        var text = "R subscribed=\(subscribedCount) failed=\(failed) retries=\(retries) deliveries=\(deliveries)"
        text += " duplicates=\(duplicates) out_of_order=\(outOfOrder) foreign=\(foreign) malformed=\(malformed)"
        text += " disconnects=\(disconnects) missing=\(missing) subs_with_loss=\(subsWithLoss) bytes_rx=\(bytesReceived)"
        text += " lat_sum_ns=\(latencySum) lat_max_ns=\(latencyMax) first_rx_ns=\(firstReceive) last_rx_ns=\(lastReceive)"
        text += " ws_pings=\(wsPings) cpu_us=\(Int(cpu * 1e6))\nH"
        for v in histogram.recordedValues() {
            text += " \(v.value):\(v.count)"
        }
        text += "\nX " + firstError.filter { $0 != "\n" } + "\nE\n"
        // Blocking write of the report: the coordinator is reading.
        let flags = fcntl(1, F_GETFL)
        _ = fcntl(1, F_SETFL, flags & ~O_NONBLOCK)
        writeAll(1, Array(text.utf8))
    }
}
