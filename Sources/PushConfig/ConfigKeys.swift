import PushCore
import PushLoop
import PushServer

/// A value as it arrives from a source: YAML scalars, environment variables and flags are text;
/// YAML sequences and comma-separated `listen` values are lists.
enum RawValue: Sendable, Equatable {
    case scalar(String)
    case list([String])
}

/// Why a raw value was rejected. Formatted by the loader as
/// `KEYPATH[subPath]: expected (got "got" from SOURCE)`.
struct ValueFailure: Sendable, Equatable {
    /// Appended to the key path, e.g. `[1]` for the second `listen` entry.
    var subPath: String = ""
    /// What the key accepts, e.g. `must be an integer between 1 and 256`.
    var expected: String
    /// The offending text, when there is one to quote.
    var got: String?
}

/// One configuration key: its dotted path (the YAML key path) and how to apply a raw value.
struct KeySpec: Sendable {
    /// Dotted YAML path, e.g. `subscriber.queue_events`.
    let path: String
    /// Parses `raw` into `config`, or returns why it cannot.
    let apply: @Sendable (_ raw: RawValue, _ config: inout ServerConfiguration) -> [ValueFailure]

    /// The environment variable that sets this key: `PUSHD_` + the path upper-cased, dots as `_`.
    var environmentName: String { KeySpec.environmentName(for: path) }

    /// `PUSHD_SUBSCRIBER_QUEUE_EVENTS` for `subscriber.queue_events`. Matches how swift-configuration's
    /// `EnvironmentVariablesProvider` encodes the key `pushd.<path>`.
    static func environmentName(for path: String) -> String {
        "PUSHD_" + String(path.uppercased().map { $0.isLetter || $0.isNumber ? $0 : "_" })
    }
}

// MARK: - Spec builders

extension KeySpec {
    /// A key taking one scalar; `parse` returns false when the text is not acceptable.
    static func scalar(
        _ path: String, expected: String,
        _ parse: @escaping @Sendable (String, inout ServerConfiguration) -> Bool
    ) -> KeySpec {
        KeySpec(path: path) { raw, config in
            switch raw {
            case .list:
                return [ValueFailure(expected: "must be a single value, not a list", got: nil)]
            case .scalar(let text):
                return parse(text, &config) ? [] : [ValueFailure(expected: expected, got: text)]
            }
        }
    }

    static func integer(
        _ path: String, _ range: ClosedRange<Int>,
        _ set: @escaping @Sendable (inout ServerConfiguration, Int) -> Void
    ) -> KeySpec {
        scalar(path, expected: "must be an integer between \(range.lowerBound) and \(range.upperBound)") { text, config in
            guard let value = ValueForms.integer(text, in: range) else { return false }
            set(&config, value)
            return true
        }
    }

    static func powerOfTwo(
        _ path: String, _ range: ClosedRange<Int>,
        _ set: @escaping @Sendable (inout ServerConfiguration, Int) -> Void
    ) -> KeySpec {
        scalar(path, expected: "must be a power of two between \(range.lowerBound) and \(range.upperBound)") {
            text, config in
            guard let value = ValueForms.integer(text, in: range), value & (value - 1) == 0 else { return false }
            set(&config, value)
            return true
        }
    }

    static func size(
        _ path: String, _ range: ClosedRange<Int>,
        _ set: @escaping @Sendable (inout ServerConfiguration, Int) -> Void
    ) -> KeySpec {
        let expected =
            "must be a size between \(ValueForms.formatSize(range.lowerBound)) and "
            + "\(ValueForms.formatSize(range.upperBound)): bytes, or a number with unit B, KiB, MiB or GiB"
        return scalar(path, expected: expected) { text, config in
            guard let value = ValueForms.bytes(text, in: range) else { return false }
            set(&config, value)
            return true
        }
    }

