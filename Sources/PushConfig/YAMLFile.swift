import Configuration
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A parsed configuration file: swift-configuration's `YAMLSnapshot` served as a provider, plus the
/// dotted path of every value the file sets (for the unknown-key check).
struct YAMLFile: Sendable {
    /// Serves the file's values to a `ConfigReader`; nil for a file with no keys at all.
    let provider: StaticSnapshotProvider?
    /// Dotted path of every scalar or sequence in the file, e.g. `sse.heartbeat`.
    let keys: [String]

    /// Files larger than this are refused: a configuration file is a few KiB.
    static let maxBytes = 1 << 20

    /// Reads and parses `path`. Throws the issue to report when the file cannot be read or is not
    /// YAML; the issue's key path is the file path.
    static func load(path: String) throws(ConfigError) -> YAMLFile {
        let bytes: [UInt8]
        switch readFile(path) {
        case .success(let read): bytes = read
        case .failure(let error): throw ConfigError([ConfigIssue(keyPath: path, reason: error.message)])
        }
        if isBlank(bytes) { return YAMLFile(provider: nil, keys: []) }

        // swift-configuration's YAML snapshot keeps its key list private, but consults the secrets
        // specifier once for every value it parses: that is where the file's key paths are collected.
        let collector = KeyCollector()
        let options = YAMLSnapshot.ParsingOptions(
            secretsSpecifier: .dynamic { key, _ in
                collector.add(key)
                return false
            })
        do {
            let snapshot = try YAMLSnapshot(
                data: bytes.span.bytes, providerName: "YAML file \(path)", parsingOptions: options)
            return YAMLFile(provider: StaticSnapshotProvider(snapshot: snapshot), keys: collector.keys)
        } catch {
            throw ConfigError([describeParseError(error, path: path)])
        }
    }

    /// The whole file, or a `cannot read file: <strerror>` message.
    static func readFile(_ path: String) -> Result<[UInt8], ReadError> {
        guard let file = fopen(path, "rb") else {
            return .failure(ReadError(message: "cannot read file: \(String(cString: strerror(errno)))"))
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            bytes.append(contentsOf: chunk[0..<count])
            if bytes.count > maxBytes {
                return .failure(ReadError(message: "cannot read file: larger than \(ValueForms.formatSize(maxBytes))"))
            }
            if count < chunk.count {
                if ferror(file) != 0 { return .failure(ReadError(message: "cannot read file: \(String(cString: strerror(errno)))")) }
                return .success(bytes)
            }
        }
    }

    /// True when the file holds nothing but blank lines, comments and document markers: it sets no
    /// key (Yams would call its root "not a mapping").
    static func isBlank(_ bytes: [UInt8]) -> Bool {
        let text = String(decoding: bytes, as: UTF8.self)
        return text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r" }).allSatisfy {
            line in
            let trimmed = String(line).trimmingWhitespace()
            return trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed == "---" || trimmed == "..."
        }
    }

    /// Words a Yams or YAMLSnapshot error as the reason of an issue on the whole file, or as an
    /// issue on one key when the error names it.
    ///
    /// Yams describes a syntax error as `LINE:COLUMN: error: STAGE: [CONTEXT\n]PROBLEM:\nSNIPPET`;
    /// the snippet is dropped and the position kept.
    static func describeParseError(_ error: any Error, path: String) -> ConfigIssue {
        let description = String(describing: error)
        let lines = description.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let first = lines.first ?? description
        if first == "Top level YAML value is not a mapping." {
            return ConfigIssue(
                keyPath: path,
                reason: "not a configuration file: the top level must be a mapping of keys (see config/pushd.yaml)")
        }
        // "Unexpected non-scalar value in array at listen at index: 0."
        let nonScalar = "Unexpected non-scalar value in array at "
        if first.hasPrefix(nonScalar), let at = first.ranges(of: " at index: ").last {
            let key = first[first.index(first.startIndex, offsetBy: nonScalar.count)..<at.lowerBound]
            let index = first[at.upperBound...].stripping(".")
            return ConfigIssue(keyPath: "\(key)[\(index)]", reason: "must be a single value, not a list or mapping")
        }
        let parts = first.split(separator: ":", maxSplits: 4, omittingEmptySubsequences: false)
        if parts.count == 5, let line = Int(parts[0]), let column = Int(parts[1]),
            parts[2].trimmingWhitespaceSubstring() == "error"
        {
            var text = String(parts[4].trimmingWhitespaceSubstring())
            if !text.hasSuffix(":"), lines.count > 1 {
                // CONTEXT on the first line, PROBLEM on the second.
                text = lines[1].trimmingWhitespace().stripping(":") + " (" + text + ")"
            }
            return ConfigIssue(
                keyPath: path,
                reason: "invalid YAML at line \(line), column \(column): \(text.stripping(":"))")
        }
        if first.hasPrefix("Parser: ") {
            return ConfigIssue(keyPath: path, reason: "invalid YAML: " + first.dropFirst("Parser: ".count))
        }
        return ConfigIssue(keyPath: path, reason: "invalid YAML: \(first)")
    }
}

/// Why a file could not be read: `cannot read file: <reason>`.
struct ReadError: Error {
    var message: String
}

/// Collects key paths from the YAML snapshot's secrets-specifier callback.
final class KeyCollector: Sendable {
    private let storage = Mutex<[String]>([])
    func add(_ key: String) { storage.withLock { $0.append(key) } }
    var keys: [String] { storage.withLock { $0 } }
}

/// A `ConfigProvider` serving one fixed snapshot. swift-configuration's `FileProvider` does the
/// same but can only be created `async`; the daemon loads its configuration synchronously, before
/// any thread or task exists, so the file is read here and parsed with the library's own
/// `YAMLSnapshot`.
struct StaticSnapshotProvider: ConfigProvider {
    let fixedSnapshot: any ConfigSnapshot

    init(snapshot: any ConfigSnapshot) { self.fixedSnapshot = snapshot }

    var providerName: String { fixedSnapshot.providerName }

    func value(forKey key: AbsoluteConfigKey, type: ConfigType) throws -> LookupResult {
        try fixedSnapshot.value(forKey: key, type: type)
    }

    func fetchValue(forKey key: AbsoluteConfigKey, type: ConfigType) async throws -> LookupResult {
        try value(forKey: key, type: type)
    }

    nonisolated(nonsending) func watchValue<Return: ~Copyable>(
        forKey key: AbsoluteConfigKey,
        type: ConfigType,
        updatesHandler: nonisolated(nonsending) (
            _ updates: ConfigUpdatesAsyncSequence<Result<LookupResult, any Error>, Never>
        ) async throws -> Return
    ) async throws -> Return {
        try await watchValueFromValue(forKey: key, type: type, updatesHandler: updatesHandler)
    }

    func snapshot() -> any ConfigSnapshot { fixedSnapshot }

    nonisolated(nonsending) func watchSnapshot<Return: ~Copyable>(
        updatesHandler: nonisolated(nonsending) (_ updates: ConfigUpdatesAsyncSequence<any ConfigSnapshot, Never>) async throws -> Return
    ) async throws -> Return {
        try await watchSnapshotFromSnapshot(updatesHandler: updatesHandler)
    }
}
