// The coordinator: spawns subscriber workers (this executable again), waits until all are
// subscribed, reads the server's RSS, publishes, drains, collects the workers' reports and prints
// one JSON line (stdout) plus a table (stderr).
import CPushShim
import Glibc
import Histogram

/// A worker process as the coordinator sees it.
final class WorkerHandle {
    /// Process id.
    let pid: pid_t
    /// Write end of the worker's stdin.
    let control: Int32
    /// Read end of the worker's stdout.
    let status: Int32
    /// Bytes read from `status`, not yet split into lines.
    var pending: [UInt8] = []
    /// Latest status line values.
    var subscribed = 0, failed = 0, retries = 0, disconnects = 0
    /// Latest delivery count.
    var deliveries: UInt64 = 0
    /// Final report fields ("R" line).
    var report: [String: UInt64] = [:]
    /// Final histogram ("H" line) as value:count pairs.
    var histogramPairs: [(UInt64, UInt64)] = []
    /// First error ("X" line).
    var error = ""
    /// The report is complete ("E" line).
    var done = false
    /// The status pipe reached EOF.
    var eof = false

    /// A handle for worker `pid` with its control (stdin) and status (stdout) pipe ends.
    init(pid: pid_t, control: Int32, status: Int32) {
        self.pid = pid
        self.control = control
        self.status = status
    }
}

/// Runs one benchmark (see the file comment).
final class Coordinator {
    private let options: PushdBench
    private let runID: UInt32
    private let runHex: String
    private let epfd: Int32
    private var workers: [WorkerHandle] = []
    private var serverPids: [Int32] = []
    private let startNanos = monotonicNanos()
    private let deadline: UInt64
    private var timedOut = false
    private let showProgress: Bool
    private var lastProgress: UInt64 = 0
    private var phase = "connect"
    private var publisher: Publisher!
    private static let publisherTokenBase: UInt64 = 1 << 32

    /// Prepares a run.
    init(options: PushdBench) {
        self.options = options
        var seed: UInt32 = 0
        if let bytes = readSmallFile("/proc/sys/kernel/random/uuid") {
            for b in bytes.prefix(8) { seed = seed &* 31 &+ UInt32(b) }
        }
        seed ^= UInt32(truncatingIfNeeded: monotonicNanos() ^ UInt64(getpid()))
        self.runID = options.runId.flatMap { UInt32($0, radix: 16) } ?? seed
        var hex: [UInt8] = []
        EventBody.appendHex8(&hex, runID)
        self.runHex = String(decoding: hex, as: UTF8.self)
        self.epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        self.deadline = startNanos + UInt64(options.timeout * 1e9)
        switch options.progress {
        case "on": showProgress = true
        case "off": showProgress = false
        default: showProgress = isatty(2) != 0
        }
    }

