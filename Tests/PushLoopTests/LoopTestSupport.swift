import CPushShim
import Foundation
import Synchronization
import Testing

@testable import PushLoop

#if canImport(Glibc)
import Glibc
#endif

/// What the loop thread observed, read by the test thread under a lock.
struct LoopRecord: Sendable {
    var accepted: [ConnectionID] = []
    var peers: [ConnectionID: PeerAddress] = [:]
    var receivedBytes: [ConnectionID: Int] = [:]
    var receiveEnded: [ConnectionID: Int32] = [:]
    var closed: [ConnectionID] = []
    var sendResults: [ConnectionID: [Int]] = [:]
    var violations: [String] = []
    var woken = 0
    var ticks: [UInt64] = []
    var iterations = 0
    var connectionCount = 0
    /// The errno of each `acceptPaused` call, in order.
    var acceptPauses: [Int32] = []
}

typealias LoopCommand = @Sendable (RecordingHandler) -> Void

/// State shared by the test thread and the loop thread, each part under its own lock.
final class SharedLoopState: Sendable {
    let record = Mutex(LoopRecord())
    let inbox = Mutex<[LoopCommand]>([])
    let started = Mutex<(port: UInt16, waker: LoopWaker, kind: LoopBackendKind)?>(nil)
    let failure = Mutex<String?>(nil)
    let finished = Atomic<Bool>(false)
}

/// A loop running on its own thread with one listener on 127.0.0.1, port chosen by the kernel.
final class LoopHarness: Sendable {
    let shared = SharedLoopState()
    let port: UInt16
    let waker: LoopWaker
    let kind: LoopBackendKind

    /// Starts the loop thread and waits until it listens.
    init(
        _ choice: LoopBackendChoice, options: LoopOptions = LoopOptions(),
        echo: Bool = true, closeOnReceiveEnd: Bool = false, host: String = "127.0.0.1", port: UInt16 = 0
    ) throws {
        let shared = self.shared
        let thread = Thread {
            defer { shared.finished.store(true, ordering: .releasing) }
            do {
                var loop: (any EventLoop)? = try makeEventLoop(choice, options: options)
                let listener = try ListeningSocket.open(host: host, port: port)
                defer { _ = Glibc.close(listener) }
                let handler = RecordingHandler(
                    loop: loop!, shared: shared, echo: echo, closeOnReceiveEnd: closeOnReceiveEnd)
                handler.listenerFD = listener
                loop!.handler = handler
                _ = loop!.addListener(fd: listener)
                shared.started.withLock {
                    $0 = (ListeningSocket.localPort(of: listener) ?? 0, loop!.waker, loop!.kind)
                }
                try loop!.run()
                // Release the loop (its sockets and in-flight operations) before the handler frees
                // the memory of sends still outstanding: the order the contract asks of a server.
                loop = nil
                withExtendedLifetime(handler) {}
            } catch {
                shared.failure.withLock { $0 = "\(error)" }
            }
        }
        thread.start()
        waitUntil { shared.started.withLock { $0 != nil } || shared.failure.withLock { $0 != nil } }
        guard let info = shared.started.withLock({ $0 }) else {
            throw HarnessError.startFailed(shared.failure.withLock { $0 } ?? "timeout")
        }
        self.port = info.port
        waker = info.waker
        kind = info.kind
    }

    /// Runs `command` on the loop thread (soon; delivered through `woken`).
    func run(_ command: @escaping LoopCommand) {
        shared.inbox.withLock { $0.append(command) }
        waker.wake()
    }

    /// Stops the loop and waits for its thread to end.
    func stop() {
        run { $0.loop.stop() }
        let shared = self.shared
        #expect(waitUntil { shared.finished.load(ordering: .acquiring) }, "loop thread did not end")
    }

    func snapshot() -> LoopRecord { shared.record.withLock { $0 } }

    enum HarnessError: Error { case startFailed(String) }
}

