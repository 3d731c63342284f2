import PushCore
import PushLoop
import PushServer
import Testing

@testable import PushConfig

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

@Suite("Defaults and the shipped file")
struct DefaultsTests {
    @Test("no file, no environment, no flags: the built-in defaults")
    func defaultsWithoutFile() throws {
        let config = try load()
        #expect(config == ServerConfiguration())
        #expect(loopFieldsEqual(config.loop, LoopOptions()))
        #expect(config.listen == [ListenAddress(host: "127.0.0.1", port: 8080)])
        #expect(config.workers == nil)
        #expect(config.eventLoop == .auto)
    }

    @Test("config/pushd.yaml loaded as is gives exactly the built-in defaults")
    func shippedFileEqualsDefaults() throws {
        let path = shippedConfigPath()
        #expect(ConfigLoader.check(file: path) == [])
        let config = try ConfigLoader.load(cli: CLIOverrides(configFile: path), environment: [:])
        #expect(config == ServerConfiguration())
        #expect(loopFieldsEqual(config.loop, LoopOptions()))
    }

    @Test("config/pushd.yaml sets every key, so it documents them all")
    func shippedFileSetsEveryKey() throws {
        let file = try YAMLFile.load(path: shippedConfigPath())
        #expect(file.keys.sorted() == ConfigKeys.all.map(\.path).sorted())
    }

    @Test("PUSHD_CONFIG names the file; --config wins over it")
    func configFileFromEnvironment() throws {
        let envFile = TempFile.write("workers: 3\n")
        let flagFile = TempFile.write("workers: 5\n")
        defer {
            TempFile.remove(envFile)
            TempFile.remove(flagFile)
        }
        #expect(try ConfigLoader.load(environment: ["PUSHD_CONFIG": envFile]).workers == 3)
        let both = try ConfigLoader.load(
            cli: CLIOverrides(configFile: flagFile), environment: ["PUSHD_CONFIG": envFile])
        #expect(both.workers == 5)
    }

    @Test("an empty or comment-only file, and a section with nothing in it, give the defaults")
    func emptyFile() throws {
        #expect(try load(yaml: "") == ServerConfiguration())
        #expect(try load(yaml: "# nothing here\n---\n") == ServerConfiguration())
        #expect(try load(yaml: "sse:\n  # heartbeat: 5s\nworkers: 2\n").workers == 2)
    }
}

@Suite("Precedence")
struct PrecedenceTests {
    static let file = """
        listen: [ "0.0.0.0:9000", "[::]:9000" ]
        event_loop: epoll
        workers: 4
        log_level: debug
        shutdown_timeout: 30
        limits:
          max_event_bytes: 64KiB
          header_timeout: 2.5
        sse:
          heartbeat: 5s
          retry: 500ms
        subscriber:
          queue_events: 100
          slow_policy: drop
        replay:
          max_age: 10m
        loop:
          tick_ms: 50
          ring_entries: 1024
        auth:
          publish:
            allow_anonymous: true  # non-loopback listeners without publish auth (issue #6)
        """

