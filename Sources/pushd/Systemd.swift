// systemd integration (docs/OPERATIONS.md): sd_notify(3) messages, the watchdog, and listening
// sockets passed by socket activation (sd_listen_fds(3)). Everything is a no-op outside systemd:
// sd_notify does nothing without NOTIFY_SOCKET, the watchdog is off without WATCHDOG_USEC.
#if canImport(Glibc)
import Glibc
#endif
import CSystemd
import Logging
import PushServer
import Synchronization

enum Systemd {
    /// Sends one sd_notify message (several `KEY=VALUE` lines).
    static func notify(_ message: String) {
        _ = sd_notify(0, message)
    }

    /// CLOCK_MONOTONIC in microseconds (`MONOTONIC_USEC=` of `RELOADING=1`).
    static func monotonicMicroseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
    }

    /// The listening TCP sockets passed by the service manager (`LISTEN_FDS`/`LISTEN_PID`), from
    /// fd 3 on; empty when pushd was not socket-activated. The variables are unset, so children
    /// do not see them. Passed descriptors that are not listening stream sockets are reported and
    /// skipped.
    static func listenFDs(logger: Logger) -> [Int32] {
        let count = sd_listen_fds(1)
        guard count > 0 else {
            if count < 0 { logger.error("sd_listen_fds failed: errno \(-count)") }
            return []
        }
        var fds: [Int32] = []
        for fd in Int32(SD_LISTEN_FDS_START)..<Int32(SD_LISTEN_FDS_START) + count {
            if sd_is_socket(fd, AF_UNSPEC, Int32(SOCK_STREAM.rawValue), 1) > 0 {
                fds.append(fd)
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            } else {
                logger.error("socket activation: fd \(fd) is not a listening stream socket; ignored")
            }
        }
        return fds
    }

    /// The watchdog timeout systemd expects pings within (`WATCHDOG_USEC`), in microseconds, or nil.
    static func watchdogMicroseconds() -> UInt64? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return usec
    }
}

/// A thread that sends `WATCHDOG=1` every half watchdog period — only while every loop's
/// heartbeat advanced since the previous ping, so a stuck loop makes systemd restart pushd — and
/// `STATUS=` with live counts every few seconds.
final class ServiceNotifier: Sendable {
    private let server: Server
    private let logger: Logger
    private let watchdogInterval: UInt64?  // microseconds between pings
    private let statusInterval: UInt64 = 2_000_000
    private let stopFlag = Atomic<Bool>(false)
    private let stoppedFlag = Atomic<Bool>(false)

    init(server: Server, logger: Logger) {
        self.server = server
        self.logger = logger
        self.watchdogInterval = Systemd.watchdogMicroseconds().map { max(1000, $0 / 2) }
    }

    /// Starts the thread.
    func start() {
        if let w = watchdogInterval {
            logger.info("systemd watchdog on: pinging every \(Double(w) / 1e6) s while every loop turns")
        }
        let box = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(
            &thread, nil,
            { raw in
                let notifier = Unmanaged<ServiceNotifier>.fromOpaque(raw!).takeRetainedValue()
                notifier.run()
                return nil
            }, box)
        if rc != 0 {
            Unmanaged<ServiceNotifier>.fromOpaque(box).release()
            logger.error("cannot start the sd_notify thread: errno \(rc); no watchdog pings")
            return
        }
        pthread_detach(thread)
    }

    /// Stops the thread (the last message it sent stays the service's status).
    func stop() {
        stopFlag.store(true, ordering: .releasing)
        for _ in 0..<100 where !stoppedFlag.load(ordering: .acquiring) { usleep(10_000) }
    }

    private func run() {
        defer { stoppedFlag.store(true, ordering: .releasing) }
        var lastBeats = server.loopHeartbeats
        let start = Systemd.monotonicMicroseconds()
        var nextPing = start + (watchdogInterval ?? UInt64.max / 2)
        var nextStatus = start
        var stalledReported = false
        while !stopFlag.load(ordering: .acquiring) {
            let now = Systemd.monotonicMicroseconds()
            var message = ""
            if let interval = watchdogInterval, now >= nextPing {
                nextPing = now + interval
                let beats = server.loopHeartbeats
                let stuck = zip(beats, lastBeats).enumerated().filter { $0.element.0 == $0.element.1 }.map(\.offset)
                lastBeats = beats
                if stuck.isEmpty {
                    message += "WATCHDOG=1\n"
                    stalledReported = false
                } else if !stalledReported {
                    stalledReported = true
                    logger.critical("event loop(s) \(stuck) stopped turning: withholding watchdog pings")
                }
            }
            if now >= nextStatus {
                nextStatus = now + statusInterval
                message += "STATUS=\(server.statusLine)\n"
            }
            if !message.isEmpty { Systemd.notify(message) }
            let wake = min(nextPing, nextStatus)
            let now2 = Systemd.monotonicMicroseconds()
            usleep(UInt32(min(100_000, wake > now2 ? wake - now2 : 0)))
        }
    }
}
