import Configuration
import PushServer

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Values given on the command line; each one, when present, overrides the file and the
/// environment. Values are the flags' text, validated like every other source.
public struct CLIOverrides: Sendable, Equatable {
    /// `--config FILE`: the YAML file to load. Takes precedence over `PUSHD_CONFIG`.
    public var configFile: String?
    /// `--listen HOST:PORT`, repeatable (a value may also hold comma-separated addresses).
    /// Empty means "not given".
    public var listen: [String]
    /// `--event-loop auto|io_uring|epoll`.
    public var eventLoop: String?
    /// `--workers auto|N`.
    public var workers: String?
    /// `--log-level LEVEL`.
    public var logLevel: String?

    /// Creates overrides; every parameter defaults to "not given".
    public init(
        configFile: String? = nil, listen: [String] = [], eventLoop: String? = nil, workers: String? = nil,
        logLevel: String? = nil
    ) {
        self.configFile = configFile
        self.listen = listen
        self.eventLoop = eventLoop
        self.workers = workers
        self.logLevel = logLevel
    }
}

/// One configuration problem: where, and what is wrong. Printed as `KEYPATH: REASON`.
public struct ConfigIssue: Sendable, Equatable, CustomStringConvertible {
    /// Dotted key path (`subscriber.queue_events`, `listen[1]`), an environment variable name
    /// (`PUSHD_SSE_HARTBEAT`) for an unknown variable, or the file path for a file that cannot be
    /// read or parsed.
    public var keyPath: String
    /// What is wrong, e.g. `must be an integer between 1 and 10000000 (got "-3")`.
    public var reason: String

    /// Creates an issue.
    public init(keyPath: String, reason: String) {
        self.keyPath = keyPath
        self.reason = reason
    }

    /// `KEYPATH: REASON`.
    public var description: String { "\(keyPath): \(reason)" }
}

/// Every problem found while loading a configuration (never just the first one).
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The daemon's exit status for an invalid configuration: 78, `EX_CONFIG` from sysexits.h.
    public static let exitCode: Int32 = 78

    /// The problems, in a stable order: file, environment, values, cross-key checks. Never empty.
    public var issues: [ConfigIssue]

    /// Creates an error from its issues.
    public init(_ issues: [ConfigIssue]) { self.issues = issues }

    /// One `KEYPATH: REASON` line per issue.
    public var description: String { issues.map(\.description).joined(separator: "\n") }
}

/// Builds the daemon's `ServerConfiguration` from, in increasing precedence:
/// built-in defaults (`ServerConfiguration()`), a YAML file, `PUSHD_*` environment variables and
/// command-line flags. Reading goes through swift-configuration: a `ConfigReader` over an
/// in-memory provider (flags), an `EnvironmentVariablesProvider` (keys prefixed `pushd`, so
/// `sse.heartbeat` is `PUSHD_SSE_HEARTBEAT`) and the file's `YAMLSnapshot`.
///
/// Every value arrives as text and is parsed by pushd's own value forms (durations, sizes, …), so
/// a YAML `15`, an environment `15` and a flag `15` mean the same. See docs/CONFIGURATION.md.
public enum ConfigLoader {
    /// The environment variable naming the YAML file when `--config` is not given.
    public static let configFileVariable = "PUSHD_CONFIG"

    /// Loads the configuration. The file is `cli.configFile`, else `environment["PUSHD_CONFIG"]`,
    /// else none (built-in defaults). Environment variables with an empty value count as unset.
    ///
    /// The file is validated in full, even values that the environment or a flag overrides; then
    /// every value taken from the environment or a flag. Unknown `PUSHD_*` variables are errors.
    /// - Parameters:
    ///   - cli: The command-line flags.
    ///   - environment: The process environment (only `PUSHD_*` variables are looked at).
    /// - Throws: `ConfigError` with every problem found.
    public static func load(
        cli: CLIOverrides = CLIOverrides(), environment: [String: String] = processEnvironment()
    ) throws(ConfigError) -> ServerConfiguration {
        try loadWithSettings(cli: cli, environment: environment).config
    }

