import Foundation
import SynodClient
import SynodSimulation
import SynodTestSupport
import Testing

// Process pauses, Jepsen's favourite nemesis: a SIGSTOPped node keeps its sockets and its clock
// runs on, but it neither sends nor reads. A paused leader is the classic hazard for leader
// leases: when it resumes it may still believe it leads while the others have elected a new
// leader and committed writes without it.
extension RealProcessTests {
@Suite("Process pauses (SIGSTOP) on a real cluster")
struct PauseTests {
    /// The leader, then a follower, paused well past the election timeout, six times, under
    /// load (`NemesisRun`); reads sent to the paused node after a write it missed.
    @Test("leader and follower pauses past the election timeout under load: history stays linearizable", arguments: [false, true])
    func pausesUnderLoad(leaseReads: Bool) async throws {
        let run = try await Self.pauseRun(extraArgs: leaseReads ? ["--lease-reads"] : [])
        print("lease reads \(leaseReads): paused \(run.faults); \(run.history.count) operations, \(run.completed) completed")
        #expect(run.faults.filter { $0.hasPrefix("leader") }.count >= 2, "pauses: \(run.faults)")
        #expect(run.completed > 50)
        #expect(run.verdict == .linearizable, "marker writes and late reads: \(run.lateOperations)")
        #expect(run.hashKV.status == 0 && run.hashKV.output.contains("3 of 3 endpoints agree"), "hashkv: \(run.hashKV.output)")
        #expect(run.finalReadsCompleted, "final reads must succeed after the cluster heals")
    }

    /// The same run against nodes with a read bug switched on (`--testing-raft-bug`): the
    /// history must show the stale reads. Shows the test above can fail. The last one is the
    /// bug this test found: a lease counted only the ticks a pass delivered (at most 10), so a
    /// leader paused for 170 ticks still trusted its lease on waking and answered the reads
    /// waiting in its sockets before it heard of the new leader.
    @Test("the pause test catches injected read bugs", arguments: ["read-without-leadership-check", "follower-read-without-leader", "lease-ignores-missed-ticks"])
    func pausesCatchInjectedBugs(bug: String) async throws {
        let run = try await Self.pauseRun(extraArgs: ["--testing-raft-bug", bug] + (bug.hasPrefix("lease") ? ["--lease-reads"] : []))
        print("injected \(bug): paused \(run.faults); \(run.history.count) operations, verdict \(run.verdict)")
        #expect(run.verdict != .linearizable, "the stale reads of \(bug) went unnoticed")
    }

    static func pauseRun(extraArgs: [String]) async throws -> NemesisRun {
        let cluster = try Cluster(size: 3, extraArgs: extraArgs)
        return try await NemesisRun.run(cluster) { ctx in
            // Pause the leader (even rounds) or a follower (odd rounds).
            var paused: [String] = []
            for round in 0..<6 {
                try await Task.sleep(nanoseconds: 400_000_000)
                guard let leader = await cluster.leader(using: ctx.client) else { continue }
                let target = round % 2 == 0 ? leader : (leader % 3) + 1
                cluster.pause(target)
                paused.append(target == leader ? "leader \(target)" : "follower \(target)")
                // Four election timeouts (200 ms each in the harness): the others elect a leader.
                try await Task.sleep(nanoseconds: 800_000_000)
                try await ctx.markerWriteThenLateReads(struck: target, round: round, holdNanos: 50_000_000) { cluster.resume(target) }
            }
            return paused
        }
    }
}
}