/// The test handler: echoes what it receives (copying it into its own send buffers, re-sending
/// after short sends) and records every callback, flagging any that breaks the contract.
final class RecordingHandler: LoopHandler {
    unowned let loop: any EventLoop
    private let shared: SharedLoopState
    private let echo: Bool
    private let closeOnReceiveEnd: Bool
    private var live: Set<ConnectionID> = []
    private var closeRequested: Set<ConnectionID> = []
    private var closedIDs: Set<ConnectionID> = []
    /// Chunks waiting to be sent, each with its own `send`, in order.
    private var queued: [ConnectionID: [[UInt8]]] = [:]
    /// When set, sends start only in `iterationWillEnd` (the server's coalescing point).
    var sendAtIterationEnd = false
    /// When > 0, each `iterationWillEnd` asks the loop to wake again this many ns later (`wakeBy`).
    var wakeEvery: UInt64 = 0
    /// The harness's listening socket (the loop does not own it).
    var listenerFD: Int32 = -1
    private var insideLoopCall = false
    private var inFlight: [ConnectionID: (buffer: UnsafeMutableRawBufferPointer, sent: Int)] = [:]

    init(
        loop: any EventLoop, shared: SharedLoopState, echo: Bool, closeOnReceiveEnd: Bool
    ) {
        self.loop = loop
        self.shared = shared
        self.echo = echo
        self.closeOnReceiveEnd = closeOnReceiveEnd
    }

    deinit {
        for (_, flight) in inFlight { flight.buffer.deallocate() }
    }

    private func note(_ id: ConnectionID, _ callback: String) {
        if insideLoopCall {
            shared.record.withLock { $0.violations.append("\(callback) for \(id) re-entrantly from send/close") }
        }
        if closedIDs.contains(id) || closeRequested.contains(id) || !live.contains(id) {
            shared.record.withLock { $0.violations.append("\(callback) for \(id) after close or before accept") }
        }
    }

    /// Queues `bytes` as one chunk for `id`; chunks go out one `send` each, in order.
    func enqueue(_ id: ConnectionID, _ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        queued[id, default: []].append(bytes)
        if !sendAtIterationEnd { pump(id) }
    }

    /// Closes `id` (recorded so later callbacks count as violations).
    func close(_ id: ConnectionID) {
        if live.contains(id) { closeRequested.insert(id) }
        insideLoopCall = true
        loop.close(id)
        insideLoopCall = false
    }

    private func pump(_ id: ConnectionID) {
        guard inFlight[id] == nil, var chunks = queued[id], !chunks.isEmpty else { return }
        let bytes = chunks.removeFirst()
        queued[id] = chunks.isEmpty ? nil : chunks
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
        buffer.copyBytes(from: bytes)
        inFlight[id] = (buffer, 0)
        startSend(id, UnsafeRawBufferPointer(buffer))
    }

    private func startSend(_ id: ConnectionID, _ bytes: UnsafeRawBufferPointer) {
        insideLoopCall = true
        loop.send(id, bytes)
        insideLoopCall = false
    }

    func accepted(_ id: ConnectionID, peer: PeerAddress, listener: Int) {
        if live.contains(id) { shared.record.withLock { $0.violations.append("accepted twice: \(id)") } }
        live.insert(id)
        let count = loop.connectionCount
        shared.record.withLock {
            $0.accepted.append(id)
            $0.peers[id] = peer
            $0.connectionCount = count
        }
    }

    func received(_ id: ConnectionID, _ bytes: UnsafeRawBufferPointer) {
        note(id, "received")
        shared.record.withLock { $0.receivedBytes[id, default: 0] += bytes.count }
        if echo { enqueue(id, Array(bytes)) }
    }

    func receiveEnded(_ id: ConnectionID, error: Int32) {
        note(id, "receiveEnded")
        shared.record.withLock { $0.receiveEnded[id] = error }
        if closeOnReceiveEnd { close(id) }
    }

    func sendCompleted(_ id: ConnectionID, result: Int) {
        note(id, "sendCompleted")
        shared.record.withLock { $0.sendResults[id, default: []].append(result) }
        guard let flight = inFlight[id] else {
            shared.record.withLock { $0.violations.append("sendCompleted without a send: \(id)") }
            return
        }
        if result <= 0 {
            flight.buffer.deallocate()
            inFlight[id] = nil
            return
        }
        let sent = flight.sent + result
        if sent < flight.buffer.count {
            inFlight[id] = (flight.buffer, sent)  // short send: the rest goes next
            startSend(id, UnsafeRawBufferPointer(rebasing: flight.buffer[sent...]))
        } else {
            flight.buffer.deallocate()
            inFlight[id] = nil
            pump(id)
        }
    }