    @Test("the file overrides the defaults, and only where it says")
    func fileOverridesDefaults() throws {
        let config = try load(yaml: Self.file)
        #expect(
            config.listen == [ListenAddress(host: "0.0.0.0", port: 9000), ListenAddress(host: "::", port: 9000)])
        #expect(config.eventLoop == .epoll)
        #expect(config.workers == 4)
        #expect(config.logLevel == "debug")
        #expect(config.shutdownTimeout == 30)
        #expect(config.http.maxEventBytes == 65_536)
        #expect(config.http.headerTimeout == 2.5)
        #expect(config.sse.heartbeat == 5)
        #expect(config.sse.retryMilliseconds == 500)
        #expect(config.subscriber.queueEvents == 100)
        #expect(config.subscriber.slowPolicy == .drop)
        #expect(config.replay.maxAge == 600)
        #expect(config.loop.tickMilliseconds == 50)
        #expect(config.loop.ringEntries == 1024)
        // Untouched keys keep their defaults.
        let defaults = ServerConfiguration()
        #expect(config.http.maxBatchBytes == defaults.http.maxBatchBytes)
        #expect(config.subscriber.queueBytes == defaults.subscriber.queueBytes)
        #expect(config.replay.events == defaults.replay.events)
        #expect(config.loop.receiveBufferSize == LoopOptions().receiveBufferSize)
    }

    @Test("environment variables override the file")
    func environmentOverridesFile() throws {
        let config = try load(
            yaml: Self.file,
            environment: [
                "PUSHD_LISTEN": "127.0.0.1:9001,[::1]:9001",
                "PUSHD_EVENT_LOOP": "io_uring",
                "PUSHD_WORKERS": "2",
                "PUSHD_SSE_HEARTBEAT": "7s",
                "PUSHD_SUBSCRIBER_QUEUE_EVENTS": "200",
                "PUSHD_LIMITS_MAX_EVENT_BYTES": "65537",
                "PUSHD_LOOP_ACCEPT_BACKOFF_MS": "250",
                "HOME": "/root",
            ])
        #expect(
            config.listen == [ListenAddress(host: "127.0.0.1", port: 9001), ListenAddress(host: "::1", port: 9001)])
        #expect(config.eventLoop == .ioUring)
        #expect(config.workers == 2)
        #expect(config.sse.heartbeat == 7)
        #expect(config.subscriber.queueEvents == 200)
        #expect(config.http.maxEventBytes == 65_537)
        #expect(config.loop.acceptBackoffMilliseconds == 250)
        // Not overridden: from the file.
        #expect(config.logLevel == "debug")
        #expect(config.subscriber.slowPolicy == .drop)
    }

    @Test("an empty environment variable counts as unset")
    func emptyEnvironmentVariable() throws {
        let config = try load(yaml: Self.file, environment: ["PUSHD_WORKERS": "", "PUSHD_SSE_HEARTBEAT": ""])
        #expect(config.workers == 4)
        #expect(config.sse.heartbeat == 5)
    }

    @Test("flags override the environment and the file")
    func flagsOverrideEnvironment() throws {
        let config = try load(
            yaml: Self.file,
            environment: [
                "PUSHD_LISTEN": "127.0.0.1:9001", "PUSHD_EVENT_LOOP": "io_uring", "PUSHD_WORKERS": "2",
                "PUSHD_LOG_LEVEL": "error",
            ],
            cli: CLIOverrides(listen: ["[::1]:7000", ":7001"], eventLoop: "auto", workers: "auto", logLevel: "trace"))
        #expect(
            config.listen == [ListenAddress(host: "::1", port: 7000), ListenAddress(host: "0.0.0.0", port: 7001)])
        #expect(config.eventLoop == .auto)
        #expect(config.workers == nil)
        #expect(config.logLevel == "trace")
        // Keys without a flag still come from the file.
        #expect(config.sse.heartbeat == 5)
    }

    @Test("a flag alone overrides the default")
    func flagsWithoutFile() throws {
        let config = try load(cli: CLIOverrides(listen: ["127.0.0.1:0"], workers: "8"))
        #expect(config.listen == [ListenAddress(host: "127.0.0.1", port: 0)])
        #expect(config.workers == 8)
    }
}

@Suite("Value forms")
struct ValueFormTests {
    static let durationCases: [(String, Double)] = [
        ("15", 15), ("0.5", 0.5), (".25", 0.25), ("500ms", 0.5), ("15s", 15), ("2m", 120), ("1h", 3600),
        ("1.5s", 1.5), ("0", 0), (" 3 s ", 3), ("100MS", 0.1),
    ]

    @Test("durations: seconds, or a number with a unit", arguments: durationCases)
    func durations(text: String, seconds: Double) throws {
        #expect(try load(yaml: "sse:\n  heartbeat: \(text)\n").sse.heartbeat == seconds)
        #expect(try load(environment: ["PUSHD_SSE_HEARTBEAT": text]).sse.heartbeat == seconds)
    }