    static func seconds(
        _ path: String, _ range: ClosedRange<Double>,
        _ set: @escaping @Sendable (inout ServerConfiguration, Double) -> Void
    ) -> KeySpec {
        let expected =
            "must be a duration between \(ValueForms.formatDuration(seconds: range.lowerBound)) and "
            + "\(ValueForms.formatDuration(seconds: range.upperBound)): seconds, or a number with unit ms, s, m or h"
        return scalar(path, expected: expected) { text, config in
            guard let value = ValueForms.seconds(text, in: range) else { return false }
            set(&config, value)
            return true
        }
    }

    static func milliseconds(
        _ path: String, plain: ValueForms.PlainUnit, _ range: ClosedRange<Int>,
        _ set: @escaping @Sendable (inout ServerConfiguration, Int) -> Void
    ) -> KeySpec {
        let bare = plain == .seconds ? "seconds" : "milliseconds"
        let expected =
            "must be a whole number of milliseconds between \(ValueForms.formatDuration(milliseconds: range.lowerBound)) "
            + "and \(ValueForms.formatDuration(milliseconds: range.upperBound)): \(bare), or a number with unit ms, s, m or h"
        return scalar(path, expected: expected) { text, config in
            guard let value = ValueForms.milliseconds(text, plain: plain, in: range) else { return false }
            set(&config, value)
            return true
        }
    }

    /// `true`/`false` (also `yes`/`no`, `on`/`off`, `1`/`0`), case-insensitive.
    static func boolean(
        _ path: String, _ set: @escaping @Sendable (inout ServerConfiguration, Bool) -> Void
    ) -> KeySpec {
        scalar(path, expected: "must be true or false") { text, config in
            switch text.trimmingWhitespace().lowercased() {
            case "true", "yes", "on", "1": set(&config, true)
            case "false", "no", "off", "0": set(&config, false)
            default: return false
            }
            return true
        }
    }

    static func choice(
        _ path: String, _ options: [String],
        _ set: @escaping @Sendable (inout ServerConfiguration, String) -> Void
    ) -> KeySpec {
        scalar(path, expected: "must be one of \(options.joined(separator: ", "))") { text, config in
            let word = text.trimmingWhitespace().lowercased()
            guard options.contains(word) else { return false }
            set(&config, word)
            return true
        }
    }
}

extension KeySpec {
    /// A key taking a list of strings: a YAML sequence, or one comma-separated string (environment
    /// variables); an empty string is the empty list. Entries are trimmed and must not be empty.
    /// `valid` checks each entry; every bad one is reported at its `PATH[i]` (`pushd check-config`
    /// prints every error, API.md "Config"), quoted unless `secret`.
    static func stringList(
        _ path: String, expected: String = "must not be empty", secret: Bool = false,
        valid: @escaping @Sendable (String) -> Bool = { !$0.isEmpty },
        _ set: @escaping @Sendable (inout ServerConfiguration, [String]) -> Void
    ) -> KeySpec {
        KeySpec(path: path) { raw, config in
            let items: [String]
            switch raw {
            case .list(let list): items = list.map { $0.trimmingWhitespace() }
            case .scalar(let text):
                let t = text.trimmingWhitespace()
                items = t.isEmpty || t == "[]" ? [] : t.split(separator: ",", omittingEmptySubsequences: false).map {
                    String($0).trimmingWhitespace()
                }
            }
            let failures = items.indices.filter { items[$0].isEmpty || !valid(items[$0]) }.map {
                ValueFailure(subPath: "[\($0)]", expected: expected, got: secret ? nil : items[$0])
            }
            if failures.isEmpty { set(&config, items) }
            return failures
        }
    }

    /// A key taking any string (trimmed).
    static func text(_ path: String, _ set: @escaping @Sendable (inout ServerConfiguration, String) -> Void) -> KeySpec {
        scalar(path, expected: "must be a string") { text, config in
            set(&config, text.trimmingWhitespace())
            return true
        }
    }
}

// MARK: - The keys

/// Every configuration key, in the order of `config/pushd.yaml`. The single source of truth for
/// key names, environment variable names, forms and ranges.
enum ConfigKeys {
    /// Most addresses `listen` may hold.
    static let maxListenAddresses = 64
    /// Inclusive bounds of `workers`.
    static let workersRange = 1...256

