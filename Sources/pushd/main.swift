// pushd — the daemon: CLI (API.md "CLI"), config loading, signals and sd_notify.
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CSystemd
import Logging
import PushConfig
import PushLoop
import PushServer

/// The version printed by `pushd --version`.
let pushdVersion = "0.1.0"

struct Pushd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pushd",
        abstract: "A pub/sub push daemon: publish with HTTP POST, subscribe with Server-Sent Events.",
        version: pushdVersion,
        subcommands: [Serve.self, CheckConfig.self],
        defaultSubcommand: Serve.self)
}

/// Options shared by `serve` (flags override the file and the environment).
struct ServeOptions: ParsableArguments {
    @Option(name: .long, help: "Configuration file (YAML). Default: none, or $PUSHD_CONFIG.")
    var config: String?

    @Option(name: .long, help: "Address to listen on, HOST:PORT (repeatable). Default 127.0.0.1:8080.")
    var listen: [String] = []

    @Option(name: .customLong("event-loop"), help: "auto | io_uring | epoll.")
    var eventLoop: String?

    @Option(name: .long, help: "auto | N loop threads.")
    var workers: String?

    @Option(name: .customLong("log-level"), help: "trace | debug | info | notice | warning | error | critical.")
    var logLevel: String?
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the daemon (the default command).")

    @OptionGroup var options: ServeOptions

    func run() throws {
        let env = Environment.current()
        let config: ServerConfiguration
        do {
            config = try ConfigLoader.load(
                cli: CLIOverrides(
                    configFile: options.config, listen: options.listen, eventLoop: options.eventLoop,
                    workers: options.workers, logLevel: options.logLevel),
                environment: env)
        } catch {
            printError("pushd: invalid configuration:\n\(error)")
            throw ExitCode(78)  // EX_CONFIG
        }
        let logLevel = Logger.Level(rawValue: config.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = logLevel
            return handler
        }
        let logger = Logger(label: "pushd")
        Signals.blockForSigwait()
        raiseFileLimit(logger: logger)

        let server: Server
        do {
            server = try Server(configuration: config, logger: logger, environment: env)
            try server.start()
        } catch {
            logger.critical("\(error)")
            throw ExitCode(1)
        }
        _ = sd_notify(0, "READY=1\nSTATUS=serving\nMAINPID=\(getpid())")
        while true {
            let signal = Signals.wait()
            if signal == SIGTERM || signal == SIGINT {
                logger.info("shutting down", metadata: ["signal": "\(signal)"])
                _ = sd_notify(0, "STOPPING=1")
                server.stop()
                server.waitUntilStopped()
                return
            }
        }
    }

    private func raiseFileLimit(logger: Logger) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        logger.info("file descriptor limit \(limit.rlim_cur): at most ~\(limit.rlim_cur - 64) connections")
    }
}

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config", abstract: "Validate a configuration file and print every error with its key path.")

    @Argument(help: "The YAML file to check.")
    var file: String

    func run() throws {
        let issues = ConfigLoader.check(file: file)
        if issues.isEmpty {
            print("\(file): ok")
            return
        }
        for issue in issues { printError("\(file): \(issue)") }
        throw ExitCode(78)
    }
}

/// The process environment as a dictionary.
enum Environment {
    static func current() -> [String: String] {
        var result: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") {
                result[String(s[..<eq])] = String(s[s.index(after: eq)...])
            }
            p += 1
        }
        return result
    }
}

/// Signals are handled synchronously on the main thread with sigwait(2): blocked before the loop
/// threads start (they inherit the mask), so no handler ever runs on a loop thread.
enum Signals {
    static let handled: [Int32] = [SIGTERM, SIGINT, SIGHUP]

    static func blockForSigwait() {
        signal(SIGPIPE, SIG_IGN)
        var set = sigset_t()
        sigemptyset(&set)
        for s in handled { sigaddset(&set, s) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    static func wait() -> Int32 {
        var set = sigset_t()
        sigemptyset(&set)
        for s in handled { sigaddset(&set, s) }
        var received: Int32 = 0
        sigwait(&set, &received)
        return received
    }
}

func printError(_ text: String) {
    let line = text + "\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}

Pushd.main()