    @Test("durations: keys ending in _ms take a bare number as milliseconds")
    func millisecondKeys() throws {
        let config = try load(yaml: "loop:\n  tick_ms: 20\n  accept_backoff_ms: 1.5s\n")
        #expect(config.loop.tickMilliseconds == 20)
        #expect(config.loop.acceptBackoffMilliseconds == 1500)
        #expect(try load(yaml: "sse:\n  retry: 3\n").sse.retryMilliseconds == 3000)
        #expect(try load(yaml: "sse:\n  retry: 250ms\n").sse.retryMilliseconds == 250)
    }

    @Test(
        "bad durations",
        arguments: ["-1", "15x", "s", "1e3", "nan", "inf", "1.2.3", "15 seconds", " ", "2h"])
    func badDurations(text: String) {
        let found = issues(environment: ["PUSHD_SSE_HEARTBEAT": text])
        #expect(found.map(\.keyPath) == ["sse.heartbeat"])
        #expect(found.first?.reason.hasPrefix("must be a duration between 0s and 1h") == true)
    }

    static let sizeCases: [(String, Int)] = [
        ("65536", 65_536), ("64KiB", 65_536), ("64k", 65_536), ("64K", 65_536), ("64KB", 65_536),
        ("64kb", 65_536), ("1MiB", 1_048_576), ("1M", 1_048_576), ("1MB", 1_048_576), ("1.5MiB", 1_572_864),
        ("1GiB", 1_073_741_824), ("1G", 1_073_741_824), ("100B", 100), ("2 MiB", 2_097_152),
    ]

    @Test("sizes: bytes, or binary units in any case", arguments: sizeCases)
    func sizes(text: String, bytes: Int) throws {
        let config = try load(yaml: "limits:\n  max_event_bytes: \(text)\n  max_batch_bytes: 1GiB\n")
        #expect(config.http.maxEventBytes == bytes)
    }

