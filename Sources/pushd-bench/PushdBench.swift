// pushd-bench — the project's fan-out benchmark client (issue #7).
//
// One coordinator process publishes and aggregates; subscriber connections live in worker
// processes (the same executable re-exec'd with hidden `--worker-*` options), each a single
// thread on raw epoll with non-blocking sockets, so a run can exceed one process's fd limit.
import ArgumentParser
import Glibc

/// Subscriber protocol.
enum SubscriberMode: String, ExpressibleByArgument, Sendable {
    /// `text/event-stream` (EventSource).
    case sse
    /// RFC 6455 WebSocket, one text/binary frame per event.
    case ws
}

/// The command line of pushd-bench.
@main
struct PushdBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pushd-bench",
        abstract: "Fan-out benchmark for HTTP pub/sub push servers (SSE / WebSocket): pushd, nginx + nchan, ...",
        discussion: """
            Opens N subscribers (in worker processes when one process's fd limit is not enough, source \
            addresses spread over 127.0.0.x), waits until all are subscribed, publishes M events per topic \
            of S bytes on T topics (subscriber i listens on topic i % T) by HTTP POST with P requests in \
            flight, checks every delivery per subscriber (missing, duplicate, out of order) and records \
            publish->receive latency (CLOCK_MONOTONIC, HDR histogram). With --server-pid it reads the \
            server's CPU time and RSS from /proc. Prints one JSON line on stdout and a table on stderr.
            Event body: `pb1 <run> <topic> <seq> <send-ns> xxx...` padded to S bytes.
            Exit status: 0 ok, 1 the run completed with missing/failed/duplicate deliveries or timed out, \
            2 usage or setup error.
            pushd:  --port 8080 --sub-path '/topics/{topic}' --pub-path '/topics/{topic}' (the defaults)
            nchan:  --port 19180 --sub-path '/sub/{topic}' --pub-path '/pub/{topic}'  (bench/nchan/nginx.conf)
            """)

    // MARK: target

    /// Server address.
    @Option(help: "Server IPv4 address (loopback only: 127.0.0.0/8).")
    var host: String = "127.0.0.1"

    /// Server port.
    @Option(help: "Server port.")
    var port: UInt16 = 8080

    /// Subscribe path template.
    @Option(help: "Subscribe path template; {topic} and {i} (subscriber index) are substituted.")
    var subPath: String = "/topics/{topic}"

    /// Publish path template.
    @Option(help: "Publish path template; {topic} is substituted.")
    var pubPath: String = "/topics/{topic}"

    /// Topic name prefix.
    @Option(help: "Topic name = <prefix><index>. Default: pb<run-id>- (unique per run).")
    var topicPrefix: String?

    // MARK: workload

    /// Subscriber protocol.
    @Option(help: "Subscriber protocol: sse or ws.")
    var mode: SubscriberMode = .sse

    /// Subscriber connections.
    @Option(name: [.customShort("n"), .customLong("subscribers")], help: "Subscriber connections.")
    var subscribers: Int = 1000

    /// Topics.
    @Option(name: [.customShort("t"), .long], help: "Topics; subscriber i listens on topic i % T.")
    var topics: Int = 1

    /// Events per topic.
    @Option(name: [.customShort("m"), .long], help: "Events published PER TOPIC (seq 0..M-1), round-robin over topics.")
    var messages: Int = 1000

    /// Event body size.
    @Option(name: [.customShort("s"), .long], help: "Event body size in bytes (at least 48).")
    var size: Int = 64

    /// Total publish rate.
    @Option(name: [.customShort("r"), .long], help: "Total publishes per second; 0 = flat out.")
    var rate: Double = 0

    /// Publishes in flight per publisher connection.
    @Option(name: [.customShort("P"), .customLong("pub-depth")], help: "Pipelined publish requests in flight per publisher connection.")
    var pubDepth: Int = 16

    /// Publisher connections.
    @Option(help: "Publisher connections (topic t is published on connection t % C, so per-topic order holds).")
    var pubConns: Int = 1

    /// Idle-memory mode.
    @Flag(help: "Only connect N subscribers, measure the server's RSS per connection, disconnect.")
    var idle = false

    /// How long to hold idle connections.
    @Option(help: "With --idle: seconds to keep the connections open after measuring.")
    var idleHold: Double = 0

    // MARK: measurement

    /// Server pids to read from /proc.
    @Option(help: "Read CPU time and VmRSS of these pids (comma-separated, summed). nginx: the WORKER pid.")
    var serverPid: String?

    /// Wait before reading RSS.
    @Option(help: "Wait after all are subscribed before reading the server's RSS (ms).")
    var rssSettleMs: Int = 500

    /// Wait before publishing.
    @Option(help: "Wait after all are subscribed (and RSS is read) before publishing (ms).")
    var settleMs: Int = 200

    /// Drain window.
    @Option(help: "After the last publish, stop when no delivery progress for this long (ms) or all delivered.")
    var drainMs: Int = 3000

    /// Hard time limit.
    @Option(help: "Hard limit for the whole run (s).")
    var timeout: Double = 120

    /// Free-form label.
    @Option(help: "Copied into the JSON output.")
    var label: String = ""

    // MARK: client

    /// Worker processes.
    @Option(help: "Subscriber worker processes; 0 = as few as --per-worker allows.")
    var workers: Int = 0

    /// Subscribers per worker process for the automatic worker count.
    @Option(help: "Most subscribers per worker process for --workers 0 (must stay below the fd limit).")
    var perWorker: Int = 18_000

    /// Concurrent handshakes per worker.
    @Option(help: "Concurrent connection handshakes per worker.")
    var conc: Int = 256

    /// Source addresses.
    @Option(help: "Bind subscribers round-robin to K source addresses from --src-base (0 = do not bind).")
    var srcAddrs: Int = 249

    /// First source address.
    @Option(help: "First source address.")
    var srcBase: String = "127.0.0.2"

    /// Progress display.
    @Option(help: "Progress on stderr: auto (when stderr is a terminal), on, off.")
    var progress: String = "auto"

    /// Suppress the table.
    @Flag(help: "Do not print the human-readable table on stderr.")
    var noTable = false

    // MARK: internal (worker processes)

    /// Worker: index.
    @Option(help: .hidden)
    var workerIndex: Int = -1

    /// Worker: first subscriber index.
    @Option(help: .hidden)
    var workerFirst: Int = 0

    /// Worker: subscriber count.
    @Option(help: .hidden)
    var workerCount: Int = 0

    /// Run id shared by coordinator and workers.
    @Option(help: .hidden)
    var runId: String?

    /// Rejects impossible counts and any target outside 127.0.0.0/8.
    mutating func validate() throws {
        guard subscribers >= 0, topics >= 1, messages >= 0, pubDepth >= 1, pubConns >= 1, conc >= 1 else {
            throw ValidationError("counts must be positive")
        }
        guard size >= 48 else { throw ValidationError("--size must be at least 48 bytes") }
        guard let addr = parseIPv4(host) else { throw ValidationError("--host must be an IPv4 literal") }
        guard UInt32(bigEndian: addr.s_addr) >> 24 == 127 else {
            throw ValidationError("--host must be in 127.0.0.0/8 (this tool only loads loopback servers)")
        }
        guard srcAddrs >= 0, srcAddrs <= 254, parseIPv4(srcBase) != nil else {
            throw ValidationError("bad --src-addrs/--src-base")
        }
        guard ["auto", "on", "off"].contains(progress) else { throw ValidationError("--progress auto|on|off") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    /// Runs a worker (hidden `--worker-index`) or the coordinator; exits 1 when the run was not clean.
    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        if workerIndex >= 0 {
            let worker = SubscriberWorker(options: self)
            worker.run()
            return
        }
        let coordinator = Coordinator(options: self)
        let status = coordinator.run()
        if status != 0 { throw ExitCode(status) }
    }
}
