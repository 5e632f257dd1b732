import SynodCore
import SynodRaft
import SynodSimulation
import Testing

/// Each classic Raft bug, injected into every node, must be caught by the simulator's checkers
/// within a bounded number of seeds. If one of these stops failing, a checker has gone blind.
///
/// Some bugs need a rare interleaving, so their runs sharpen the faults (all still ordinary
/// simulator options): three nodes, targeted crashes right after votes, elections and commits,
/// short outages. Liveness complaints are not counted: only a safety or linearizability
/// violation proves the bug was caught.
@Suite struct BugInjectionTests {
    static let seedsMax: UInt64 = 300

    /// The first seed (1...seedsMax) whose run reports a safety violation, with that violation.
    static func firstCaught(_ bugs: RaftBugs, tweak: (inout SimulationOptions) -> Void) -> (UInt64, String)? {
        for seed in 1...seedsMax {
            var o = SimulationOptions(seed: seed)
            o.bugs = bugs
            o.safetyTicks = 300
            tweak(&o)
            let r = Simulation.run(o)
            if let v = r.violations.first(where: { !$0.hasPrefix("liveness") }) { return (seed, v) }
        }
        return nil
    }

    static func describe(_ caught: (UInt64, String)?) -> String {
        caught.map { "seed \($0.0): \($0.1)" } ?? "never"
    }

    /// Paper Figure 8 / dissertation Figure 3.7.
    @Test func committingPreviousTermEntryByCountingIsCaught() {
        let caught = Self.firstCaught(.commitPreviousTermByCounting) { o in
            o.nodes = 3
            o.safetyTicks = 1000
            o.preVote = false
            o.entriesPerMessageMax = 1   // the old entry travels without the new leader's no-op
            o.faults = FaultRates(dropPerMille: 300, crashPerMille: 20, restartPerMille: 300,
                                  crashAfterEventPerMille: 300, downTicksRange: 1...10)
        }
        print("commit-previous-term:", Self.describe(caught))
        #expect(caught != nil)
    }

    @Test func grantingVoteWithoutPersistingIsCaught() {
        let caught = Self.firstCaught(.voteWithoutPersisting) { o in
            o.nodes = 3
            o.safetyTicks = 1000
            o.preVote = false            // more split elections
            o.faults = FaultRates(restartPerMille: 1000, crashAfterEventPerMille: 300, downTicksRange: 1...2)
        }
        print("vote-without-persisting:", Self.describe(caught))
        #expect(caught != nil)
    }

    @Test func readingWithoutConfirmingLeadershipIsCaught() {
        // Without check-quorum an isolated leader keeps believing it leads and answers stale reads.
        let caught = Self.firstCaught(.readWithoutLeadershipCheck) { o in
            o.checkQuorum = false
            o.faults = FaultRates(partitionPerMille: 40, healPerMille: 15)
        }
        print("read-without-leadership-check:", Self.describe(caught))
        #expect(caught != nil)
    }

    @Test func keepingConflictingSuffixIsCaught() {
        let caught = Self.firstCaught(.keepConflictingSuffix) { _ in }
        print("keep-conflicting-suffix:", Self.describe(caught))
        #expect(caught != nil)
    }

    /// The same sharpened settings without a bug must pass: the catches above are the bugs'.
    @Test func sharpenedSettingsWithoutBugsPass() {
        for seed in UInt64(1)...30 {
            var o = SimulationOptions(seed: seed)
            o.nodes = 3
            o.safetyTicks = 1000
            o.preVote = false
            o.entriesPerMessageMax = 1
            o.faults = FaultRates(dropPerMille: 300, crashPerMille: 20, restartPerMille: 300,
                                  crashAfterEventPerMille: 300, downTicksRange: 1...10)
            let r = Simulation.run(o)
            #expect(r.passed, "seed \(seed): \(r.violations.first ?? "")")
            o.checkQuorum = false
            o.faults = FaultRates(partitionPerMille: 40, healPerMille: 15)
            let q = Simulation.run(o)
            #expect(q.passed, "no check-quorum, seed \(seed): \(q.violations.first ?? "")")
        }
    }
}