    /// Runs the benchmark; returns the exit status.
    func run() -> Int32 {
        if let list = options.serverPid {
            serverPids = list.split(separator: ",").compactMap { Int32($0.trimmingPrefix(" ")) }
            for pid in serverPids where processRSSKiB(pid) == nil {
                warn("cannot read /proc/\(pid)/status for --server-pid")
                return 2
            }
        }
        let prefix = options.topicPrefix ?? "pb\(runHex)-"
        publisher = Publisher(options: options, run: runID, prefix: prefix, epfd: epfd, tokenBase: Self.publisherTokenBase)
        let hostCPU0 = hostCPUJiffies()
        let load = loadAverage1()
        let rssBefore = serverRSS()

        // Workers.
        let n = options.subscribers
        let perWorker = max(1, min(options.perWorker, hardFileLimit() - 64))
        let workerCount = n == 0 ? 0 : max(options.workers, (n + perWorker - 1) / perWorker)
        if options.workers > 0 && (n + options.workers - 1) / options.workers > hardFileLimit() - 64 {
            warn("--workers \(options.workers) leaves more subscribers per worker than the fd limit (\(hardFileLimit()))")
            return 2
        }
        var firstIndex = 0
        for w in 0..<workerCount {
            let share = n / workerCount + (w < n % workerCount ? 1 : 0)
            guard spawnWorker(index: w, first: firstIndex, count: share) else {
                stopWorkers()
                return 2
            }
            firstIndex += share
        }

        // Connect phase.
        var subscribed = 0
        var failedConnects = 0
        while true {
            subscribed = workers.reduce(0) { $0 + $1.subscribed }
            failedConnects = workers.reduce(0) { $0 + $1.failed }
            if subscribed + failedConnects >= n { break }
            if workers.contains(where: { $0.eof }) {
                warn("a worker exited during the connect phase")
                break
            }
            if checkDeadline() { break }
            pump(timeoutMs: 20)
        }
        let connectSeconds = Double(monotonicNanos() - startNanos) / 1e9
        phase = "settle"
        sleepPumping(ms: options.rssSettleMs)
        let rssAfter = serverRSS()

        var cpu0: Double?
        var cpu1: Double?
        var rssEnd: Int?
        var rssClosed: Int?
        var publishEnd: UInt64 = 0
        var drainEnd: UInt64 = 0
        var publisherProblem: String?
        if options.idle {
            phase = "idle"
            if options.idleHold > 0 { sleepPumping(ms: Int(options.idleHold * 1000)) }
        } else if !timedOut && subscribed > 0 {
            sleepPumping(ms: options.settleMs)
            publisherProblem = publisher.connect()
            if let publisherProblem { warn(publisherProblem) }
            cpu0 = serverCPU()
            phase = "publish"
            if publisherProblem == nil {
                while !publisher.finished {
                    let now = monotonicNanos()
                    publisher.step(now: now)
                    if publisher.finished || checkDeadline() { break }
                    let wait = publisher.nanosUntilDue(now: monotonicNanos())
                    pump(timeoutMs: wait > 0 ? Int32(min(wait / 1_000_000 + 1, 50)) : 50)
                }
            }
            publishEnd = monotonicNanos()
            // Drain: until everything arrived, or no progress for --drain-ms, or the deadline.
            phase = "drain"
            let expected = UInt64(subscribed) * UInt64(options.messages)
            var lastSeen = totalDeliveries()
            var lastChange = monotonicNanos()
            while true {
                let d = totalDeliveries()
                let now = monotonicNanos()
                if d >= expected { break }
                if d != lastSeen { lastSeen = d; lastChange = now }
                if now - lastChange > UInt64(options.drainMs) * 1_000_000 { break }
                if checkDeadline() { break }
                pump(timeoutMs: 10)
            }
            drainEnd = monotonicNanos()
            cpu1 = serverCPU()
            rssEnd = serverRSS()
            publisher.abandon()
        }
        let hostCPU1 = hostCPUJiffies()

        // Collect.
        phase = "collect"
        stopWorkers()
        if options.idle && !serverPids.isEmpty {
            sleepNanos(1_000_000_000)
            rssClosed = serverRSS()
        }
        if showProgress { writeAll(2, Array("\r\u{1b}[K".utf8)) }

        var totals: [String: UInt64] = [:]
        var latency = Histogram<UInt64>(
            lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000_000, numberOfSignificantValueDigits: .three)
        var workersOK = true
        var firstRx: UInt64 = 0
        var lastRx: UInt64 = 0
        var latencyMax: UInt64 = 0
        for (i, w) in workers.enumerated() {
            if !w.done { workersOK = false }
            for (key, value) in w.report {
                switch key {
                case "first_rx_ns": if value > 0 && (firstRx == 0 || value < firstRx) { firstRx = value }
                case "last_rx_ns": lastRx = max(lastRx, value)
                case "lat_max_ns": latencyMax = max(latencyMax, value)
                default: totals[key, default: 0] += value
                }
            }
            for (value, count) in w.histogramPairs { _ = latency.record(value, count: count) }
            if !w.error.isEmpty { warn("worker \(i) first error: \(w.error)") }
        }
        if !publisher.firstError.isEmpty { warn("publisher: \(publisher.firstError)") }

        // Report.
        let clientCPU = ownCPUSeconds(children: false) + ownCPUSeconds(children: true)
        let elapsed = Double(monotonicNanos() - startNanos) / 1e9
        let subscribedTotal = Int(totals["subscribed"] ?? UInt64(subscribed))
        let deliveries = totals["deliveries"] ?? 0
        let expected = options.idle ? 0 : UInt64(subscribedTotal) * UInt64(options.messages)
        var json = JSONLine()
        json.add("tool", "pushd-bench")
        json.add("version", "1.0")
        json.add("label", options.label)
        json.add("mode", options.mode.rawValue)
        json.add("idle", options.idle)
        json.add("host", options.host)
        json.add("port", Int(options.port))
        json.add("sub_path", options.subPath)
        json.add("pub_path", options.pubPath)
        json.add("run", runHex)
        json.add("subscribers", n)
        json.add("topics", options.topics)
        json.add("messages_per_topic", options.idle ? 0 : options.messages)
        json.add("events", options.idle ? 0 : options.messages * options.topics)
        json.add("size", options.size)
        json.add("rate", options.rate)
        json.add("pub_depth", options.pubDepth)
        json.add("pub_conns", publisher.connections.count)
        json.add("workers", workerCount)
        json.add("src_addrs", options.srcAddrs)
        json.add("subscribed", subscribedTotal)
        json.add("connect_failures", Int(totals["failed"] ?? UInt64(failedConnects)))
        json.add("connect_retries", Int(totals["retries"] ?? 0))
        json.add("connect_s", connectSeconds, digits: 3)
        var table: [(String, String)] = []
        let what = options.idle ? "idle" : "\(options.messages) x \(options.topics) topic(s), \(options.size) B, "
            + (options.rate > 0 ? "\(fmt(options.rate, 1))/s" : "flat out") + ", P=\(options.pubDepth)"
        table.append(("run", "\(runHex) \(options.mode.rawValue) \(options.host):\(options.port)\(options.subPath) \(options.label)"))
        table.append(("subscribers", "\(subscribedTotal) / \(n) (failed \(totals["failed"] ?? 0), workers \(workerCount), connect \(fmt(connectSeconds, 2)) s)"))
        table.append(("workload", what))
        if !options.idle {
            let pubSeconds = publishEnd > publisher.startNanos && publisher.startNanos > 0
                ? Double(publishEnd - publisher.startNanos) / 1e9 : 0
            let window = lastRx > publisher.startNanos && publisher.startNanos > 0
                ? Double(lastRx - publisher.startNanos) / 1e9 : 0
            json.add("publishes", publisher.issued)
            json.add("pub_ok", publisher.ok)
            json.add("pub_errors", publisher.errors)
            json.add("pub_lost", publisher.lost)
            json.add("pub_last_bad_status", publisher.lastBadStatus)
            json.add("pub_reconnects", publisher.reconnects)
            json.add("pub_s", pubSeconds, digits: 3)
            json.add("pub_per_s", pubSeconds > 0 ? Double(publisher.ok) / pubSeconds : 0, digits: 1)
            json.add("pub_rtt_p50_us", Double(publisher.rtt.valueAtPercentile(50)) / 1000, digits: 1)
            json.add("pub_rtt_p99_us", Double(publisher.rtt.valueAtPercentile(99)) / 1000, digits: 1)
            json.add("expected", expected)
            json.add("deliveries", deliveries)
            json.add("delivery_window_s", window, digits: 3)
            json.add("deliveries_per_s", window > 0 ? Double(deliveries) / window : 0, digits: 0)
            let p50 = Double(latency.valueAtPercentile(50)) / 1000
            let p90 = Double(latency.valueAtPercentile(90)) / 1000
            let p99 = Double(latency.valueAtPercentile(99)) / 1000
            let p999 = Double(latency.valueAtPercentile(99.9)) / 1000
            let mean = deliveries > 0 ? Double(totals["lat_sum_ns"] ?? 0) / Double(deliveries) / 1000 : 0
            json.add("p50_us", p50, digits: 1)
            json.add("p90_us", p90, digits: 1)
            json.add("p99_us", p99, digits: 1)
            json.add("p999_us", p999, digits: 1)
            json.add("max_us", Double(latencyMax) / 1000, digits: 1)
            json.add("mean_us", mean, digits: 1)
            for key in ["missing", "subs_with_loss", "duplicates", "out_of_order", "foreign", "malformed", "disconnects",
                        "bytes_rx", "ws_pings"] {
                json.add(key, totals[key] ?? 0)
            }
            json.add("drain_s", drainEnd > publishEnd ? Double(drainEnd - publishEnd) / 1e9 : 0, digits: 3)
            table.append(("published", "\(publisher.ok) ok / \(publisher.issued) (errors \(publisher.errors), lost \(publisher.lost)) in \(fmt(pubSeconds, 2)) s, \(fmt(pubSeconds > 0 ? Double(publisher.ok) / pubSeconds : 0, 0))/s, rtt p50 \(fmt(Double(publisher.rtt.valueAtPercentile(50)) / 1000, 0)) µs"))
            table.append(("deliveries", "\(deliveries) / \(expected) (missing \(totals["missing"] ?? 0), dup \(totals["duplicates"] ?? 0), ooo \(totals["out_of_order"] ?? 0), foreign \(totals["foreign"] ?? 0)) \(fmt(window > 0 ? Double(deliveries) / window : 0, 0))/s"))
            table.append(("latency µs", "p50 \(fmt(p50, 0))  p90 \(fmt(p90, 0))  p99 \(fmt(p99, 0))  p99.9 \(fmt(p999, 0))  max \(fmt(Double(latencyMax) / 1000, 0))  mean \(fmt(mean, 0))"))
        } else {
            json.add("disconnects", totals["disconnects"] ?? 0)
        }
        if !serverPids.isEmpty {
            json.add("server_pid", options.serverPid ?? "")
            json.add("server_rss_before_kb", rssBefore ?? -1)
            json.add("server_rss_after_kb", rssAfter ?? -1)
            json.add("rss_kib", rssAfter ?? -1)
            var perConn = 0.0
            if let a = rssAfter, let b = rssBefore, subscribedTotal > 0 {
                perConn = Double(a - b) * 1024 / Double(subscribedTotal)
                json.add("rss_per_conn_bytes", perConn, digits: 0)
            }
            var serverLine = "rss \(rssBefore ?? -1) -> \(rssAfter ?? -1) KiB (\(fmt(perConn, 0)) B/conn)"
            if let cpu0, let cpu1 {
                let cpu = cpu1 - cpu0
                json.add("server_rss_end_kb", rssEnd ?? -1)
                json.add("server_cpu_s", cpu, digits: 3)
                let perDelivery = deliveries > 0 ? cpu * 1e6 / Double(deliveries) : 0
                json.add("cpu_per_delivery_us", perDelivery, digits: 3)
                json.add("deliveries_per_server_cpu_s", cpu > 0 ? Double(deliveries) / cpu : 0, digits: 0)
                serverLine = "cpu \(fmt(cpu, 2)) s = \(fmt(perDelivery, 3)) µs/delivery; " + serverLine
            }
            if let rssClosed {
                json.add("server_rss_closed_kb", rssClosed)
                serverLine += "; after close \(rssClosed) KiB"
            }
            table.append(("server", serverLine))
        }
        let hostCPUs = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        json.add("host_cpus", hostCPUs)
        if let h0 = hostCPU0, let h1 = hostCPU1, h1.total > h0.total {
            json.add("host_busy_cpus", Double(h1.busy - h0.busy) / Double(h1.total - h0.total) * Double(hostCPUs), digits: 2)
        }
        json.add("loadavg_1m_start", load, digits: 2)
        json.add("client_cpu_s", clientCPU, digits: 3)
        json.add("elapsed_s", elapsed, digits: 3)
        json.add("timed_out", timedOut)
        json.add("workers_ok", workersOK)
        table.append(("client", "cpu \(fmt(clientCPU, 2)) s; elapsed \(fmt(elapsed, 2)) s\(timedOut ? " (TIMED OUT)" : "")"))
        writeAll(1, Array((json.text + "\n").utf8))
        if !options.noTable {
            var out = ""
            for (k, v) in table { out += "  " + k.padding(12) + " " + v + "\n" }
            writeAll(2, Array(out.utf8))
        }
        let bad = timedOut || !workersOK || subscribedTotal < n || publisherProblem != nil
            || (!options.idle && ((totals["missing"] ?? 0) > 0 || (totals["duplicates"] ?? 0) > 0 || publisher.ok < publisher.total))
        return bad ? 1 : 0
    }

