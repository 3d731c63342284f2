// Thin system helpers for pushd-bench: clocks, sockets, /proc readers, fd I/O.
// Everything here is Glibc (plus epoll from CPushShim); no Foundation.
import CPushShim
import Glibc

/// `IP_BIND_ADDRESS_NO_PORT` (linux/in.h): bind(2) picks the source address only; the port is
/// chosen at connect(2) time from the whole 4-tuple, so one source address serves many servers.
let ipBindAddressNoPort: Int32 = 24

/// CLOCK_MONOTONIC in nanoseconds. The same clock in every process on the host, so a timestamp
/// written by the publisher can be compared with a receive time taken in a worker process.
@inline(__always)
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Sleeps for `ns` nanoseconds (restarts after EINTR).
func sleepNanos(_ ns: UInt64) {
    var req = timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
    var rem = timespec()
    while nanosleep(&req, &rem) != 0 && errno == EINTR { req = rem }
}

/// The text of `errno` value `code`.
func errnoText(_ code: Int32) -> String { String(cString: strerror(code)) }

/// Writes a message to stderr, prefixed with the program name.
func warn(_ message: String) {
    let line = "pushd-bench: " + message + "\n"
    writeAll(2, Array(line.utf8))
}

/// Writes all of `bytes` to a blocking fd (retries short writes and EINTR). Returns false on error.
@discardableResult
func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var off = 0
    while off < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
        if n < 0 {
            if errno == EINTR { continue }
            return false
        }
        off += n
    }
    return true
}

/// Puts `fd` into non-blocking mode.
func setNonBlocking(_ fd: Int32) {
    let flags = fcntl(fd, F_GETFL)
    _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
}

/// Parses a dotted IPv4 literal into a network-order `in_addr`.
func parseIPv4(_ text: String) -> in_addr? {
    var addr = in_addr()
    let ok = text.withCString { inet_pton(AF_INET, $0, &addr) }
    return ok == 1 ? addr : nil
}

/// Formats a network-order IPv4 address.
func formatIPv4(_ addr: in_addr) -> String {
    let a = UInt32(bigEndian: addr.s_addr)
    return "\(a >> 24).\((a >> 16) & 255).\((a >> 8) & 255).\(a & 255)"
}

/// A `sockaddr_in` for `addr:port`.
func socketAddress(_ addr: in_addr, _ port: UInt16) -> sockaddr_in {
    var sa = sockaddr_in()
    sa.sin_family = sa_family_t(AF_INET)
    sa.sin_port = port.bigEndian
    sa.sin_addr = addr
    return sa
}

/// Creates a non-blocking TCP socket, optionally binds it to `source` (port chosen at connect time)
/// and starts a connect to `destination`. Returns the fd, or `-errno` on failure.
func startConnect(destination: sockaddr_in, source: in_addr?, noDelay: Bool) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    if fd < 0 { return -errno }
    if noDelay {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }
    if let source {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_IP), ipBindAddressNoPort, &one, socklen_t(MemoryLayout<Int32>.size))
        var sa = socketAddress(source, 0)
        let rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 {
            let code = errno
            close(fd)
            return -code
        }
    }
    var dst = destination
    let rc = withUnsafePointer(to: &dst) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    if rc != 0 && errno != EINPROGRESS {
        let code = errno
        close(fd)
        return -code
    }
    return fd
}

/// The pending error of a socket (SO_ERROR), 0 when the connect succeeded.
func socketError(_ fd: Int32) -> Int32 {
    var err: Int32 = 0
    var len = socklen_t(MemoryLayout<Int32>.size)
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
    return err
}

/// epoll_ctl with a 64-bit token in `data.u64`.
@discardableResult
func epollControl(_ epfd: Int32, _ op: Int32, _ fd: Int32, _ events: UInt32, _ token: UInt64) -> Int32 {
    var ev = epoll_event()
    ev.events = events
    ev.data.u64 = token
    return epoll_ctl(epfd, op, fd, &ev)
}

/// Reads a whole small file (e.g. under /proc) into bytes; nil if it cannot be opened.
func readSmallFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, 4096) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        out.append(contentsOf: chunk[0..<n])
    }
    return out
}

/// Resident set size of `pid` in KiB (VmRSS in /proc/PID/status), nil if unreadable.
func processRSSKiB(_ pid: Int32) -> Int? {
    guard let bytes = readSmallFile("/proc/\(pid)/status") else { return nil }
    let text = String(decoding: bytes, as: UTF8.self)
    for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        let digits = line.dropFirst(6).filter { $0.isNumber }
        return Int(digits)
    }
    return nil
}