    /// `load(cli:environment:)`, also returning what every source set (`ConfigSettings`), so a
    /// reload can tell which keys changed (`ConfigSettings.changedKeys(to:)`).
    /// - Throws: `ConfigError` with every problem found.
    public static func loadWithSettings(
        cli: CLIOverrides = CLIOverrides(), environment: [String: String] = processEnvironment()
    ) throws(ConfigError) -> (config: ServerConfiguration, settings: ConfigSettings) {
        var issues: [ConfigIssue] = []
        let settings = environment.filter { $0.key.hasPrefix("PUSHD_") && !$0.value.isEmpty }

        // The file, checked on its own.
        var file: YAMLFile?
        if cli.configFile == "" {
            issues.append(ConfigIssue(keyPath: "--config", reason: "must name a file (got \"\")"))
        } else if let path = cli.configFile ?? settings[configFileVariable] {
            do throws(ConfigError) {
                let loaded = try YAMLFile.load(path: path)
                file = loaded
                issues += structuralIssues(of: loaded)
                if let provider = loaded.provider {
                    issues += resolve(ConfigReader(provider: provider)) { _ in nil }.issues.map(\.issue)
                }
            } catch {
                issues += error.issues
            }
        }

        // The environment: unknown names.
        for name in settings.keys.sorted() where name != configFileVariable {
            if ConfigKeys.byEnvironmentName[name] == nil {
                let hint = suggestion(for: name, among: ConfigKeys.byEnvironmentName.keys.sorted())
                issues.append(ConfigIssue(keyPath: name, reason: "unknown environment variable\(hint)"))
            }
        }

        // Everything together, highest precedence first.
        let flags = flagValues(cli)
        var providers: [any ConfigProvider] = [
            InMemoryProvider(name: "command line", values: flags.values),
            EnvironmentVariablesProvider(environmentVariables: settings).prefixKeys(with: "pushd"),
        ]
        if let provider = file?.provider { providers.append(provider) }
        let resolved = resolve(ConfigReader(providers: providers)) { spec in
            if let flag = flags.labels[spec.path] { return .some(flag) }
            if settings[spec.environmentName] != nil { return .some(spec.environmentName) }
            return nil
        }
        // Values from the file were reported above; report the others.
        issues += resolved.issues.filter { !$0.fromFile }.map(\.issue)
        if issues.isEmpty {
            issues += crossIssues(resolved.config)
        }
        if !issues.isEmpty { throw ConfigError(issues) }
        return (resolved.config, ConfigSettings(values: resolved.values))
    }

    /// Validates a configuration file on its own (no environment, no flags), for
    /// `pushd check-config FILE`. Returns every problem; an empty array means the file is valid.
    public static func check(file path: String) -> [ConfigIssue] {
        let file: YAMLFile
        do throws(ConfigError) {
            file = try YAMLFile.load(path: path)
        } catch {
            return error.issues
        }
        var issues = structuralIssues(of: file)
        guard let provider = file.provider else { return issues }
        let resolved = resolve(ConfigReader(provider: provider)) { _ in nil }
        issues += resolved.issues.map(\.issue)
        if issues.isEmpty { issues += crossIssues(resolved.config) }
        return issues
    }

    /// The `PUSHD_*` environment variable for each key, in file order, e.g.
    /// `("sse.heartbeat", "PUSHD_SSE_HEARTBEAT")`.
    public static var environmentVariables: [(keyPath: String, name: String)] {
        ConfigKeys.all.map { ($0.path, $0.environmentName) }
    }