    @Test("bad sizes", arguments: ["-1", "0", "1.5", "0.3KiB", "64 kilobytes", "2GiB", "1TiB", "KiB", "64KiB4"])
    func badSizes(text: String) {
        let found = issues(yaml: "limits:\n  max_event_bytes: \(text)\n")
        #expect(found.map(\.keyPath) == ["limits.max_event_bytes"])
        #expect(
            found.first?.reason
                == "must be a size between 1B and 1GiB: bytes, or a number with unit B, KiB, MiB or GiB (got \"\(text)\")")
    }

    @Test("workers: auto or 1 to 256")
    func workers() throws {
        #expect(try load(yaml: "workers: auto").workers == nil)
        #expect(try load(yaml: "workers: AUTO").workers == nil)
        #expect(try load(yaml: "workers: 1").workers == 1)
        #expect(try load(yaml: "workers: 256").workers == 256)
        for bad in ["0", "257", "-1", "two", "1.5"] {
            let found = issues(cli: CLIOverrides(workers: bad))
            #expect(
                found == [
                    ConfigIssue(
                        keyPath: "workers",
                        reason: "must be \"auto\" or an integer between 1 and 256 (got \"\(bad)\" from --workers)")
                ])
        }
    }

    @Test("event_loop, log_level and slow_policy take their words")
    func choices() throws {
        #expect(try load(yaml: "event_loop: io_uring").eventLoop == .ioUring)
        #expect(try load(yaml: "event_loop: epoll").eventLoop == .epoll)
        #expect(try load(yaml: "event_loop: auto").eventLoop == .auto)
        for level in ["trace", "debug", "info", "notice", "warning", "error", "critical"] {
            #expect(try load(yaml: "log_level: \(level)").logLevel == level)
        }
        #expect(try load(yaml: "subscriber:\n  slow_policy: drop").subscriber.slowPolicy == .drop)
        #expect(try load(yaml: "subscriber:\n  slow_policy: disconnect").subscriber.slowPolicy == .disconnect)
        #expect(
            issues(yaml: "event_loop: kqueue")
                == [ConfigIssue(keyPath: "event_loop", reason: "must be one of auto, io_uring, epoll (got \"kqueue\")")])
        #expect(issues(cli: CLIOverrides(logLevel: "verbose")).map(\.keyPath) == ["log_level"])
    }

    @Test("listen: a list, one string, or comma-separated addresses")
    func listenForms() throws {
        let anonymous = "\nauth:\n  publish:\n    allow_anonymous: true\n"  // non-loopback without publish auth
        #expect(try load(yaml: "listen: 0.0.0.0:80" + anonymous).listen == [ListenAddress(host: "0.0.0.0", port: 80)])
        #expect(
            try load(yaml: "listen: \"127.0.0.1:80, [::1]:81\"").listen
                == [ListenAddress(host: "127.0.0.1", port: 80), ListenAddress(host: "::1", port: 81)])
        #expect(
            try load(yaml: "listen:\n  - localhost:8081\n  - :8082\n" + anonymous).listen
                == [ListenAddress(host: "localhost", port: 8081), ListenAddress(host: "0.0.0.0", port: 8082)])
    }

    @Test("listen: each bad entry reported at its index")
    func listenErrors() {
        let found = issues(yaml: "listen: [\"127.0.0.1:80\", \"example.com:80\", \"127.0.0.1:99999\", \"127.0.0.1:80\"]")
        #expect(found.map(\.keyPath) == ["listen[1]", "listen[2]", "listen[3]"])
        #expect(found[0].reason.hasSuffix("(got \"example.com:80\")"))
        #expect(found[2].reason == "duplicates listen[0] (got \"127.0.0.1:80\")")
        #expect(issues(yaml: "listen: []") == [
            ConfigIssue(keyPath: "listen", reason: "must list at least one HOST:PORT address"),
        ])
        let fromEnv = issues(environment: ["PUSHD_LISTEN": "127.0.0.1:80,nonsense"])
        #expect(fromEnv.map(\.keyPath) == ["listen[1]"])
        #expect(fromEnv.first?.reason.hasSuffix("(got \"nonsense\" from PUSHD_LISTEN)") == true)
    }

    @Test("list keys: every bad entry reported at its index, secrets never quoted")
    func listEntryErrors() {
        let tokens = "must be at least 16 characters of A-Z a-z 0-9 - . _ ~ + / ="
        let secrets = "must be at least 32 bytes (RFC 7518 §3.2) and not a PEM key"
        let yaml = """
            auth:
              publish:
                tokens: ["short-secret-1", "good-token-0123456789", "bad secret with spaces 0123", "short-secret-2"]
              jwt:
                secrets: ["tiny-hmac-secret", "another-tiny-hmac-secret"]
                public_keys: ["relative/a.pem", "/abs/ok.pem", "relative/b.pem"]
              private_topics: ["ok/*", "a//b", "./x"]
            cors:
              allowed_origins: ["https://ok.example", "HTTPS://UPPER.example", "https://x.example/path"]
            """
        let found = check(yaml)
        #expect(found == [
            ConfigIssue(keyPath: "auth.publish.tokens[0]", reason: tokens),
            ConfigIssue(keyPath: "auth.publish.tokens[2]", reason: tokens),
            ConfigIssue(keyPath: "auth.publish.tokens[3]", reason: tokens),
            ConfigIssue(keyPath: "auth.jwt.secrets[0]", reason: secrets),
            ConfigIssue(keyPath: "auth.jwt.secrets[1]", reason: secrets),
            ConfigIssue(keyPath: "auth.jwt.public_keys[0]", reason: "must be an absolute path to a PEM file (got \"relative/a.pem\")"),
            ConfigIssue(keyPath: "auth.jwt.public_keys[2]", reason: "must be an absolute path to a PEM file (got \"relative/b.pem\")"),
            ConfigIssue(keyPath: "auth.private_topics[1]", reason: "must be a topic name, PREFIX/* or * (got \"a//b\")"),
            ConfigIssue(keyPath: "auth.private_topics[2]", reason: "must be a topic name, PREFIX/* or * (got \"./x\")"),
            ConfigIssue(
                keyPath: "cors.allowed_origins[1]",
                reason: "must be * or an origin SCHEME://HOST[:PORT] in lower case, without a path (got \"HTTPS://UPPER.example\")"),
            ConfigIssue(
                keyPath: "cors.allowed_origins[2]",
                reason: "must be * or an origin SCHEME://HOST[:PORT] in lower case, without a path (got \"https://x.example/path\")"),
        ])
        // The daemon's own load reports the same, and no secret, good or bad, is in any message.
        #expect(issues(yaml: yaml) == found)
        for secret in ["short-secret", "good-token", "bad secret", "tiny-hmac"] {
            #expect(!found.contains { $0.description.contains(secret) }, "\(secret)")
        }
        // From the environment: each entry, named by the variable, still unquoted.
        let fromEnv = issues(environment: ["PUSHD_AUTH_PUBLISH_TOKENS": "short-secret-1,good-token-0123456789,short-secret-2"])
        #expect(fromEnv == [
            ConfigIssue(keyPath: "auth.publish.tokens[0]", reason: tokens + " (from PUSHD_AUTH_PUBLISH_TOKENS)"),
            ConfigIssue(keyPath: "auth.publish.tokens[2]", reason: tokens + " (from PUSHD_AUTH_PUBLISH_TOKENS)"),
        ])
    }

    @Test("ring_entries and receive_buffers must be powers of two")
    func powersOfTwo() throws {
        #expect(try load(yaml: "loop:\n  receive_buffers: 1024").loop.receiveBufferCount == 1024)
        #expect(
            issues(yaml: "loop:\n  ring_entries: 1000")
                == [
                    ConfigIssue(
                        keyPath: "loop.ring_entries",
                        reason: "must be a power of two between 1 and 32768 (got \"1000\")")
                ])
    }
}