    // MARK: workers

    private func spawnWorker(index: Int, first: Int, count: Int) -> Bool {
        var toChild: [Int32] = [0, 0]
        var fromChild: [Int32] = [0, 0]
        guard pipe(&toChild) == 0, pipe(&fromChild) == 0 else {
            warn("pipe: \(errnoText(errno))")
            return false
        }
        // Only the dup2'ed copies (fds 0 and 1) may survive into the worker.
        for fd in toChild + fromChild { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        var args = [selfExecutablePath()] + Array(CommandLine.arguments.dropFirst())
        args += ["--worker-index", String(index), "--worker-first", String(first), "--worker-count", String(count),
                 "--run-id", runHex, "--progress", "off"]
        let cargs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, args[0], &actions, nil, cargs, environ)
        posix_spawn_file_actions_destroy(&actions)
        close(toChild[0])
        close(fromChild[1])
        if rc != 0 {
            warn("posix_spawn: \(errnoText(rc))")
            return false
        }
        setNonBlocking(fromChild[0])
        let handle = WorkerHandle(pid: pid, control: toChild[1], status: fromChild[0])
        epollControl(epfd, EPOLL_CTL_ADD, fromChild[0], EPOLLIN.rawValue, UInt64(workers.count))
        workers.append(handle)
        return true
    }