    /// The current process environment, read from `environ`.
    public static func processEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            entry += 1
        }
        return result
    }

    // MARK: - Internals

    /// An issue, and whether its value came from the file.
    struct SourcedIssue {
        var issue: ConfigIssue
        var fromFile: Bool
    }

    /// Reads every key through `reader` into a default `ServerConfiguration`.
    /// - Parameter source: The flag or environment variable that supplies a key, nil for the file.
    static func resolve(
        _ reader: ConfigReader, source: (KeySpec) -> String?
    ) -> (config: ServerConfiguration, issues: [SourcedIssue], values: [String: RawValue]) {
        var config = ServerConfiguration()
        var issues: [SourcedIssue] = []
        var values: [String: RawValue] = [:]
        for spec in ConfigKeys.all {
            guard let raw = rawValue(of: spec.path, in: reader) else { continue }
            values[spec.path] = raw
            let label = source(spec)
            for failure in spec.apply(raw, &config) {
                issues.append(
                    SourcedIssue(issue: issue(spec.path, failure, source: label), fromFile: label == nil))
            }
        }
        return (config, issues, values)
    }

    /// The text of a key, whichever shape its provider holds: a single value or a list.
    static func rawValue(of path: String, in reader: ConfigReader) -> RawValue? {
        let key = ConfigKey(path)
        if let text = reader.string(forKey: key) { return .scalar(text) }
        if let list = reader.stringArray(forKey: key) { return .list(list) }
        return nil
    }

    /// `keyPath[sub]: expected (got "text" from SOURCE)`.
    static func issue(_ path: String, _ failure: ValueFailure, source: String?) -> ConfigIssue {
        var reason = failure.expected
        switch (failure.got, source) {
        case (let got?, let source?): reason += " (got \(quoted(got)) from \(source))"
        case (let got?, nil): reason += " (got \(quoted(got)))"
        case (nil, let source?): reason += " (from \(source))"
        case (nil, nil): break
        }
        return ConfigIssue(keyPath: path + failure.subPath, reason: reason)
    }

    static func crossIssues(_ config: ServerConfiguration) -> [ConfigIssue] {
        ConfigKeys.crossChecks(config).map { check in
            ConfigIssue(
                keyPath: check.path,
                reason: check.failure.expected + (check.failure.got.map { " (got \($0))" } ?? ""))
        }
    }

    /// `"text"` with `\`, `"` and control characters escaped.
    static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": result += "\\\\"
            case "\"": result += "\\\""
            case "\n": result += "\\n"
            case "\t": result += "\\t"
            case "\r": result += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    result += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result + "\""
    }

    /// Flags as in-memory values, and the flag name that sets each key.
    static func flagValues(_ cli: CLIOverrides) -> (values: [AbsoluteConfigKey: ConfigValue], labels: [String: String]) {
        var values: [AbsoluteConfigKey: ConfigValue] = [:]
        var labels: [String: String] = [:]
        func set(_ path: String, _ flag: String, _ content: ConfigContent) {
            values[AbsoluteConfigKey(ConfigKey(path))] = ConfigValue(content, isSecret: false)
            labels[path] = flag
        }
        if !cli.listen.isEmpty { set("listen", "--listen", .stringArray(cli.listen)) }
        if let value = cli.eventLoop { set("event_loop", "--event-loop", .string(value)) }
        if let value = cli.workers { set("workers", "--workers", .string(value)) }
        if let value = cli.logLevel { set("log_level", "--log-level", .string(value)) }
        return (values, labels)
    }

    /// Unknown keys, and values where a section or a section where a value belongs.
    static func structuralIssues(of file: YAMLFile) -> [ConfigIssue] {
        var issues: [ConfigIssue] = []
        var reported: Set<String> = []
        let reader = file.provider.map { ConfigReader(provider: $0) }
        for key in file.keys.sorted() {
            if ConfigKeys.byPath[key] != nil { continue }
            if ConfigKeys.sections.contains(key) {
                // `sse:` with every child commented out is null: an empty section.
                let text = reader?.string(forKey: ConfigKey(key)) ?? ""
                if ["", "~", "null", "Null", "NULL"].contains(text) { continue }
                let children = ConfigKeys.all.filter { $0.path.hasPrefix(key + ".") }.map(\.path)
                issues.append(
                    ConfigIssue(
                        keyPath: key,
                        reason: "must be a mapping of \(children.joined(separator: ", ")) (got \(quoted(text)))"))
                continue
            }
            // `workers: {x: 1}` gives `workers.x`: a mapping where a value belongs.
            if let owner = ConfigKeys.all.first(where: { key.hasPrefix($0.path + ".") }) {
                if reported.insert(owner.path).inserted {
                    issues.append(ConfigIssue(keyPath: owner.path, reason: "must be a value, not a mapping"))
                }
                continue
            }
            let candidates = ConfigKeys.all.map(\.path)
            issues.append(ConfigIssue(keyPath: key, reason: "unknown key" + suggestion(for: key, among: candidates)))
        }
        return issues
    }

    /// ` (did you mean "X"?)` for the closest candidate within a small edit distance, or for one
    /// whose last component is the same; else empty.
    static func suggestion(for name: String, among candidates: [String]) -> String {
        let lowered = name.lowercased()
        let limit = lowered.count >= 12 ? 3 : 2
        var best: (candidate: String, distance: Int)?
        for candidate in candidates {
            let distance = editDistance(lowered, candidate.lowercased())
            if distance <= limit, distance < (best?.distance ?? .max) { best = (candidate, distance) }
        }
        if best == nil, let last = lowered.split(separator: ".").last {
            // `heartbeat` at the top level: `sse.heartbeat`.
            if let match = candidates.first(where: { $0.lowercased().hasSuffix("." + last) }) { best = (match, 0) }
        }
        return best.map { " (did you mean \(quoted($0.candidate))?)" } ?? ""
    }

    /// Levenshtein distance.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8)
        let b = Array(b.utf8)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}

