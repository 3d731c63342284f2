import CPushShim
#if canImport(Glibc)
import Glibc
#endif

/// Creates the listening TCP sockets a loop accepts on (`EventLoop.addListener(fd:)`).
///
/// Each loop opens its own socket on the same address with `SO_REUSEPORT`, so the kernel spreads
/// incoming connections over the loops without a shared accept queue (socket(7), "SO_REUSEPORT").
public enum ListeningSocket {
    /// Opens a bound, listening, non-blocking, close-on-exec TCP socket.
    ///
    /// - Parameters:
    ///   - host: a numeric IPv4 address (`127.0.0.1`, `0.0.0.0`), a numeric IPv6 address (`::1`, `::`;
    ///     brackets are accepted), or `localhost` (taken as `127.0.0.1`). No DNS lookup is made.
    ///   - port: TCP port; 0 asks the kernel for a free one (learn it with `localPort(of:)`). With
    ///     `reusePort` and port 0, open the first loop's socket with 0 and the others with the port
    ///     the first one got: each port-0 bind would otherwise get a different port.
    ///   - backlog: the accept queue length passed to listen(2) (capped by `net.core.somaxconn`).
    ///   - reusePort: sets `SO_REUSEPORT` so several loops can bind the same address and port.
    /// - Returns: the file descriptor; the caller owns it and closes it (after `stopAccepting`).
    /// - Throws: `LoopError.system(call:errno:)` naming the failed call (`inet_pton` with EINVAL for a
    ///   host that is not a numeric address, `bind` with EADDRINUSE, …).
    ///
    /// `SO_REUSEADDR` is always set; IPv6 sockets are `IPV6_V6ONLY` (listen on `0.0.0.0` and `::`
    /// separately for both families). Follows socket(2), bind(2), listen(2), ipv6(7).
    public static func open(
        host: String, port: UInt16, backlog: Int32 = 4096, reusePort: Bool = true
    ) throws -> Int32 {
        var name = host
        if name.hasPrefix("["), name.hasSuffix("]") { name = String(name.dropFirst().dropLast()) }
        if name == "localhost" { name = "127.0.0.1" }

        var v4 = sockaddr_in()
        var v6 = sockaddr_in6()
        let family: Int32
        if inet_pton(AF_INET, name, &v4.sin_addr) == 1 {
            family = AF_INET
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = port.bigEndian
        } else if inet_pton(AF_INET6, name, &v6.sin6_addr) == 1 {
            family = AF_INET6
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = port.bigEndian
        } else {
            throw LoopError.system(call: "inet_pton(\(host))", errno: EINVAL)
        }

        let fd = socket(family, pushd_sock_stream() | pushd_sock_nonblock() | pushd_sock_cloexec(), 0)
        guard fd >= 0 else { throw LoopError.system(call: "socket", errno: errno) }
        func fail(_ call: String) -> LoopError {
            let error = LoopError.system(call: call, errno: errno)
            _ = Glibc.close(fd)
            return error
        }
        guard setIntOption(fd, SOL_SOCKET, SO_REUSEADDR, 1) else { throw fail("setsockopt(SO_REUSEADDR)") }
        if reusePort {
            guard setIntOption(fd, SOL_SOCKET, SO_REUSEPORT, 1) else { throw fail("setsockopt(SO_REUSEPORT)") }
        }
        let bound: Int32
        if family == AF_INET6 {
            guard setIntOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 1) else {
                throw fail("setsockopt(IPV6_V6ONLY)")
            }
            bound = withUnsafePointer(to: &v6) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        } else {
            bound = withUnsafePointer(to: &v4) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        guard bound == 0 else { throw fail("bind(\(PeerAddress(host: name, port: port)))") }
        guard listen(fd, backlog) == 0 else { throw fail("listen") }
        return fd
    }

    /// The local port `fd` is bound to (getsockname(2)), or nil when `fd` is not a bound IPv4/IPv6
    /// socket. Use it to learn the port the kernel chose for a port-0 bind.
    public static func localPort(of fd: Int32) -> UInt16? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard result == 0 else { return nil }
        return SocketAddress.peer(from: &storage)?.port
    }

    static func setIntOption(_ fd: Int32, _ level: Int32, _ option: Int32, _ value: Int32) -> Bool {
        var value = value
        return setsockopt(fd, level, option, &value, socklen_t(MemoryLayout<Int32>.size)) == 0
    }
}

/// Small socket helpers shared by both backends (not on the per-byte hot path).
enum SocketAddress {
    /// Converts an IPv4/IPv6 `sockaddr_storage` to a numeric `PeerAddress` (inet_ntop(3)).
    static func peer(from storage: inout sockaddr_storage) -> PeerAddress? {
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    var address = sin.pointee.sin_addr
                    let host = withUnsafePointer(to: &address) {
                        numericHost(AF_INET, UnsafeRawPointer($0), socklen_t(INET_ADDRSTRLEN))
                    }
                    return PeerAddress(
                        host: host,
                        port: UInt16(bigEndian: sin.pointee.sin_port))
                }
            }
        case AF_INET6:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                    var address = sin6.pointee.sin6_addr
                    let host = withUnsafePointer(to: &address) {
                        numericHost(AF_INET6, UnsafeRawPointer($0), socklen_t(INET6_ADDRSTRLEN))
                    }
                    return PeerAddress(
                        host: host,
                        port: UInt16(bigEndian: sin6.pointee.sin6_port))
                }
            }
        default:
            return nil
        }
    }

    /// The peer of a connected socket (getpeername(2)); `0.0.0.0:0` when it cannot be had (the
    /// peer may already have reset the connection).
    static func peer(of fd: Int32) -> PeerAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        guard result == 0, let peer = peer(from: &storage) else { return PeerAddress(host: "0.0.0.0", port: 0) }
        return peer
    }

    /// Sets TCP_NODELAY (tcp(7)): pushd writes whole messages and must not wait for Nagle.
    static func setNoDelay(_ fd: Int32) {
        _ = ListeningSocket.setIntOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
    }

    private static func numericHost(_ family: Int32, _ address: UnsafeRawPointer, _ size: socklen_t) -> String {
        var text = [CChar](repeating: 0, count: Int(size) + 1)
        guard inet_ntop(family, address, &text, size) != nil else { return "?" }
        return text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}

/// Thread and clock helpers shared by both backends.
enum LoopSupport {
    /// CLOCK_MONOTONIC in nanoseconds (clock_gettime(2)).
    @inline(__always)
    static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// Names the calling thread (pthread_setname_np(3) keeps at most 15 bytes; longer names are cut).
    static func setThreadName(_ name: String) {
        var bytes = Array(name.utf8.prefix(15)).map { CChar(bitPattern: $0) }
        bytes.append(0)
        bytes.withUnsafeBufferPointer { pushd_set_thread_name($0.baseAddress) }
    }
}