    static let all: [KeySpec] = [
        listen,
        .choice("event_loop", LoopBackendChoice.allCases.map(\.rawValue)) { config, word in
            config.eventLoop = LoopBackendChoice(rawValue: word) ?? .auto
        },
        .scalar("workers", expected: "must be \"auto\" or an integer between 1 and \(workersRange.upperBound)") {
            text, config in
            if text.trimmingWhitespace().lowercased() == "auto" {
                config.workers = nil
                return true
            }
            guard let count = ValueForms.integer(text, in: workersRange) else { return false }
            config.workers = count
            return true
        },
        .choice("log_level", ["trace", "debug", "info", "notice", "warning", "error", "critical"]) { config, word in
            config.logLevel = word
        },
        .seconds("shutdown_timeout", 0...3600) { $0.shutdownTimeout = $1 },
        .scalar("state_directory", expected: "must be an absolute path, or empty for none") { text, config in
            let path = text.trimmingWhitespace()
            guard path.isEmpty || path.hasPrefix("/") else { return false }
            config.stateDirectory = path
            return true
        },
        .choice("log.access", ["true", "false"]) { config, word in config.accessLog = word == "true" },

        .size("limits.max_request_line_bytes", 256...(1 << 20)) { $0.http.maxRequestLineBytes = $1 },
        .size("limits.max_header_bytes", 1024...(1 << 20)) { $0.http.maxHeaderBytes = $1 },
        .integer("limits.max_header_count", 1...10_000) { $0.http.maxHeaderCount = $1 },
        .size("limits.max_event_bytes", 1...(1 << 30)) { $0.http.maxEventBytes = $1 },
        .size("limits.max_batch_bytes", 1...(1 << 30)) { $0.http.maxBatchBytes = $1 },
        .integer("limits.max_pipelined_requests", 1...65_536) { $0.http.maxPipelinedRequests = $1 },
        .integer("limits.max_topics_per_connection", 1...65_536) { $0.http.maxTopicsPerConnection = $1 },
        .seconds("limits.header_timeout", 0.001...3600) { $0.http.headerTimeout = $1 },
        .seconds("limits.body_timeout", 0...3600) { $0.http.bodyTimeout = $1 },
        .seconds("limits.idle_timeout", 0.001...86_400) { $0.http.idleTimeout = $1 },
        .seconds("limits.linger_timeout", 0...60) { $0.http.lingerTimeout = $1 },
        .size("limits.linger_bytes", 0...(1 << 30)) { $0.http.lingerBytes = $1 },
        .integer("limits.max_connections", 0...16_777_216) { $0.http.maxConnections = $1 },
        .integer("limits.max_connections_per_ip", 0...16_777_216) { $0.http.maxConnectionsPerIP = $1 },
        .integer("limits.publish_rate", 0...10_000_000) { $0.http.publishRate = $1 },
        .integer("limits.publish_burst", 1...10_000_000) { $0.http.publishBurst = $1 },
        .choice("limits.exempt_loopback", ["true", "false"]) { config, word in config.http.exemptLoopback = word == "true" },

        .seconds("sse.heartbeat", 0...3600) { $0.sse.heartbeat = $1 },
        .milliseconds("sse.retry", plain: .seconds, 0...600_000) { $0.sse.retryMilliseconds = $1 },
        .seconds("sse.max_stream_age", 0...604_800) { $0.sse.maxStreamAge = $1 },

        .integer("subscriber.queue_events", 1...10_000_000) { $0.subscriber.queueEvents = $1 },
        .size("subscriber.queue_bytes", 1...(1 << 30)) { $0.subscriber.queueBytes = $1 },
        .choice("subscriber.slow_policy", SlowPolicy.allCases.map(\.rawValue)) { config, word in
            config.subscriber.slowPolicy = SlowPolicy(rawValue: word) ?? .disconnect
        },
        .seconds("subscriber.disconnect_grace", 0.001...3600) { $0.subscriber.disconnectGrace = $1 },
        .milliseconds("subscriber.coalesce_delay", plain: .seconds, 0...1000) {
            $0.subscriber.coalesceDelayMilliseconds = $1
        },
        .size("subscriber.coalesce_bytes", 1...(1 << 20)) { $0.subscriber.coalesceBytes = $1 },
        .milliseconds("subscriber.busy_coalesce_delay", plain: .seconds, 0...1000) {
            $0.subscriber.busyCoalesceDelayMilliseconds = $1
        },

        .integer("replay.events", 0...10_000_000) { $0.replay.events = $1 },
        .size("replay.max_bytes", 0...(1 << 30)) { $0.replay.maxBytes = $1 },
        .seconds("replay.max_age", 0...604_800) { $0.replay.maxAge = $1 },

        .milliseconds("loop.tick_ms", plain: .milliseconds, 1...10_000) { $0.loop.tickMilliseconds = $1 },
        .powerOfTwo("loop.ring_entries", 1...32_768) { $0.loop.ringEntries = UInt32($1) },
        .powerOfTwo("loop.receive_buffers", 1...32_768) { $0.loop.receiveBufferCount = $1 },
        .size("loop.receive_buffer_size", 1024...(1 << 20)) { $0.loop.receiveBufferSize = $1 },
        .milliseconds("loop.accept_backoff_ms", plain: .milliseconds, 1...60_000) {
            $0.loop.acceptBackoffMilliseconds = $1
        },

        .size("websocket.max_message_bytes", 125...(1 << 30)) { $0.websocket.maxMessageBytes = $1 },
        .seconds("websocket.ping_interval", 0...3600) { $0.websocket.pingInterval = $1 },
        .seconds("websocket.pong_timeout", 0...3600) { $0.websocket.pongTimeout = $1 },
        .boolean("websocket.permessage_deflate") { $0.websocket.permessageDeflate = $1 },
        .boolean("websocket.allow_publish") { $0.websocket.allowPublish = $1 },
        .boolean("websocket.echo_endpoint") { $0.websocket.echoEndpoint = $1 },
        .stringList(
            "auth.publish.tokens", expected: "must be at least 16 characters of A-Z a-z 0-9 - . _ ~ + / =", secret: true,
            valid: AuthConfigCheck.isValidStaticToken
        ) { $0.auth.publishTokens = $1 },
        .choice("auth.publish.allow_anonymous", ["true", "false"]) { config, word in
            config.auth.allowAnonymousPublish = word == "true"
        },
        .stringList(
            "auth.jwt.secrets", expected: "must be at least 32 bytes (RFC 7518 §3.2) and not a PEM key", secret: true,
            valid: AuthConfigCheck.isValidSecret
        ) { $0.auth.jwtSecrets = $1 },
        .stringList("auth.jwt.public_keys", expected: "must be an absolute path to a PEM file", valid: { $0.hasPrefix("/") }) {
            $0.auth.jwtPublicKeys = $1
        },
        .text("auth.jwt.audience") { $0.auth.jwtAudience = $1 },
        .text("auth.jwt.issuer") { $0.auth.jwtIssuer = $1 },
        .seconds("auth.jwt.leeway", 0...3600) { $0.auth.jwtLeeway = $1 },
        .stringList(
            "auth.private_topics", expected: "must be a topic name, PREFIX/* or *", valid: AuthConfigCheck.isValidTopicPattern
        ) { $0.auth.privateTopics = $1 },
        .scalar("auth.cookie_name", expected: "must be a cookie name (an RFC 9110 token)") { text, config in
            let name = text.trimmingWhitespace()
            guard AuthConfigCheck.isValidCookieName(name) else { return false }
            config.auth.cookieName = name
            return true
        },

        .stringList(
            "cors.allowed_origins", expected: "must be * or an origin SCHEME://HOST[:PORT] in lower case, without a path",
            valid: { $0 == "*" || AuthConfigCheck.isOrigin($0) }
        ) { $0.cors.allowedOrigins = $1 },
        .choice("cors.allow_credentials", ["true", "false"]) { config, word in
            config.cors.allowCredentials = word == "true"
        },
        .seconds("cors.max_age", 0...86_400) { $0.cors.maxAge = $1 },
        .scalar("tls.certificate", expected: "must be an absolute file path, or empty for no TLS") { text, config in
            let path = text.trimmingWhitespace()
            guard path.isEmpty || path.hasPrefix("/") else { return false }
            config.tls.certificate = path
            return true
        },
        .scalar("tls.private_key", expected: "must be an absolute file path, or empty for no TLS") { text, config in
            let path = text.trimmingWhitespace()
            guard path.isEmpty || path.hasPrefix("/") else { return false }
            config.tls.privateKey = path
            return true
        },
        .choice("tls.min_version", TLSMinimumVersion.allCases.map(\.rawValue)) { config, word in
            config.tls.minVersion = TLSMinimumVersion(rawValue: word) ?? .tls12
        },
    ]

