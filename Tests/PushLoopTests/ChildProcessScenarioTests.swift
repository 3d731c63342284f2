import CPushShim
import Foundation
import Synchronization
import Testing

@testable import PushLoop

#if canImport(Glibc)
import Glibc
#endif

/// Scenarios that need the whole process to themselves — a lowered RLIMIT_NOFILE, an exact count
/// of open descriptors — run in a child process (this test binary, filtered to one helper test),
/// and the parent checks what it reports. In a normal run the helpers do nothing.
@Suite("Process-wide scenarios (child process)")
struct ChildProcessScenarioTests {
    static let childVariable = "PUSHD_LOOP_CHILD"
    static let marker = "PUSHD-LOOP-CHILD-RESULT"

    @Test("accept backs off on EMFILE without spinning and resumes when descriptors are free",
          arguments: LoopBackendKind.allCases)
    func acceptBackoff(kind: LoopBackendKind) throws {
        try runChild(helper: "acceptBackoffChild", scenario: "emfile", kind: kind)
    }

    @Test("a loop's lifecycle leaks no file descriptor", arguments: LoopBackendKind.allCases)
    func noDescriptorLeak(kind: LoopBackendKind) throws {
        try runChild(helper: "descriptorLeakChild", scenario: "fdleak", kind: kind)
    }

    private func runChild(helper: String, scenario: String, kind: LoopBackendKind) throws {
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let log = FileManager.default.temporaryDirectory
            .appendingPathComponent("pushd-loop-\(scenario)-\(getpid())-\(kind.rawValue).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let output = try FileHandle(forWritingTo: log)
        let child = Process()
        child.executableURL = URL(fileURLWithPath: executable)
        child.arguments = ["--testing-library", "swift-testing", "--filter", helper]
        var environment = ProcessInfo.processInfo.environment
        environment[Self.childVariable] = "\(scenario):\(kind.rawValue)"
        child.environment = environment
        child.standardOutput = output
        child.standardError = output
        try child.run()
        let exited = waitUntil(30) { !child.isRunning }
        if !exited { child.terminate() }
        child.waitUntilExit()
        try? output.close()
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(exited, "child did not finish")
        #expect(child.terminationStatus == 0, "child failed:\n\(text)")
        #expect(text.contains("\(Self.marker) ran \(scenario)"), "child did not report:\n\(text)")
    }

    /// The backend to test when this process is the child for `scenario`.
    private static func childKind(_ scenario: String) -> LoopBackendKind? {
        guard let value = ProcessInfo.processInfo.environment[childVariable],
            value.hasPrefix(scenario + ":")
        else { return nil }
        return LoopBackendKind(rawValue: String(value.dropFirst(scenario.count + 1)))
    }

    private static func openDescriptors() -> Set<Int> {
        Set(((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap { Int($0) })
    }

    /// Runs only in the child.
    @Test("helper: the descriptor-leak scenario (runs only in the child process)")
    func descriptorLeakChild() throws {
        guard let kind = Self.childKind("fdleak") else { return }
        usleep(50_000)
        let before = Self.openDescriptors()
        do {
            let harness = try LoopHarness(kind.choice, echo: false)
            var clients: [Int32] = []
            for _ in 0..<20 { clients.append(try connectClient(port: harness.port, receiveBuffer: 8 * 1024)) }
            #expect(waitUntil { harness.snapshot().accepted.count == 20 })
            let ids = harness.snapshot().accepted
            let payload = [UInt8](repeating: 1, count: 512 * 1024)
            harness.run { handler in for id in ids { handler.enqueue(id, payload) } }
            #expect(waitUntil { harness.snapshot().sendResults.count == 20 })
            harness.run { handler in for id in ids.prefix(10) { handler.close(id) } }
            #expect(waitUntil { harness.snapshot().closed.count == 10 })
            harness.stop()  // 10 connections still open, sends in flight
            for fd in clients { Glibc.close(fd) }
        }
        usleep(50_000)
        let after = Self.openDescriptors()
        #expect(after == before, "leaked descriptors: \(after.subtracting(before).sorted())")
        print("\(Self.marker) ran fdleak kind=\(kind) before=\(before.count) after=\(after.count)")
    }

    /// Runs only in the child (does nothing in a normal run).
    @Test("helper: the EMFILE scenario (runs only in the child process)")
    func acceptBackoffChild() throws {
        guard let kind = Self.childKind("emfile") else { return }
        var options = LoopOptions()
        options.acceptBackoffMilliseconds = 50
        options.tickMilliseconds = 1000
        let harness = try LoopHarness(kind.choice, options: options, echo: true)
        defer { harness.stop() }

        let count = 6
        var clients: [Int32] = []
        for _ in 0..<count { clients.append(socket(AF_INET, pushd_sock_stream() | pushd_sock_cloexec(), 0)) }
        defer { for fd in clients { Glibc.close(fd) } }
        let open = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").compactMap { Int($0) }
        let highest = try #require(open.max())

        var saved = rlimit()
        getrlimit(RLIMIT_NOFILE_VALUE, &saved)
        var low = saved
        low.rlim_cur = rlim_t(highest + 1)  // no descriptor can be created from now on
        #expect(setrlimit(RLIMIT_NOFILE_VALUE, &low) == 0)
        // New descriptors take the lowest free number: fill the holes below the limit too.
        var fillers: [Int32] = []
        while true {
            let fd = Glibc.open("/dev/null", O_RDONLY | O_CLOEXEC)
            if fd < 0 { break }
            fillers.append(fd)
        }
        #expect(errno == EMFILE)
        defer { for fd in fillers { Glibc.close(fd) } }
        // io_uring reads the limit when an accept is prepared: start a fresh accept under the new one.
        let readded = Atomic<Bool>(false)
        harness.run { handler in
            handler.loop.stopAccepting()
            readded.store(true, ordering: .releasing)
        }
        #expect(waitUntil { readded.load(ordering: .acquiring) })
        harness.run { handler in _ = handler.loop.addListener(fd: handler.listenerFD) }

        for fd in clients {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = harness.port.bigEndian
            address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            #expect(result == 0, "connect: errno \(errno)")
        }
        let before = harness.snapshot()
        usleep(400_000)
        let during = harness.snapshot()
        let iterations = during.iterations - before.iterations
        #expect(during.accepted.isEmpty, "accepted \(during.accepted.count) under EMFILE")
        #expect(iterations < 200, "\(iterations) iterations in 400 ms: the loop spins on EMFILE")
        // The handler hears of each pause: EMFILE, about one per 50 ms back-off period.
        let pauses = during.acceptPauses.count - before.acceptPauses.count
        #expect(pauses >= 1 && pauses <= 12, "\(pauses) accept pauses reported in 400 ms")
        #expect(during.acceptPauses.allSatisfy { $0 == EMFILE }, "\(during.acceptPauses)")

        #expect(setrlimit(RLIMIT_NOFILE_VALUE, &saved) == 0)
        for fd in fillers { Glibc.close(fd) }
        fillers.removeAll()
        #expect(waitUntil(3) { harness.snapshot().accepted.count == count })
        let message = Array("after back-off".utf8)
        try writeAll(clients[0], message)
        #expect(readExactly(clients[0], message.count) == message)
        print("\(Self.marker) ran emfile kind=\(kind) iterations=\(iterations)")
    }
}

/// RLIMIT_NOFILE as the Int32 setrlimit(2) takes (Glibc imports it as an enum case).
let RLIMIT_NOFILE_VALUE = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
