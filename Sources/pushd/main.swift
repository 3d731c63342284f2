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

    private var cli: CLIOverrides {
        CLIOverrides(
            configFile: options.config, listen: options.listen, eventLoop: options.eventLoop,
            workers: options.workers, logLevel: options.logLevel)
    }

    func run() throws {
        let env = Environment.current()
        let config: ServerConfiguration
        var settings: ConfigSettings
        do {
            (config, settings) = try ConfigLoader.loadWithSettings(cli: cli, environment: env)
        } catch {
            printError("pushd: invalid configuration:\n\(error)")
            throw ExitCode(78)  // EX_CONFIG
        }
        LogLevelControl.set(Logger.Level(rawValue: config.logLevel) ?? .info)
        let format = PushdLogHandler.detectFormat()
        LoggingSystem.bootstrap { label in PushdLogHandler(label: label, format: format) }
        let logger = Logger(label: "pushd")
        Signals.blockForSigwait()
        raiseFileLimit(maxConnections: config.http.maxConnections, logger: logger)

        let inherited = Systemd.listenFDs(logger: logger)
        if !inherited.isEmpty {
            logger.info("socket activation: accepting on \(inherited.count) passed socket(s); `listen` is ignored")
        }
        let server: Server
        do {
            server = try Server(configuration: config, logger: logger, environment: env, inheritedListeners: inherited)
            try server.start()
        } catch {
            logger.critical("\(error)")
            throw ExitCode(1)
        }
        // Every loop accepts now (Server.start returns only then).
        Systemd.notify("READY=1\nSTATUS=\(server.statusLine)\nMAINPID=\(getpid())")
        let notifier = ServiceNotifier(server: server, logger: logger)
        notifier.start()
        while true {
            let signal = Signals.wait()
            if signal == SIGHUP {
                reload(server, settings: &settings, logger: logger)
            } else if signal == SIGTERM || signal == SIGINT {
                let timeout = server.configuration.shutdownTimeout
                logger.info(
                    "draining", metadata: ["signal": "\(signal)", "connections": "\(server.openConnections)", "timeout": "\(timeout)s"])
                Systemd.notify("STOPPING=1\nSTATUS=draining \(server.openConnections) connections")
                let t0 = Systemd.monotonicMicroseconds()
                let clean = server.drain(timeout: timeout)
                let took = Double(Systemd.monotonicMicroseconds() - t0) / 1e6
                if clean {
                    logger.info("drained in \(took) s")
                } else {
                    logger.warning("shutdown_timeout (\(timeout) s) reached: cutting \(server.openConnections) connection(s)")
                }
                server.stop()
                server.waitUntilStopped()
                notifier.stop()
                return
            }
        }
    }

    /// SIGHUP: reload the configuration from the same file, environment and flags. An invalid
    /// configuration keeps the running one and logs every problem.
    /// `settings` is what the running configuration was loaded from; replaced on success. The log
    /// line names every key whose value changed (names only: some keys hold secrets).
    private func reload(_ server: Server, settings: inout ConfigSettings, logger: Logger) {
        Systemd.notify("RELOADING=1\nMONOTONIC_USEC=\(Systemd.monotonicMicroseconds())\nSTATUS=reloading configuration")
        do {
            let (new, newSettings) = try ConfigLoader.loadWithSettings(cli: cli, environment: Environment.current())
            let needRestart = server.reload(new)
            LogLevelControl.set(Logger.Level(rawValue: new.logLevel) ?? .info)
            for key in needRestart {
                logger.warning("configuration reload: a new value of \(key) takes effect only after a restart")
            }
            // Keys that need a restart keep their running values: they are not "changed" (the
            // warning above says so), and the next reload compares against what really runs.
            let inForce = newSettings.keeping(needRestart, from: settings)
            let changed = settings.changedKeys(to: inForce)
            settings = inForce
            logger.info(
                "configuration reloaded: \(changed.isEmpty ? "no value changed" : "changed " + changed.joined(separator: ", "))")
        } catch {
            for issue in error.issues {
                logger.error("configuration reload refused, keeping the running configuration: \(issue)")
            }
        }
        Systemd.notify("READY=1\nSTATUS=\(server.statusLine)")
    }

    /// Raises the soft RLIMIT_NOFILE to the hard limit and logs the connection ceiling that
    /// follows: `limits.max_connections` when set, else its default (`Server.defaultMaxConnections`,
    /// read after the raise).
    private func raiseFileLimit(maxConnections: Int, logger: Logger) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        if maxConnections > 0 {
            logger.info(
                "file descriptor limit raised to the hard limit \(limit.rlim_max); limits.max_connections is \(maxConnections)")
        } else {
            logger.info(
                "file descriptor limit raised to the hard limit \(limit.rlim_max): limits.max_connections defaults to \(Server.defaultMaxConnections) (this limit minus 64, at least 16)")
        }
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