    /// Tells every worker to stop, reads their reports (bounded wait), reaps them.
    private func stopWorkers() {
        for w in workers { writeAll(w.control, Array("stop\n".utf8)) }
        let until = monotonicNanos() + 30_000_000_000
        while workers.contains(where: { !$0.done && !$0.eof }) && monotonicNanos() < until {
            pump(timeoutMs: 50)
        }
        for w in workers {
            close(w.control)
            var status: Int32 = 0
            if !w.done { kill(w.pid, SIGKILL) }
            waitpid(w.pid, &status, 0)
        }
    }

    private func totalDeliveries() -> UInt64 { workers.reduce(0) { $0 + $1.deliveries } }

    // MARK: event loop

    /// One epoll_wait over worker pipes and publisher sockets, then progress.
    private func pump(timeoutMs: Int32) {
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        let n = epoll_wait(epfd, &events, 64, timeoutMs)
        if n > 0 {
            for k in 0..<Int(n) {
                let token = events[k].data.u64
                if token >= Self.publisherTokenBase {
                    publisher.handle(Int(token - Self.publisherTokenBase), events: events[k].events)
                    if phase == "publish" { publisher.step(now: monotonicNanos()) }
                } else {
                    readWorker(workers[Int(token)])
                }
            }
        }
        if showProgress { drawProgress() }
    }