@Suite("Errors")
struct ErrorTests {
    @Test("every error is reported at once, each with its key path")
    func severalErrors() {
        let found = check(
            """
            workers: 0
            event_loop: select
            limits:
              max_header_count: 100000
              header_timeout: -5
            subscriber:
              queue_events: -3
              queue_bytes: 4 MiBs
            replay:
              events: [1, 2]
            loop:
              tick_ms: 0.5
            """)
        #expect(
            found == [
                ConfigIssue(keyPath: "event_loop", reason: "must be one of auto, io_uring, epoll (got \"select\")"),
                ConfigIssue(keyPath: "workers", reason: "must be \"auto\" or an integer between 1 and 256 (got \"0\")"),
                ConfigIssue(
                    keyPath: "limits.max_header_count", reason: "must be an integer between 1 and 10000 (got \"100000\")"),
                ConfigIssue(
                    keyPath: "limits.header_timeout",
                    reason: "must be a duration between 1ms and 1h: seconds, or a number with unit ms, s, m or h (got \"-5\")"
                ),
                ConfigIssue(
                    keyPath: "subscriber.queue_events", reason: "must be an integer between 1 and 10000000 (got \"-3\")"),
                ConfigIssue(
                    keyPath: "subscriber.queue_bytes",
                    reason: "must be a size between 1B and 1GiB: bytes, or a number with unit B, KiB, MiB or GiB (got \"4 MiBs\")"
                ),
                ConfigIssue(keyPath: "replay.events", reason: "must be a single value, not a list"),
                ConfigIssue(
                    keyPath: "loop.tick_ms",
                    reason: "must be a whole number of milliseconds between 1ms and 10s: milliseconds, or a number with unit ms, s, m or h (got \"0.5\")"
                ),
            ])
    }

    @Test("unknown keys, with a suggestion when one is close")
    func unknownKeys() {
        let found = check("sse:\n  hartbeat: 5s\nheartbeat: 5\nlimit:\n  max_event_bytes: 1\ncolour: blue\n")
        #expect(
            found == [
                ConfigIssue(keyPath: "colour", reason: "unknown key"),
                ConfigIssue(keyPath: "heartbeat", reason: "unknown key (did you mean \"sse.heartbeat\"?)"),
                ConfigIssue(keyPath: "limit.max_event_bytes", reason: "unknown key (did you mean \"limits.max_event_bytes\"?)"),
                ConfigIssue(keyPath: "sse.hartbeat", reason: "unknown key (did you mean \"sse.heartbeat\"?)"),
            ])
    }

    @Test("a value where a section belongs, and a section where a value belongs")
    func wrongShapes() {
        let found = check("sse: 5\nworkers:\n  count: 2\n")
        #expect(found.map(\.keyPath) == ["sse", "workers"])
        #expect(found[0].reason == "must be a mapping of sse.heartbeat, sse.retry, sse.max_stream_age (got \"5\")")
        #expect(found[1].reason == "must be a value, not a mapping")
    }

    @Test("unparsable YAML is reported with its line and column")
    func badYAML() {
        let path = TempFile.write("workers: 2\nsse:\n  heartbeat: 5s\n retry: [1\n")
        defer { TempFile.remove(path) }
        let found = ConfigLoader.check(file: path)
        #expect(found.count == 1)
        #expect(found.first?.keyPath == path)
        #expect(
            found.first?.reason
                == "invalid YAML at line 4, column 2: did not find expected key "
                + "(while parsing a block mapping in line 1, column 1)")

        #expect(check("a: b: c\n").map(\.reason) == [
            "invalid YAML at line 1, column 5: mapping values are not allowed in this context",
        ])
        #expect(check("workers: 2\nworkers: 3\n").first?.reason.contains("'workers'") == true)
        #expect(check("listen: [{host: a}]\n") == [
            ConfigIssue(keyPath: "listen[0]", reason: "must be a single value, not a list or mapping"),
        ])

        let notMapping = check("- just\n- a list\n")
        #expect(notMapping.first?.reason.hasPrefix("not a configuration file") == true)
    }

    @Test("a missing file is an error naming the file")
    func missingFile() {
        let path = "/nonexistent/pushd.yaml"
        #expect(
            ConfigLoader.check(file: path)
                == [ConfigIssue(keyPath: path, reason: "cannot read file: No such file or directory")])
        #expect(
            issues(cli: CLIOverrides(configFile: path))
                == [ConfigIssue(keyPath: path, reason: "cannot read file: No such file or directory")])
    }

    @Test("an empty --config is an error, an empty PUSHD_CONFIG means no file")
    func emptyConfigPath() throws {
        #expect(
            issues(cli: CLIOverrides(configFile: ""))
                == [ConfigIssue(keyPath: "--config", reason: "must name a file (got \"\")")])
        #expect(try ConfigLoader.load(environment: ["PUSHD_CONFIG": ""]) == ServerConfiguration())
    }

    @Test("the process environment is read from environ")
    func processEnvironment() {
        let path = getenv("PATH").map { String(cString: $0) }
        #expect(ConfigLoader.processEnvironment()["PATH"] == path)
    }

    @Test("unknown PUSHD_ variables are errors; PUSHD_CONFIG and other variables are not")
    func unknownEnvironmentVariables() {
        let found = issues(environment: ["PUSHD_SSE_HARTBEAT": "5s", "PUSHD_WORKERS": "2", "PATH": "/bin"])
        #expect(
            found == [
                ConfigIssue(
                    keyPath: "PUSHD_SSE_HARTBEAT",
                    reason: "unknown environment variable (did you mean \"PUSHD_SSE_HEARTBEAT\"?)")
            ])
    }

    @Test("an invalid file value is reported even when the environment overrides it")
    func shadowedFileValue() {
        let found = issues(yaml: "workers: lots\n", environment: ["PUSHD_WORKERS": "2"])
        #expect(found.map(\.keyPath) == ["workers"])
        #expect(found.first?.reason.hasSuffix("(got \"lots\")") == true)
    }

    @Test("file, environment and flag errors together")
    func errorsFromEverySource() {
        let found = issues(
            yaml: "sse:\n  retry: 2000\n  heartbet: 1\n",
            environment: ["PUSHD_SUBSCRIBER_QUEUE_EVENTS": "0"],
            cli: CLIOverrides(eventLoop: "uring"))
        #expect(found.map(\.keyPath) == ["sse.heartbet", "sse.retry", "event_loop", "subscriber.queue_events"])
        #expect(found[1].reason.hasSuffix("(got \"2000\")"))
        #expect(found[2].reason.hasSuffix("(got \"uring\" from --event-loop)"))
        #expect(found[3].reason.hasSuffix("(got \"0\" from PUSHD_SUBSCRIBER_QUEUE_EVENTS)"))
    }

    @Test("max_batch_bytes must hold max_event_bytes")
    func crossCheck() {
        #expect(
            check("limits:\n  max_event_bytes: 2MiB\n  max_batch_bytes: 1MiB\n")
                == [
                    ConfigIssue(
                        keyPath: "limits.max_batch_bytes", reason: "must be at least limits.max_event_bytes (2MiB) (got 1MiB)")
                ])
    }

    @Test("ConfigError prints one KEYPATH: REASON line per issue; exit code 78")
    func errorDescription() {
        let error = ConfigError([
            ConfigIssue(keyPath: "workers", reason: "bad"), ConfigIssue(keyPath: "sse.retry", reason: "worse"),
        ])
        #expect(error.description == "workers: bad\nsse.retry: worse")
        #expect(ConfigError.exitCode == 78)
    }
}

