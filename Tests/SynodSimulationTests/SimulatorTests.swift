import SynodCore
import SynodRaft
import SynodSimulation
import Testing

@Suite struct SimulatorTests {
    /// The CI run: 300 seeds of a 5-node cluster must pass every check.
    @Test func threeHundredSeedsOfFiveNodesPass() {
        var failures: [String] = []
        var completed = 0
        for seed in UInt64(1)...300 {
            var o = SimulationOptions(seed: seed)
            o.nodes = 5
            o.safetyTicks = 300
            let r = Simulation.run(o)
            completed += r.operationsCompleted
            if !r.passed { failures.append("seed \(seed): \(r.violations[0])") }
        }
        #expect(failures.isEmpty, "\(failures.prefix(5))")
        #expect(completed > 300 * 20, "clients must make progress")
    }

    @Test(arguments: [3, 4, 6, 7]) func otherClusterSizesPass(nodes: Int) {
        for seed in UInt64(1)...25 {
            var o = SimulationOptions(seed: seed)
            o.nodes = nodes
            o.safetyTicks = 300
            let r = Simulation.run(o)
            #expect(r.passed, "nodes \(nodes) seed \(seed): \(r.violations.first ?? "")")
        }
    }

    /// The harsh profile that found the snapshot-acknowledgement bug (docs/SIMULATOR.md).
    @Test func heavyFaultsWithManyClientsPass() {
        for seed in UInt64(1)...120 {
            var o = SimulationOptions(seed: seed)
            o.nodes = 3
            o.clients = 12
            o.faults = .heavy
            let r = Simulation.run(o)
            #expect(r.passed, "seed \(seed): \(r.violations.first ?? "")")
        }
    }

    @Test func leaseReadsPass() {
        for seed in UInt64(1)...40 {
            var o = SimulationOptions(seed: seed)
            o.leaseReads = true
            o.safetyTicks = 300
            let r = Simulation.run(o)
            #expect(r.passed, "seed \(seed): \(r.violations.first ?? "")")
        }
    }

    /// Mesh commands under faults, as DESIGN.md §5 asks ("test it in the simulator like the KV"):
    /// every run has one mesh client by default; here three on three nodes, so mesh records,
    /// sessions and history fill the snapshots followers install. Each replica's mesh invariants
    /// hold after every mesh command it carries out, and all replicas end with the same records.
    @Test func meshClientsUnderFaultsPass() {
        var meshCommands = 0, snapshots = 0
        for seed in UInt64(1)...60 {
            var o = SimulationOptions(seed: seed)
            o.nodes = 3
            o.meshClients = 3
            o.safetyTicks = 300
            let r = Simulation.run(o)
            #expect(r.passed, "seed \(seed): \(r.violations.first ?? "")")
            meshCommands += r.meshCommandsCompleted
            snapshots += r.snapshotsInstalled
        }
        #expect(meshCommands > 60 * 30, "mesh clients must make progress (\(meshCommands))")
        #expect(snapshots > 10, "followers must install snapshots holding mesh state (\(snapshots))")
    }

    /// The injected mesh bug (a failure verdict that leaves the failed agent's tasks with it) is
    /// caught by the simulator's per-replica mesh invariant check.
    @Test func meshVerdictKeepingTasksIsCaught() {
        var caught: String?
        for seed in UInt64(1)...100 where caught == nil {
            var o = SimulationOptions(seed: seed)
            o.nodes = 3
            o.meshClients = 3
            o.meshBugs = .keepTasksOfFailed
            caught = Simulation.run(o).violations.first { $0.hasPrefix("mesh invariant") }
        }
        #expect(caught != nil, "100 seeds never caught a verdict that keeps the failed agent's tasks")
    }

    @Test func sameSeedGivesTheSameTraceAndDigest() {
        var o = SimulationOptions(seed: 42)
        o.recordTrace = true
        let a = Simulation.run(o)
        let b = Simulation.run(o)
        #expect(a.digest == b.digest)
        #expect(a.trace == b.trace)
        o.seed = 43
        #expect(Simulation.run(o).digest != a.digest)
    }

    @Test func faultsAreActuallyInjected() {
        var crashes = 0, snapshots = 0, unknown = 0, elections = 0
        for seed in UInt64(1)...20 {
            var o = SimulationOptions(seed: seed)
            o.recordTrace = true
            let r = Simulation.run(o)
            crashes += r.crashes
            snapshots += r.snapshotsInstalled
            unknown += r.operationsUnknown
            elections += r.elections
        }
        #expect(crashes > 20)
        #expect(elections > 40)
        #expect(snapshots > 0, "followers must catch up by InstallSnapshot sometimes")
        #expect(unknown > 0, "some operations must end with an unknown outcome")
    }
}