    private func sleepPumping(ms: Int) {
        let until = monotonicNanos() + UInt64(ms) * 1_000_000
        while monotonicNanos() < until && !checkDeadline() { pump(timeoutMs: 20) }
    }

    private func checkDeadline() -> Bool {
        if monotonicNanos() >= deadline {
            if !timedOut { warn("timeout (\(options.timeout) s) in phase \(phase)") }
            timedOut = true
        }
        return timedOut
    }

    private func readWorker(_ w: WorkerHandle) {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(w.status, $0.baseAddress!, 65536) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { break }
            if n == 0 {
                w.eof = true
                epollControl(epfd, EPOLL_CTL_DEL, w.status, 0, 0)
                break
            }
            w.pending.append(contentsOf: chunk[0..<n])
        }
        while let nl = w.pending.firstIndex(of: 10) {
            let line = String(decoding: w.pending[0..<nl], as: UTF8.self)
            w.pending.removeFirst(nl + 1)
            workerLine(w, line)
        }
    }

    private func workerLine(_ w: WorkerHandle, _ line: String) {
        let parts = line.split(separator: " ", omittingEmptySubsequences: true)
        guard let tag = parts.first else { return }
        switch tag {
        case "S":
            let v = parts.dropFirst().map { UInt64($0) ?? 0 }
            guard v.count >= 5 else { return }
            w.subscribed = Int(v[0])
            w.failed = Int(v[1])
            w.retries = Int(v[2])
            w.deliveries = v[3]
            w.disconnects = Int(v[4])
        case "R":
            for p in parts.dropFirst() {
                let kv = p.split(separator: "=", maxSplits: 1)
                if kv.count == 2 { w.report[String(kv[0])] = UInt64(kv[1]) ?? 0 }
            }
            if let d = w.report["deliveries"] { w.deliveries = d }
        case "H":
            for p in parts.dropFirst() {
                let vc = p.split(separator: ":")
                if vc.count == 2, let v = UInt64(vc[0]), let c = UInt64(vc[1]) { w.histogramPairs.append((v, c)) }
            }
        case "X": w.error = String(line.dropFirst(2))
        case "E": w.done = true
        default: break
        }
    }

    private func drawProgress() {
        let now = monotonicNanos()
        if now - lastProgress < 200_000_000 { return }
        lastProgress = now
        let subscribed = workers.reduce(0) { $0 + $1.subscribed }
        let failed = workers.reduce(0) { $0 + $1.failed }
        var line = "\r[pushd-bench \(fmt(Double(now - startNanos) / 1e9, 1))s] \(phase): subscribed \(subscribed)/\(options.subscribers)"
        if failed > 0 { line += " (failed \(failed))" }
        if !options.idle && publisher.issued > 0 {
            let expected = UInt64(subscribed) * UInt64(options.messages)
            line += " | published \(publisher.ok)/\(publisher.total) | delivered \(totalDeliveries())/\(expected)"
        }
        writeAll(2, Array((line + "\u{1b}[K").utf8))
    }

    // MARK: server metrics

    private func serverRSS() -> Int? {
        guard !serverPids.isEmpty else { return nil }
        var sum = 0
        for pid in serverPids {
            guard let v = processRSSKiB(pid) else { return nil }
            sum += v
        }
        return sum
    }

    private func serverCPU() -> Double? {
        guard !serverPids.isEmpty else { return nil }
        var sum = 0.0
        for pid in serverPids {
            guard let v = processCPUSeconds(pid) else { return nil }
            sum += v
        }
        return sum
    }
}