@Suite("Environment variable names")
struct EnvironmentNameTests {
    @Test("names are PUSHD_ and the upper-cased key path, dots as underscores, all distinct")
    func names() {
        let names = ConfigLoader.environmentVariables
        #expect(names.count == ConfigKeys.all.count)
        #expect(Set(names.map(\.name)).count == names.count)
        #expect(names.contains { $0 == ("subscriber.queue_events", "PUSHD_SUBSCRIBER_QUEUE_EVENTS") })
        #expect(names.contains { $0 == ("event_loop", "PUSHD_EVENT_LOOP") })
        #expect(names.contains { $0 == ("loop.receive_buffer_size", "PUSHD_LOOP_RECEIVE_BUFFER_SIZE") })
    }

    @Test("every key is read from its environment variable", arguments: ConfigKeys.all.map(\.path))
    func everyKeyReadsItsVariable(path: String) throws {
        let name = KeySpec.environmentName(for: path)
        if Self.freeText.contains(path) {
            // Any text is a valid value: check it is read.
            let config = try ConfigLoader.load(environment: [name: "#bogus#"])
            #expect([config.auth.jwtAudience, config.auth.jwtIssuer, config.auth.cookieName].contains("#bogus#"))
            return
        }
        let found = issues(environment: [name: "#bogus#"])
        #expect(found.count == 1)
        // List-valued keys report the entry: `listen[0]`.
        #expect(found.first?.keyPath == path || found.first?.keyPath == path + "[0]")
        // Secrets are never quoted back.
        let shown = Self.secrets.contains(path) ? "(from \(name))" : "(got \"#bogus#\" from \(name))"
        #expect(found.first?.reason.hasSuffix(shown) == true)
    }

