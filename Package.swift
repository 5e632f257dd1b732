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
        .library(name: "SynodCore", targets: ["SynodCore"]),
        .library(name: "SynodLMDB", targets: ["SynodLMDB"]),
        .library(name: "SynodRaft", targets: ["SynodRaft"]),
        .library(name: "SynodSimulation", targets: ["SynodSimulation"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
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
        // Deterministic cluster simulator and checkers.
        .target(name: "SynodSimulation", dependencies: ["SynodCore", "SynodRaft"]),
        .executableTarget(
            name: "synod",
            dependencies: [
                "SynodCore", "SynodLMDB", "SynodSimulation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Storage micro-benchmark (not a test): log append and range-read rates beside raw LMDB.
        .executableTarget(
            name: "LMDBBench",
            dependencies: ["SynodCore", "SynodLMDB", "CLMDB"],
            path: "bench/LMDBBench"
        ),
        .testTarget(name: "SynodCoreTests", dependencies: ["SynodCore"]),
        .testTarget(name: "SynodLMDBTests", dependencies: ["SynodCore", "SynodLMDB", "CLMDB", "synod"]),
        .testTarget(name: "SynodRaftTests", dependencies: ["SynodCore", "SynodRaft"]),
        .testTarget(name: "SynodSimulationTests", dependencies: ["SynodCore", "SynodRaft", "SynodSimulation"]),
    ],
    swiftLanguageModes: [.v6]
)
