import CPushShim
import Foundation
import Synchronization
import Testing

@testable import PushLoop

#if canImport(Glibc)
import Glibc
#endif

/// Accept back-off under EMFILE. RLIMIT_NOFILE is per process, so lowering it here would break
/// tests running in parallel: the scenario runs in a child process (this test binary, filtered to
/// `acceptBackoffChild`), and the parent checks what it reports.
@Suite("Accept back-off")
struct AcceptBackoffTests {
    static let childVariable = "PUSHD_LOOP_EMFILE_CHILD"
    static let marker = "EMFILE-CHILD-RESULT"

    @Test("accept backs off on EMFILE without spinning and resumes when descriptors are free",
          arguments: LoopBackendKind.allCases)
    func acceptBackoff(kind: LoopBackendKind) throws {
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let log = FileManager.default.temporaryDirectory
            .appendingPathComponent("pushd-loop-emfile-\(getpid())-\(kind.rawValue).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let output = try FileHandle(forWritingTo: log)
        let child = Process()
        child.executableURL = URL(fileURLWithPath: executable)
        child.arguments = ["--testing-library", "swift-testing", "--filter", "acceptBackoffChild"]
        var environment = ProcessInfo.processInfo.environment
        environment[Self.childVariable] = kind.rawValue
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
        #expect(text.contains("\(Self.marker) ran"), "child did not report:\n\(text)")
    }

    /// Runs only in the child (does nothing in a normal run).
    @Test("helper: the EMFILE scenario (runs only in the child process)")
    func acceptBackoffChild() throws {
        guard let name = ProcessInfo.processInfo.environment[Self.childVariable],
            let kind = LoopBackendKind(rawValue: name)
        else { return }
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
        let before = harness.snapshot().iterations
        usleep(400_000)
        let during = harness.snapshot()
        let iterations = during.iterations - before
        #expect(during.accepted.isEmpty, "accepted \(during.accepted.count) under EMFILE")
        #expect(iterations < 200, "\(iterations) iterations in 400 ms: the loop spins on EMFILE")

        #expect(setrlimit(RLIMIT_NOFILE_VALUE, &saved) == 0)
        for fd in fillers { Glibc.close(fd) }
        fillers.removeAll()
        #expect(waitUntil(3) { harness.snapshot().accepted.count == count })
        let message = Array("after back-off".utf8)
        try writeAll(clients[0], message)
        #expect(readExactly(clients[0], message.count) == message)
        print("\(Self.marker) ran kind=\(kind) iterations=\(iterations)")
    }
}

/// RLIMIT_NOFILE as the Int32 setrlimit(2) takes (Glibc imports it as an enum case).
let RLIMIT_NOFILE_VALUE = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