    /// Keys for which `#bogus#` is a valid value (`#` is an RFC 9110 token character).
    static let freeText: Set = ["auth.jwt.audience", "auth.jwt.issuer", "auth.cookie_name"]
    static let secrets: Set = ["auth.publish.tokens", "auth.jwt.secrets"]
}

@Suite("Value form parsers")
struct ValueFormParserTests {
    @Test func formatting() {
        #expect(ValueForms.formatSize(1 << 30) == "1GiB")
        #expect(ValueForms.formatSize(3 << 19) == "1536KiB")
        #expect(ValueForms.formatSize(100) == "100B")
        #expect(ValueForms.formatDuration(seconds: 3600) == "1h")
        #expect(ValueForms.formatDuration(seconds: 90) == "90s")
        #expect(ValueForms.formatDuration(seconds: 0.001) == "1ms")
        #expect(ValueForms.formatDuration(seconds: 1.5) == "1.5s")
    }

    @Test func exactDecimals() {
        #expect(ValueForms.durationNanoseconds("0.1", plain: .seconds) == 100_000_000)
        #expect(ValueForms.bytes("0.5KiB", in: 0...Int.max) == 512)
        #expect(ValueForms.bytes("99999999999999999999", in: 0...Int.max) == nil)
        #expect(ValueForms.bytes("9999999999G", in: 0...Int.max) == nil)
    }
}
