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
/// (written with fsync, then renamed into place) whenever the clock or the newest id comes within
/// `margin` of it, to `ahead` past the clock (or just past the newest id, when ids run ahead of
/// the clock). A crash therefore never lets the next run reissue an id, whatever the clock does,
/// and repeated crashes do not push ids further ahead: after a crash the ids start at L and the
/// lease follows the clock again, not L. A clean
/// stop (`release(newest:)`) writes the newest id's millisecond + 1 instead, so a restart does not
/// push ids up to a minute ahead of the clock; only a run after a crash starts at the lease.
///
/// The process holds an exclusive flock(2) on `<state_directory>/lock` for its whole life: a
/// second pushd given the same directory refuses to start instead of issuing ids from the same
/// lease.
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
        let base = directory.hasSuffix("/") ? directory : directory + "/"
        self.path = base + "event-id-lease"
        // Held until the process exits (the kernel drops the lock then, even after a crash).
        let lockFD = open(base + "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lockFD >= 0 else { throw LeaseError(message: "cannot open \(base)lock: \(Self.reason(errno))") }
        guard flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            let e = errno
            close(lockFD)
            throw LeaseError(
                message: e == EWOULDBLOCK
                    ? "\(directory) is in use by another running pushd (\(base)lock is locked): give each instance its own state_directory"
                    : "cannot lock \(base)lock: \(Self.reason(e))")
        }
        var value: UInt64 = 0
        if let fd = Optional(open(path, O_RDONLY | O_CLOEXEC)), fd >= 0 {
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = read(fd, &buffer, 31)
            close(fd)
            let text = String(decoding: buffer[0..<max(0, n)], as: UTF8.self).trimmingCharacters(in: " \n")
            guard let v = UInt64(text) else { throw LeaseError(message: "\(path) is corrupt: \"\(text)\"") }
            value = v
        } else if errno != ENOENT {
            throw LeaseError(message: "cannot read \(path): \(Self.reason(errno))")
        }
        self.lease = Mutex(value)
    }

    /// The floor for this run's ids: every id will be greater than it.
    var floor: EventID { EventID(milliseconds: lease.withLock { $0 }, sequence: 0) }

    /// Extends the lease when `newest` (the last id assigned, or the boot id) or the wall clock
    /// `nowMilliseconds` comes within `margin` of it: to `ahead` past the clock, and at least just
    /// past `newest`. While ids run ahead of the clock (after a crash, or a clock stepped back)
    /// they stay below `newest.milliseconds + 1` until the clock catches up, so the lease is not
    /// rewritten meanwhile. Returns an error message when the write failed (ids stay correct for
    /// this run; only the guarantee for the next run after a crash is weaker).
    @discardableResult
    func extendIfNeeded(newest: EventID, nowMilliseconds: UInt64) -> String? {
        let current = lease.withLock { $0 }
        guard max(newest.milliseconds, nowMilliseconds) + Self.margin >= current else { return nil }
        let next = max(newest.milliseconds + 1, nowMilliseconds + Self.ahead)
        guard next > current else { return nil }
        if let error = write(next) { return error }
        lease.withLock { $0 = max($0, next) }
        return nil
    }

    /// After a clean stop, when no id can be assigned any more: records `newest` (the last id
    /// assigned, or the boot id) so the next run starts right above it instead of at the lease.
    /// Returns an error message when the write failed (the lease then stays, which is safe).
    @discardableResult
    func release(newest: EventID) -> String? {
        let value = newest.milliseconds + 1
        if let error = write(value) { return error }
        lease.withLock { $0 = value }
        return nil
    }

    /// `strerror(3)` text and number, e.g. "No such file or directory (errno 2)".
    static func reason(_ error: Int32) -> String { "\(String(cString: strerror(error))) (errno \(error))" }

    private func write(_ value: UInt64) -> String? {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return "cannot write \(temporary): \(Self.reason(errno))" }
        let bytes = Array("\(value)\n".utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == bytes.count, synced == 0 else { return "cannot write \(temporary): \(Self.reason(errno))" }
        guard rename(temporary, path) == 0 else { return "cannot rename \(temporary) to \(path): \(Self.reason(errno))" }
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