    /// `listen`: a list of addresses, or one string of comma-separated addresses.
    static let listen = KeySpec(path: "listen") { raw, config in
        let items: [String]
        switch raw {
        case .list(let list): items = list.map { $0.trimmingWhitespace() }
        case .scalar(let text): items = text.split(separator: ",", omittingEmptySubsequences: false).map {
            String($0).trimmingWhitespace()
        }
        }
        if items.isEmpty {
            return [ValueFailure(expected: "must list at least one HOST:PORT address", got: nil)]
        }
        if items.count > maxListenAddresses {
            return [ValueFailure(expected: "must list at most \(maxListenAddresses) addresses (got \(items.count))")]
        }
        var failures: [ValueFailure] = []
        var addresses: [ListenAddress] = []
        for (index, item) in items.enumerated() {
            guard let address = ListenAddress(parsing: item), ValueForms.isValidListenHost(address.host) else {
                failures.append(
                    ValueFailure(
                        subPath: "[\(index)]",
                        expected: "must be HOST:PORT with a numeric IPv4 address or localhost, [IPv6]:PORT, "
                            + "or :PORT for every interface; PORT 0...65535",
                        got: item))
                continue
            }
            if let earlier = addresses.firstIndex(of: address) {
                failures.append(
                    ValueFailure(subPath: "[\(index)]", expected: "duplicates listen[\(earlier)]", got: item))
                continue
            }
            addresses.append(address)
        }
        if failures.isEmpty { config.listen = addresses }
        return failures
    }

