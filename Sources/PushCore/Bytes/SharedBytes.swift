#if canImport(Glibc)
import Glibc
#endif

/// Immutable bytes in stable, manually allocated memory, shared by reference between threads.
///
/// Encoded events and prepared responses live here because their address is handed to the kernel
/// (an io_uring send reads it asynchronously), so it must not move while a send is in flight — a
/// guarantee Swift arrays do not give. The memory is written once by `init` and never again,
/// which is what makes the type safe to share (`@unchecked Sendable`).
public final class SharedBytes: @unchecked Sendable {
    /// Start of the bytes; valid for the object's lifetime.
    public let base: UnsafeRawPointer
    /// Length in bytes.
    public let count: Int

    /// Copies `bytes` into new storage.
    public init(_ bytes: some Collection<UInt8>) {
        let n = bytes.count
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(n, 1), alignment: 16)
        let buffer = UnsafeMutableRawBufferPointer(start: p, count: n)
        buffer.copyBytes(from: bytes)
        self.base = UnsafeRawPointer(p)
        self.count = n
    }

    /// Allocates `count` bytes and lets `fill` write them before the object is shared.
    public init(count: Int, fill: (UnsafeMutableRawBufferPointer) -> Void) {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 16)
        fill(UnsafeMutableRawBufferPointer(start: p, count: count))
        self.base = UnsafeRawPointer(p)
        self.count = count
    }

    /// Copies the UTF-8 of `string`.
    public convenience init(string: String) {
        self.init(Array(string.utf8))
    }

    deinit { UnsafeMutableRawPointer(mutating: base).deallocate() }

    /// The bytes as a buffer pointer (valid while `self` is alive).
    public var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// A copy as an array (tests, logging).
    public var array: [UInt8] { Array(buffer) }
}
