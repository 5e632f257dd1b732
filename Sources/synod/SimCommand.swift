import ArgumentParser
import Foundation
import SynodSimulation

/// `synod sim`: runs the deterministic cluster simulator (docs/SIMULATOR.md).
struct SimCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim",
        abstract: "Run the deterministic cluster simulator and its checkers.",
        discussion: """
            Runs seeds 1...N (--seeds N) or one seed (--seed S). Each run has a safety phase with \
            faults (--steps ticks) and a liveness phase without faults; safety invariants are checked \
            after every step and the client history for linearizability at the end. Exits non-zero \
            on any violation and prints the command that replays it. In raft mode, --mesh-clients \
            clients propose mesh commands that every node applies with Synod's real state machine; \
            the mesh invariants are checked after each and the mesh records compared at the end. \
            --mode mesh runs random mesh proposals (with versioned proposals and hand deletes) \
            through the real state machine alone for --steps commands per seed, checks the mesh \
            invariants after each, and prints a digest that must be the same in every process \
            (docs/MESH.md).
            """)

    @Option(help: "Consensus mode: raft or bft; or mesh (mesh decisions alone).")
    var mode: String = "raft"

    @Option(help: "Cluster size, 3 through 7.")
    var nodes: Int = 5

    @Option(help: "Run seeds 1 through N (default 100 when neither --seeds nor --seed is given).")
    var seeds: Int?

    @Option(help: "Run this one seed and print its digest.")
    var seed: UInt64?

    @Option(help: "Ticks of the safety phase of each run (1 through 100000).")
    var steps: Int = 400

    @Option(help: "Concurrent clients (1 through 16).")
    var clients: Int = 3

    @Option(help: "Clients proposing mesh commands, beside --clients KV clients (0 through 8; default 1).")
    var meshClients: Int?

    @Option(help: "BFT mode: Byzantine replicas, 0 through f = (nodes-1)/3 (default f).")
    var byzantine: Int?

    @Flag(help: "BFT mode: measure Ed25519, HMAC-SHA256 and SHA-256 rates on this machine and exit.")
    var cryptoRates = false

    @Flag(help: "Print the trace of a single-seed run.")
    var trace = false

    @Flag(help: "With --trace, also print every delivered message.")
    var traceMessages = false

    @Flag(help: "Serve reads by leader lease where possible (opt-in lease reads).")
    var leaseReads = false

    @Option(help: "Fault profile of the safety phase: standard or heavy (BFT mode: heavy adds backups cut off alone long enough to change views alone).")
    var faults: String = "standard"

    @Option(help: "Each node compacts its log once this many applied entries sit above its snapshot (1 through 10000).")
    var compactionEntries: Int = 24

    @Option(help: "Most entries per append message (1 through 1000).")
    var entriesPerMessage: Int = 32

    func validate() throws {
        guard mode == "raft" || mode == "bft" || mode == "mesh" else {
            throw ValidationError("unknown --mode '\(mode)': use raft, bft or mesh")
        }
        if mode == "bft" {
            guard (4...7).contains(nodes) else { throw ValidationError("--mode bft needs --nodes 4 through 7 (n = 3f+1), got \(nodes)") }
            if let b = byzantine, !(0...((nodes - 1) / 3)).contains(b) {
                throw ValidationError("--byzantine must be 0 through f = \((nodes - 1) / 3) for \(nodes) nodes, got \(b)")
            }
            if leaseReads || traceMessages || compactionEntries != 24 || entriesPerMessage != 32 {
                throw ValidationError("--lease-reads, --trace-messages, --compaction-entries and --entries-per-message are Raft-mode options; drop them with --mode bft")
            }
        } else if byzantine != nil || cryptoRates {
            throw ValidationError("--byzantine and --crypto-rates need --mode bft")
        }
        guard (3...7).contains(nodes) else { throw ValidationError("--nodes must be 3 through 7, got \(nodes)") }
        guard (1...100_000).contains(steps) else { throw ValidationError("--steps must be 1 through 100000, got \(steps)") }
        guard (1...16).contains(clients) else { throw ValidationError("--clients must be 1 through 16, got \(clients)") }
        if let m = meshClients, !(0...8).contains(m) { throw ValidationError("--mesh-clients must be 0 through 8, got \(m)") }
        if seeds != nil && seed != nil { throw ValidationError("give either --seeds N or --seed S, not both") }
        if let n = seeds, !(1...1_000_000).contains(n) { throw ValidationError("--seeds must be 1 through 1000000, got \(n)") }
        if trace && seed == nil { throw ValidationError("--trace needs --seed S (one run)") }
        if traceMessages && !trace { throw ValidationError("--trace-messages needs --trace") }
        guard (1...10_000).contains(compactionEntries) else {
            throw ValidationError("--compaction-entries must be 1 through 10000, got \(compactionEntries)")
        }
        guard (1...1000).contains(entriesPerMessage) else {
            throw ValidationError("--entries-per-message must be 1 through 1000, got \(entriesPerMessage)")
        }
        guard faults == "standard" || faults == "heavy" else {
            throw ValidationError("unknown --faults '\(faults)': use standard or heavy")
        }
    }

    func options(seed: UInt64) -> SimulationOptions {
        var o = SimulationOptions(seed: seed)
        o.nodes = nodes
        o.safetyTicks = steps
        o.clients = clients
        if let meshClients { o.meshClients = meshClients }
        o.leaseReads = leaseReads
        o.recordTrace = trace
        o.traceMessages = traceMessages
        if faults == "heavy" { o.faults = .heavy }
        o.compactionThresholdEntries = compactionEntries
        o.entriesPerMessageMax = entriesPerMessage
        return o
    }

    func replayCommand(_ s: UInt64) -> String {
        "synod sim --mode raft --nodes \(nodes) --steps \(steps) --clients \(clients)\(meshClients.map { " --mesh-clients \($0)" } ?? "")\(leaseReads ? " --lease-reads" : "")\(faults == "heavy" ? " --faults heavy" : "")\(compactionEntries != 24 ? " --compaction-entries \(compactionEntries)" : "")\(entriesPerMessage != 32 ? " --entries-per-message \(entriesPerMessage)" : "") --seed \(s) --trace"
    }

    func run() throws {
        if mode == "bft" { return try runBFT() }
        if mode == "mesh" { return try runMesh() }
        if let s = seed {
            let r = Simulation.run(options(seed: s))
            if trace { for line in r.trace { print(line) } }
            let lin = r.linearizability.map { "\($0)" } ?? "not checked"
            print("raft nodes=\(nodes) seed=\(s): ticks=\(r.ticks) commit=\(r.commitIndex.rawValue) ops=\(r.operationsCompleted) mesh-ops=\(r.meshCommandsCompleted) unknown=\(r.operationsUnknown) elections=\(r.elections) crashes=\(r.crashes) snapshots=\(r.snapshotsInstalled) membership-changes=\(r.membershipChanges) transfers=\(r.transfers) linearizability=\(lin) digest \(r.digest)")
            report(r)
            if !r.passed { throw ExitCode.failure }
            return
        }
        let n = seeds ?? 100
        var failed = 0
        var inconclusive = 0
        for s in 1...UInt64(n) {
            let r = Simulation.run(options(seed: s))
            if case .inconclusive = r.linearizability { inconclusive += 1 }
            if !r.passed {
                failed += 1
                report(r)
            }
        }
        if inconclusive > 0 {
            print("note: \(inconclusive) runs hit the linearizability search bound (inconclusive, not counted as violations)")
        }
        print("raft nodes=\(nodes) seeds=1..\(n): \(n) runs, \(failed) violations")
        if failed > 0 { throw ExitCode.failure }
    }

    func report(_ r: SimulationResult) {
        guard !r.passed else { return }
        print("seed \(r.seed) FAILED: \(r.violations.first ?? "")")
        for v in r.violations.dropFirst().prefix(4) { print("  also: \(v)") }
        print("  replay: \(replayCommand(r.seed))")
    }
}

extension SimCommand {
    /// Test-only (`SYNOD_TESTING_MESH_HASH_ORDER`): inject the hash-order bug into mesh runs.
    static let testingMeshHashOrder = ProcessInfo.processInfo.environment["SYNOD_TESTING_MESH_HASH_ORDER"] != nil

    /// `--mode mesh`: random mesh workloads through the real state machine (docs/MESH.md).
    func runMesh() throws {
        let range = seed.map { $0...$0 } ?? 1...UInt64(seeds ?? 100)
        var digest = FNV1a64()
        var violations: [String] = []
        for s in range {
            let r = try MeshSimulation.run(seed: s, steps: steps, hashOrderBug: Self.testingMeshHashOrder)
            digest.add(r.digest)
            violations += r.violations
        }
        for v in violations.prefix(5) { print("FAILED: \(v)") }
        print("mesh seeds=\(range.lowerBound)..\(range.upperBound) steps=\(steps): \(range.count) runs, \(violations.count) violations, digest \(digest.hex)")
        if !violations.isEmpty { throw ExitCode.failure }
    }
}
