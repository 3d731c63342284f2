// Logging through swift-log (docs/OPERATIONS.md "Logging"): human-readable lines on a terminal or
// a plain file; under systemd (JOURNAL_STREAM set) one line per record with an sd-daemon(3)
// `<N>` syslog priority prefix, so journald keeps each record's level.
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization

/// The process-wide log level: every handler reads it, so a SIGHUP reload changes it at once.
enum LogLevelControl {
    private static let level = Atomic<Int>(2)  // info

    private static let levels: [Logger.Level] = [.trace, .debug, .info, .notice, .warning, .error, .critical]

    static var current: Logger.Level {
        let i = level.load(ordering: .relaxed)
        return levels.indices.contains(i) ? levels[i] : .info
    }

    static func set(_ new: Logger.Level) {
        level.store(levels.firstIndex(of: new) ?? 2, ordering: .relaxed)
    }
}

/// Writes each record as one line on standard error with a single write(2).
struct PushdLogHandler: LogHandler {
    /// How records are formatted.
    enum Format {
        /// `2026-11-29T17:44:38.123Z info pushd: message key=value`
        case human
        /// `<6>message key=value` (sd-daemon(3) priority prefix; journald adds time and unit).
        case journal
    }

    let label: String
    let format: Format
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    /// The level is process-wide (`LogLevelControl`), so a reload reaches every logger.
    var logLevel: Logger.Level {
        get { LogLevelControl.current }
        set { LogLevelControl.set(newValue) }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// `journal` when standard error is connected to journald (`JOURNAL_STREAM` is set, see
    /// systemd.exec(5)), else `human`.
    static func detectFormat() -> Format {
        getenv("JOURNAL_STREAM") != nil ? .journal : .human
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        var text = "\(event.message)"
        if !merged.isEmpty {
            text += " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        }
        // One record, one line.
        if text.contains("\n") { text = text.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: " | ") }
        let line: String
        switch format {
        case .journal:
            line = "<\(Self.priority(event.level))>\(text)\n"
        case .human:
            line = "\(Self.timestamp()) \(event.level) \(label): \(text)\n"
        }
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }

    /// syslog(3) priorities as sd-daemon(3) expects them.
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    /// UTC time with milliseconds, ISO 8601.
    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var parts = tm()
        gmtime_r(&t, &parts)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(ts.tv_nsec / 1_000_000), 3))Z"
    }
}
