import PushLoop
import PushServer
import Synchronization
import Testing

@testable import PushConfig

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Temporary files for configuration tests, removed by `remove(_:)`.
enum TempFile {
    private static let counter = Atomic<Int>(0)

    /// Writes `contents` to a fresh file under /tmp and returns its path.
    static func write(_ contents: String) -> String {
        let number = counter.add(1, ordering: .relaxed).newValue
        let path = "/tmp/pushd-config-test-\(getpid())-\(number)-\(UInt32.random(in: 0...UInt32.max)).yaml"
        let file = fopen(path, "wb")!
        let bytes = Array(contents.utf8)
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
        return path
    }

    static func remove(_ path: String) { unlink(path) }
}

/// Loads `yaml` (when given) with `environment` and `cli`, removing the file afterwards.
func load(
    yaml: String? = nil, environment: [String: String] = [:], cli: CLIOverrides = CLIOverrides()
) throws(ConfigError) -> ServerConfiguration {
    var cli = cli
    var path: String?
    if let yaml {
        path = TempFile.write(yaml)
        cli.configFile = path
    }
    defer { if let path { TempFile.remove(path) } }
    return try ConfigLoader.load(cli: cli, environment: environment)
}

/// The issues of a load that must fail.
func issues(
    yaml: String? = nil, environment: [String: String] = [:], cli: CLIOverrides = CLIOverrides(),
    sourceLocation: SourceLocation = #_sourceLocation
) -> [ConfigIssue] {
    do {
        let config = try load(yaml: yaml, environment: environment, cli: cli)
        Issue.record("expected a ConfigError, loaded \(config)", sourceLocation: sourceLocation)
        return []
    } catch {
        return error.issues
    }
}

/// `check(file:)` on `yaml`.
func check(_ yaml: String) -> [ConfigIssue] {
    let path = TempFile.write(yaml)
    defer { TempFile.remove(path) }
    return ConfigLoader.check(file: path)
}

/// `LoopOptions` is not Equatable and `ServerConfiguration.==` skips `loop`: compare its fields.
func loopFieldsEqual(_ a: LoopOptions, _ b: LoopOptions) -> Bool {
    a.tickMilliseconds == b.tickMilliseconds && a.ringEntries == b.ringEntries
        && a.receiveBufferCount == b.receiveBufferCount && a.receiveBufferSize == b.receiveBufferSize
        && a.acceptBackoffMilliseconds == b.acceptBackoffMilliseconds && a.threadName == b.threadName
}

/// The repository's `config/pushd.yaml`, found from this source file's path.
func shippedConfigPath(filePath: String = #filePath) -> String {
    var components = filePath.split(separator: "/", omittingEmptySubsequences: false)
    components.removeLast(3)  // Tests/PushConfigTests/TestSupport.swift
    return components.joined(separator: "/") + "/config/pushd.yaml"
}