    func closed(_ id: ConnectionID) {
        if closedIDs.contains(id) { shared.record.withLock { $0.violations.append("closed twice: \(id)") } }
        if !closeRequested.contains(id) {
            shared.record.withLock { $0.violations.append("closed without close: \(id)") }
        }
        closedIDs.insert(id)
        live.remove(id)
        if let flight = inFlight.removeValue(forKey: id) { flight.buffer.deallocate() }
        queued[id] = nil
        let count = loop.connectionCount
        shared.record.withLock {
            $0.closed.append(id)
            $0.connectionCount = count
        }
    }

    func woken() {
        let commands = shared.inbox.withLock { inbox in
            defer { inbox.removeAll() }
            return inbox
        }
        shared.record.withLock { $0.woken += 1 }
        for command in commands { command(self) }
    }

    func tick(now: UInt64) {
        shared.record.withLock { $0.ticks.append(now) }
    }

    func iterationWillEnd() {
        shared.record.withLock { $0.iterations += 1 }
        if wakeEvery > 0 { loop.wakeBy(LoopSupport.monotonicNanoseconds() + wakeEvery) }
        if sendAtIterationEnd {
            for id in Array(queued.keys) { pump(id) }
        }
    }

    func acceptPaused(listener: Int, error: Int32) {
        shared.record.withLock { $0.acceptPauses.append(error) }
    }
}

// MARK: Helpers

/// Polls `condition` every 2 ms until it holds or `seconds` pass.
@discardableResult
func waitUntil(_ seconds: Double = 5, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(2000)
    }
    return condition()
}

/// A blocking client socket connected to 127.0.0.1:`port` (or [::1]:`port`), with 5 s send/receive
/// timeouts.
func connectClient(port: UInt16, receiveBuffer: Int32? = nil, ipv6: Bool = false) throws -> Int32 {
    let fd = socket(ipv6 ? AF_INET6 : AF_INET, pushd_sock_stream() | pushd_sock_cloexec(), 0)
    guard fd >= 0 else { throw ClientError.failed("socket", errno) }
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    if var size = receiveBuffer {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }
    let result: Int32
    if ipv6 {
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_port = port.bigEndian
        address.sin6_addr = in6addr_loopback
        result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
            }
        }
    } else {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
    }
    var code: Int32 = result == 0 ? 0 : errno
    if code == EINTR {
        // A signal (the child processes' SIGCHLD) cut the blocking connect short; the kernel goes
        // on connecting, so wait until the socket is writable and read the outcome (connect(2)).
        var wanted = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        while poll(&wanted, 1, 5_000) < 0 && errno == EINTR {}
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length)
    }
    guard code == 0 else {
        Glibc.close(fd)
        throw ClientError.failed("connect", code)
    }
    return fd
}

enum ClientError: Error { case failed(String, Int32) }

/// Writes all of `bytes` (retries after EINTR: this process's child-process tests raise SIGCHLD).
func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { throw ClientError.failed("send", errno) }
        offset += n
    }
}

/// Reads exactly `count` bytes, or fewer when the peer closes or the 5 s timeout passes (EINTR retried).
func readExactly(_ fd: Int32, _ count: Int, chunk: Int = 65536, pause: useconds_t = 0) -> [UInt8] {
    var out = [UInt8]()
    out.reserveCapacity(count)
    var buffer = [UInt8](repeating: 0, count: chunk)
    while out.count < count {
        let want = min(chunk, count - out.count)
        let n = buffer.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, want, 0) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        out.append(contentsOf: buffer[0..<n])
        if pause > 0 { usleep(pause) }
    }
    return out
}

/// Reads until end of file or error; returns the bytes and the final recv result (0 = EOF, -1 = error).
func readToEnd(_ fd: Int32) -> (bytes: [UInt8], last: Int, errno: Int32) {
    var out = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return (out, n, n < 0 ? errno : 0) }
        out.append(contentsOf: buffer[0..<n])
    }
}

extension LoopBackendKind {
    var choice: LoopBackendChoice {
        switch self {
        case .ioUring: return .ioUring
        case .epoll: return .epoll
        }
    }
}
