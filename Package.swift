// swift-tools-version:6.2
// pushd — a pub/sub push daemon (SSE + WebSocket) for Linux.
// Layering (see docs/ARCHITECTURE.md): pushd -> PushServer -> {PushCore, PushLoop}; PushLoop -> C shims.
import PackageDescription

let package = Package(
    name: "pushd",
    products: [
        .executable(name: "pushd", targets: ["pushd"]),
        .executable(name: "pushd-bench", targets: ["pushd-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.0.0", traits: ["YAML", "CommandLineArguments"]),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // System libraries, found with pkg-config (Debian -dev packages named in `providers`).
        .systemLibrary(
            name: "CLibURing", path: "Sources/CLibURing",
            pkgConfig: "liburing", providers: [.apt(["liburing-dev"])]),
        .systemLibrary(
            name: "CSystemd", path: "Sources/CSystemd",
            pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .systemLibrary(
            name: "COpenSSL", path: "Sources/COpenSSL",
            pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(
            name: "CZlib", path: "Sources/CZlib",
            pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // The one C shim: what Swift cannot import (macros, _GNU_SOURCE-only functions, epoll/eventfd).
        .target(name: "CPushShim", dependencies: ["CLibURing"]),

        // Pure Swift, no I/O: HTTP/1.1 parser, SSE encoder, event ids, topics, Broker, stream logs.
        .target(
            name: "PushCore",
            dependencies: ["CZlib", .product(name: "DequeModule", package: "swift-collections")]),
        // Event loops: io_uring and epoll backends behind one protocol. Knows bytes and fds only.
        .target(name: "PushLoop", dependencies: ["CPushShim", "CLibURing"]),
        // Endpoints: routes HTTP requests, owns listeners, loops and per-loop fan-out.
        .target(
            name: "PushServer",
            dependencies: [
                "PushCore", "PushLoop", "CPushShim", "COpenSSL",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        // Loads ServerConfiguration from config/pushd.yaml, PUSHD_* environment variables and flags.
        .target(
            name: "PushConfig",
            dependencies: [
                "PushServer", "PushCore", "PushLoop",
                .product(name: "Configuration", package: "swift-configuration"),
            ]),
        // The daemon: CLI, signals, sd_notify — wires PushConfig to PushServer.
        .executableTarget(
            name: "pushd",
            dependencies: [
                "PushServer", "PushConfig", "PushCore", "PushLoop", "CSystemd", "CPushShim",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // The fan-out benchmark client (issue #7): raw epoll, forks/execs itself into worker processes.
        .executableTarget(
            name: "pushd-bench",
            dependencies: [
                "CPushShim",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        .testTarget(name: "PushCoreTests", dependencies: ["PushCore"]),
        .testTarget(name: "PushLoopTests", dependencies: ["PushLoop", "CPushShim"]),
        .testTarget(name: "PushConfigTests", dependencies: ["PushConfig", "PushServer"]),
    ],
    swiftLanguageModes: [.v6]
)
