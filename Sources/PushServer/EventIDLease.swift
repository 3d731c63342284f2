#if canImport(Glibc)
import Glibc
#endif
import PushCore
import Synchronization

/// Keeps event ids increasing across restarts even when the wall clock steps back
/// (API.md "Event ids and replay").
///
/// The file `<state_directory>/event-id-lease` holds a millisecond value L that no id of the
/// running process reaches: on start, ids begin above `L-0`; while running, L is pushed ahead
/// (written with fsync, then renamed into place) whenever the newest id comes within `margin` of
/// it. A crash therefore never lets the next run reissue an id, whatever the clock does.
final class EventIDLease: Sendable {
    /// How far ahead of the newest id the lease is written, in milliseconds.
    static let ahead: UInt64 = 60_000
    /// When the newest id comes this close to the lease, it is extended.
    static let margin: UInt64 = 30_000

    let path: String
    private let lease: Mutex<UInt64>

    /// Reads the lease in `directory` (0 when absent). Throws a message when the directory is
    /// unusable or the file is corrupt.
    init(directory: String) throws(LeaseError) {
        self.path = directory.hasSuffix("/") ? directory + "event-id-lease" : directory + "/event-id-lease"
        var value: UInt64 = 0
        if let fd = Optional(open(path, O_RDONLY | O_CLOEXEC)), fd >= 0 {
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = read(fd, &buffer, 31)
            close(fd)
            let text = String(decoding: buffer[0..<max(0, n)], as: UTF8.self).trimmingCharacters(in: " \n")
            guard let v = UInt64(text) else { throw LeaseError(message: "\(path) is corrupt: \"\(text)\"") }
            value = v
        } else if errno != ENOENT {
            throw LeaseError(message: "cannot read \(path): errno \(errno)")
        }
        self.lease = Mutex(value)
    }

    /// The floor for this run's ids: every id will be greater than it.
    var floor: EventID { EventID(milliseconds: lease.withLock { $0 }, sequence: 0) }

    /// Extends the lease when `newest` (the last id assigned, or the boot id) comes close.
    /// Returns an error message when the write failed (ids stay correct for this run; only the
    /// guarantee for the next run after a crash is weaker).
    @discardableResult
    func extendIfNeeded(newest: EventID) -> String? {
        let current = lease.withLock { $0 }
        guard newest.milliseconds + Self.margin >= current else { return nil }
        let next = newest.milliseconds + Self.ahead
        if let error = write(next) { return error }
        lease.withLock { $0 = max($0, next) }
        return nil
    }

    private func write(_ value: UInt64) -> String? {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return "cannot write \(temporary): errno \(errno)" }
        let bytes = Array("\(value)\n".utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == bytes.count, synced == 0 else { return "cannot write \(temporary): errno \(errno)" }
        guard rename(temporary, path) == 0 else { return "cannot rename \(temporary) to \(path): errno \(errno)" }
        return nil
    }

    struct LeaseError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