/// The value every configuration key was given by the file, the environment or a flag (keys left
/// at their defaults are absent), as text. Kept by the daemon between reloads; never logged, since
/// some keys hold secrets (`auth.publish.tokens`, `auth.jwt.secrets`).
public struct ConfigSettings: Sendable, Equatable {
    let values: [String: RawValue]

    /// No key set: every key at its default.
    public init() { values = [:] }

    init(values: [String: RawValue]) { self.values = values }

    /// The key paths whose effective value differs in `newer`, in `ConfigKeys.all` (file) order.
    /// Two texts that parse to the same value (`10ms` and `0.01`, a key set to its default and
    /// the key left out) are not a change: each key's old and new text are applied to a default
    /// configuration and the results compared.
    public func changedKeys(to newer: ConfigSettings) -> [String] {
        ConfigKeys.all.compactMap { spec in
            let old = values[spec.path]
            let new = newer.values[spec.path]
            guard old != new else { return nil }
            var a = ServerConfiguration()
            var b = ServerConfiguration()
            if let old { _ = spec.apply(old, &a) }
            if let new { _ = spec.apply(new, &b) }
            return a == b ? nil : spec.path
        }
    }

    /// These settings with the keys of `groups` taken from `running` instead: what is in force
    /// after a reload that kept those keys' running values (`Server.reload` returns the groups
    /// that need a restart: `listen`, `loop.*`, `tls`, …). A group `x.*` or `x` covers the key
    /// `x` and every key below it.
    public func keeping(_ groups: [String], from running: ConfigSettings) -> ConfigSettings {
        let prefixes = groups.map { $0.hasSuffix(".*") ? String($0.dropLast(2)) : $0 }
        func kept(_ path: String) -> Bool { prefixes.contains { path == $0 || path.hasPrefix($0 + ".") } }
        var values = self.values.filter { !kept($0.key) }
        for (path, value) in running.values where kept(path) { values[path] = value }
        return ConfigSettings(values: values)
    }
}