/// User + system CPU seconds of `pid` (all its threads) from /proc/PID/stat fields 14 and 15.
func processCPUSeconds(_ pid: Int32) -> Double? {
    guard let bytes = readSmallFile("/proc/\(pid)/stat") else { return nil }
    // The command name (field 2) may contain spaces: fields are counted after the last ')'.
    guard let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
    let rest = String(decoding: bytes[(close + 1)...], as: UTF8.self).split(separator: " ")
    // rest[0] is field 3 (state); utime is field 14 -> rest[11], stime field 15 -> rest[12].
    guard rest.count > 12, let utime = Double(rest[11]), let stime = Double(rest[12]) else { return nil }
    return (utime + stime) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// CPU seconds this process and its reaped children used (getrusage).
func ownCPUSeconds(children: Bool) -> Double {
    var ru = rusage()
    getrusage(children ? RUSAGE_CHILDREN.rawValue : RUSAGE_SELF.rawValue, &ru)
    let user = Double(ru.ru_utime.tv_sec) + Double(ru.ru_utime.tv_usec) / 1e6
    let system = Double(ru.ru_stime.tv_sec) + Double(ru.ru_stime.tv_usec) / 1e6
    return user + system
}

/// Busy and total jiffies of the whole host (first line of /proc/stat).
func hostCPUJiffies() -> (busy: UInt64, total: UInt64)? {
    guard let bytes = readSmallFile("/proc/stat") else { return nil }
    let text = String(decoding: bytes.prefix(while: { $0 != UInt8(ascii: "\n") }), as: UTF8.self)
    let fields = text.split(separator: " ").dropFirst().compactMap { UInt64($0) }
    guard fields.count >= 4 else { return nil }
    let total = fields.reduce(0, +)
    let idle = fields[3] + (fields.count > 4 ? fields[4] : 0)
    return (total - idle, total)
}

/// The 1-minute load average.
func loadAverage1() -> Double {
    guard let bytes = readSmallFile("/proc/loadavg") else { return 0 }
    return Double(String(decoding: bytes, as: UTF8.self).split(separator: " ").first ?? "0") ?? 0
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit.
@discardableResult
func raiseFileLimit() -> Int {
    var rl = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl)
    rl.rlim_cur = rl.rlim_max
    setrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl)
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl)
    return Int(rl.rlim_cur)
}

/// The hard RLIMIT_NOFILE.
func hardFileLimit() -> Int {
    var rl = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl)
    return Int(rl.rlim_max)
}

/// The absolute path of the running executable (/proc/self/exe).
func selfExecutablePath() -> String {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buf, 4095)
    if n <= 0 { return CommandLine.arguments[0] }
    return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Finds `needle` in `hay[from..<hay.count]`; returns the start index.
func findBytes(_ hay: UnsafeRawBufferPointer, _ needle: [UInt8], from: Int = 0) -> Int? {
    if needle.isEmpty || hay.count - from < needle.count { return nil }
    let first = needle[0]
    var i = from
    let last = hay.count - needle.count
    while i <= last {
        if hay[i] == first {
            var j = 1
            while j < needle.count && hay[i + j] == needle[j] { j += 1 }
            if j == needle.count { return i }
        }
        i += 1
    }
    return nil
}

/// Lowercases ASCII letters of a header block so header names can be matched.
func asciiLowercased(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
    bytes.map { ($0 >= 65 && $0 <= 90) ? $0 + 32 : $0 }
}

/// Parses the status code of an HTTP/1.x status line at the start of `head`.
func httpStatus(_ head: UnsafeRawBufferPointer) -> Int {
    // "HTTP/1.1 200 ..."
    guard head.count >= 12, head[0] == UInt8(ascii: "H"), head[8] == UInt8(ascii: " ") else { return -1 }
    var code = 0
    for k in 9..<12 {
        let d = head[k]
        guard d >= 48 && d <= 57 else { return -1 }
        code = code * 10 + Int(d - 48)
    }
    return code
}

/// Expands `{topic}` and `{i}` in a path template.
func expandPath(_ template: String, topic: String, index: Int) -> String {
    var out = template.replacing("{topic}", with: topic)
    out = out.replacing("{i}", with: String(index))
    return out
}
