// swift-tools-version: 6.1
// Synod — a replicated key-value and coordination store.
// Dependency direction (see docs/ARCHITECTURE.md): the pure cores (SynodCore, SynodRaft) never
// import LMDB, NIO or Foundation I/O; SynodLMDB and the executables sit on top of them.
import PackageDescription

let package = Package(
    name: "Synod",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "synod", targets: ["synod"]),
        .executable(name: "synod-lmdb-bench", targets: ["LMDBBench"]),
        .executable(name: "synod-bench", targets: ["SynodBench"]),
        .executable(name: "synod-micro-bench", targets: ["MicroBench"]),
        .executable(name: "synod-embedded-example", targets: ["EmbeddedExample"]),
        .library(name: "SynodCore", targets: ["SynodCore"]),
        .library(name: "SynodLMDB", targets: ["SynodLMDB"]),
        .library(name: "SynodRaft", targets: ["SynodRaft"]),
        .library(name: "SynodSimulation", targets: ["SynodSimulation"]),
        .library(name: "SynodPBFT", targets: ["SynodPBFT"]),
        .library(name: "SynodStateMachine", targets: ["SynodStateMachine"]),
        .library(name: "Synod", targets: ["Synod"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        // Reads a peer certificate's subject alternative names (peer identity, TLS.swift).
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
    ],
    targets: [
        // Shared vocabulary: typed IDs, entries, hard state, membership, quorum maths, seeded RNG,
        // binary encoding, storage protocols and their in-memory implementations. Pure.
        .target(name: "SynodCore"),
        // The system LMDB from Debian's liblmdb-dev.
        .systemLibrary(
            name: "CLMDB",
            pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"])]
        ),
        // Typed LMDB wrapper and the durable log / hard-state / checkpoint / state stores.
        .target(name: "SynodLMDB", dependencies: ["CLMDB", "SynodCore"]),
        // Pure Raft core.
        .target(name: "SynodRaft", dependencies: ["SynodCore"]),
        // Pure pBFT core; authentication behind a protocol.
        .target(name: "SynodPBFT", dependencies: ["SynodCore"]),
        // Real authenticators for pBFT (HMAC-SHA256, Ed25519) and auth passwords on swift-crypto.
        .target(name: "SynodCrypto", dependencies: ["SynodCore", "SynodPBFT", "SynodStateMachine", .product(name: "Crypto", package: "swift-crypto"),
                                                  // PBKDF2 for auth passwords (`Passwords.swift`).
                                                  .product(name: "CryptoExtras", package: "swift-crypto")]),
        // Deterministic state machine: KV with revisions, txns, leases, watches; mesh coordination.
        .target(name: "SynodStateMachine", dependencies: ["SynodCore"]),
        // Deterministic cluster simulator and checkers.
        .target(name: "SynodSimulation", dependencies: ["SynodCore", "SynodRaft", "SynodPBFT", "SynodCrypto", "SynodStateMachine"]),
        // Versioned binary encoding of peer and client messages.
        .target(name: "SynodWire", dependencies: [
            "SynodCore", "SynodRaft", "SynodStateMachine", .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"), // snapshot files' SHA-256
        ]),
        // NIO TCP peer links and client server.
        .target(name: "SynodTransport", dependencies: [
            "SynodCore", "SynodRaft", "SynodWire",
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"), .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"), .product(name: "X509", package: "swift-certificates"),
        ]),
        // The shell: event loop, persistence, apply, client sessions.
        .target(name: "SynodNode", dependencies: [
            "SynodCore", "SynodRaft", "SynodPBFT", "SynodCrypto", "SynodLMDB", "SynodStateMachine", "SynodWire", "SynodTransport",
            "SynodClient", // the leader's corruption check asks its peers as a client would (`synod hashkv`)
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"), .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
        // Client library: leader discovery, retries, sessions, watches.
        .target(name: "SynodClient", dependencies: [
            "SynodCore", "SynodWire", "SynodStateMachine", "SynodTransport", "SynodPBFT", "SynodCrypto",
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
        // The embedding API.
        .target(name: "Synod", dependencies: ["SynodNode", "SynodClient"]),
        .executableTarget(
            name: "synod",
            dependencies: [
                "SynodCore", "SynodLMDB", "SynodSimulation", "Synod", "SynodPBFT", "SynodCrypto",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"), .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // Storage micro-benchmark (not a test): log append and range-read rates beside raw LMDB.
        .executableTarget(
            name: "LMDBBench",
            dependencies: ["SynodCore", "SynodLMDB", "CLMDB"],
            path: "bench/LMDBBench"
        ),
        // Per-piece costs of a write (codecs, Raft cores, LMDB append, KV apply): not a test.
        .executableTarget(
            name: "MicroBench",
            dependencies: [
                "SynodCore", "SynodRaft", "SynodWire", "SynodLMDB", "SynodStateMachine",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "bench/MicroBench"
        ),
        // Cluster throughput benchmark (issue 6): starts or drives a cluster, HdrHistogram latencies.
        .executableTarget(
            name: "SynodBench",
            dependencies: [
                "SynodCore", "SynodClient", "SynodStateMachine", "SynodWire", "SynodTransport", "SynodPBFT", "SynodCrypto",
                .product(name: "Histogram", package: "hdrhistogram-swift"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"), .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "bench/SynodBench"
        ),
        // Runnable embedding example (README, "Embedding").
        .executableTarget(name: "EmbeddedExample", dependencies: ["Synod"], path: "Examples/Embedded"),
        // Helpers shared by the test targets that run real processes.
        .target(name: "SynodTestSupport", dependencies: ["SynodCore", "SynodTransport"], path: "Tests/SynodTestSupport"),
        .testTarget(name: "SynodCoreTests", dependencies: ["SynodCore", "SynodTestSupport"]),
        .testTarget(name: "SynodLMDBTests", dependencies: ["SynodCore", "SynodLMDB", "CLMDB", "synod", "SynodTestSupport"]),
        .testTarget(name: "SynodRaftTests", dependencies: ["SynodCore", "SynodRaft"]),
        .testTarget(name: "SynodSimulationTests", dependencies: ["SynodCore", "SynodRaft", "SynodSimulation"]),
        .testTarget(name: "SynodPBFTTests", dependencies: ["SynodCore", "SynodPBFT", "SynodCrypto"]),
        .testTarget(name: "SynodStateMachineTests", dependencies: ["SynodCore", "SynodStateMachine", "SynodLMDB", "SynodSimulation"]),
        .testTarget(name: "SynodWireTests", dependencies: ["SynodCore", "SynodRaft", "SynodWire", "SynodStateMachine", "SynodTestSupport", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(name: "SynodNodeTests", dependencies: ["SynodTestSupport", "synod", "SynodCore", "SynodWire", "SynodNode", "SynodClient", "Synod", "SynodSimulation", "SynodStateMachine", "SynodTransport", "SynodPBFT", "SynodCrypto", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")]),
    ],
    swiftLanguageModes: [.v6]
)