/// Builds one JSON object line, fields in insertion order.
struct JSONLine {
    private var fields: [String] = []

    /// The object text.
    var text: String { "{" + fields.joined(separator: ",") + "}" }

    /// Adds a string field.
    mutating func add(_ key: String, _ value: String) { fields.append("\"\(key)\":" + Self.quote(value)) }
    /// Adds an integer field.
    mutating func add(_ key: String, _ value: Int) { fields.append("\"\(key)\":\(value)") }
    /// Adds an unsigned integer field.
    mutating func add(_ key: String, _ value: UInt64) { fields.append("\"\(key)\":\(value)") }
    /// Adds a boolean field.
    mutating func add(_ key: String, _ value: Bool) { fields.append("\"\(key)\":\(value)") }
    /// Adds a number with a fixed number of decimals.
    mutating func add(_ key: String, _ value: Double, digits: Int = 1) { fields.append("\"\(key)\":" + fmt(value, digits)) }

    /// JSON string literal of `s`.
    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let h = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}

/// Formats `value` with `digits` decimals (no Foundation).
func fmt(_ value: Double, _ digits: Int) -> String {
    guard value.isFinite else { return "0" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let negative = value < 0
    let scaled = (abs(value) * scale).rounded()
    guard scaled < 9e18 else { return String(value) }
    let whole = UInt64(scaled)
    let intPart = whole / UInt64(scale)
    var text = (negative && whole > 0 ? "-" : "") + String(intPart)
    if digits > 0 {
        let frac = String(whole % UInt64(scale))
        text += "." + String(repeating: "0", count: digits - frac.count) + frac
    }
    return text
}

extension String {
    /// Right-pads with spaces to `width` characters.
    func padding(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