    /// Sections: the first component of dotted keys.
    static let sections: Set<String> = Set(all.compactMap { spec in
        spec.path.firstIndex(of: ".").map { String(spec.path[..<$0]) }
    })

    /// The spec for a dotted path.
    static let byPath: [String: KeySpec] = Dictionary(uniqueKeysWithValues: all.map { ($0.path, $0) })

    /// The spec for each `PUSHD_*` name.
    static let byEnvironmentName: [String: KeySpec] = Dictionary(
        uniqueKeysWithValues: all.map { ($0.environmentName, $0) })

    /// Checks that need several keys, on a configuration whose keys each parsed.
    static func crossChecks(_ config: ServerConfiguration) -> [(path: String, failure: ValueFailure)] {
        var result: [(String, ValueFailure)] = []
        if config.http.maxBatchBytes < config.http.maxEventBytes {
            result.append((
                "limits.max_batch_bytes",
                ValueFailure(
                    expected: "must be at least limits.max_event_bytes "
                        + "(\(ValueForms.formatSize(config.http.maxEventBytes)))",
                    got: ValueForms.formatSize(config.http.maxBatchBytes))
            ))
        }
        for problem in AuthConfigCheck.problems(config) {
            result.append((problem.path, ValueFailure(expected: problem.message, got: problem.got)))
        }
        // The certificate and key are loaded and checked now, so a bad file stops the daemon
        // (exit 78) and a SIGHUP reload with one keeps the running certificate.
        if let problem = TLSContext.check(config.tls) {
            result.append((problem.keyPath, ValueFailure(expected: problem.reason, got: nil)))
        }
        return result
    }
}
