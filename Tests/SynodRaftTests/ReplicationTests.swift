import SynodCore
@testable import SynodRaft
import Testing

/// Raft §5.3 (log replication), §5.4.2 and Figure 8 (commitment), flow control.
@Suite struct ReplicationTests {
    @Test func section5_3_committedEntryReachesEveryFollower() {
        var c = TestCluster(size: 5)
        c.elect(1)
        let p = c.propose(1, [7, 7])
        c.stabilize()
        for k in 1...5 {
            #expect(c[UInt64(k)].commitIndex >= p.index)
            #expect(c[UInt64(k)].entry(at: p.index)?.payload == [7, 7])
        }
    }

    /// A batch of proposals leaves as one append per follower (the node proposes everything
    /// that arrived in one pass together); each proposal is still checked on its own.
    @Test func proposeBatch_oneAppendPerFollowerAndPerProposalRefusals() {
        var c = TestCluster(size: 3)
        c.elect(1)
        c.stabilize()
        c.sent.removeAll()
        let tooBig = [UInt8](repeating: 0, count: Limits.entryPayloadBytesMax + 1)
        let results = c.cores[0].propose(batch: [[1], [2], tooBig, [3]])
        #expect(results.count == 4)
        guard case let .success(first) = results[0], case let .success(last) = results[3] else {
            Issue.record("accepted proposals should succeed: \(results)")
            return
        }
        if case .failure(.tooLarge) = results[2] {} else { Issue.record("the oversized proposal should be refused alone: \(results[2])") }
        #expect(last.index == LogIndex(first.index.rawValue + 2), "the refused one takes no index")
        let appends = c.cores[0].ready().messages.filter { $0.type == .append }
        #expect(appends.count == 2, "one append per follower, not one per proposal")
        #expect(appends.allSatisfy { $0.entries.map(\.payload) == [[1], [2], [3]] })
        c.stabilize()
        for k: UInt64 in 1...3 { #expect(c[k].commitIndex >= last.index) }
        var follower = c.cores[1]
        #expect(follower.propose(batch: [[9]]).allSatisfy { if case .failure(.notLeader) = $0 { true } else { false } })
    }

    @Test func section5_3_entryCommitsWithMajorityOnly() {
        var c = TestCluster(size: 5)
        c.elect(1)
        c.isolate(4); c.isolate(5)
        let p = c.propose(1)
        c.stabilize()
        #expect(c[1].commitIndex >= p.index, "3 of 5 is a majority")
        c.isolate(3)
        let q = c.propose(1)
        c.stabilize()
        #expect(c[1].commitIndex < q.index, "2 of 5 is not")
    }

    @Test func section5_3_followerRejectsAppendThatDoesNotMatchAndHintsConflict() {
        var c = TestCluster(size: 3)
        c.elect(1)
        var m = Message(type: .append, from: NodeID(1), to: NodeID(2), term: c[1].term)
        m.index = LogIndex(50)
        m.logTerm = c[1].term
        c[2].step(m)
        let r = c[2].ready().messages.last!
        #expect(r.type == .appendResponse && r.reject)
        #expect(r.rejectHint == c[2].lastIndex.next, "a short log hints its end")
    }

    /// Fast backtracking (§5.3, "the protocol can be optimized"): a follower with a long
    /// divergent suffix from one old term is repaired in one round trip, not one per entry.
    @Test func section5_3_fastBacktrackingSkipsAWholeConflictingTerm() {
        var c = TestCluster(size: 3) { $0.entriesPerMessageMax = 1000; $0.checkQuorum = false; $0.preVote = false }
        c.elect(1)
        for _ in 0..<3 { c.propose(1) }
        c.stabilize()
        let common = c[1].lastIndex
        c.isolate(1)
        for _ in 0..<40 { c.propose(1) }   // 40 entries only node 1 has
        c.stabilize()
        c.elect(2)                          // node 2 leads without them
        for _ in 0..<20 { c.propose(2) }
        c.stabilize()
        c[2].becomeFollower(term: c[2].term, leader: .none)
        c.elect(2)                          // a later term, its probe starts past the divergence
        c.heal()
        c.sent.removeAll()
        c.tickAll(times: 3)
        #expect(c[1].lastIndex == c[2].lastIndex)
        #expect(c[1].entry(at: common.next)?.term != Term(1))
        let rejections = c.sent.filter { $0.type == .appendResponse && $0.reject && $0.from == NodeID(1) }
        #expect(rejections.count == 1, "one conflict-term hint skips the whole divergent run (naively: ~20)")
        #expect(rejections.first?.conflictTerm == Term(1))
    }

    @Test func flowControl_pipelinedAppendsBoundedByInflightWindow() {
        var c = TestCluster(size: 3) { $0.inflightMessagesMax = 3; $0.entriesPerMessageMax = 1 }
        c.elect(1)
        #expect(c[1].replicationState(of: NodeID(2)) == .replicate)
        c.sent.removeAll()
        c.cut = [[2, 1], [3, 1]]              // acknowledgements are lost
        for _ in 0..<10 { c.propose(1) }
        c.processReady(1)
        let appends = c.sent.filter { $0.type == .append && $0.to == NodeID(2) }
        #expect(appends.count == 3, "pipelining stops at the in-flight window")
        #expect(c[1].inflightCount(of: NodeID(2)) == 3)
    }

    @Test func flowControl_batchesBoundedByEntriesAndBytes() {
        var c = TestCluster(size: 3) { $0.entriesPerMessageMax = 4; $0.bytesPerMessageMax = 100 }
        c.elect(1)
        c.isolate(2)
        for _ in 0..<12 { c.propose(1, [UInt8](repeating: 1, count: 5)) }
        for _ in 0..<3 { c.propose(1, [UInt8](repeating: 2, count: 80)) }
        c.stabilize()
        c.heal()
        c.sent.removeAll()
        c.tickAll(times: 4)
        let appends = c.sent.filter { $0.type == .append && $0.to == NodeID(2) && !$0.entries.isEmpty }
        #expect(!appends.isEmpty)
        for a in appends {
            #expect(a.entries.count <= 4)
            #expect(a.entries.count == 1 || a.entries.reduce(0) { $0 + $1.sizeBytes } <= 100)
        }
        #expect(c[2].lastIndex == c[1].lastIndex)
    }

    @Test func flowControl_probeStateSendsOneAppendAtATime() {
        var c = TestCluster(size: 3)
        c.isolate(3)
        c.elect(1)
        #expect(c[1].replicationState(of: NodeID(3)) == .probe)
        for _ in 0..<5 { c.propose(1); c.stabilize() }
        let appends = c.sent.filter { $0.type == .append && $0.to == NodeID(3) }
        #expect(appends.count == 1, "a probe waits for its answer before the next append")
        c.heal()
        c.tickAll(times: 3)
        #expect(c[1].replicationState(of: NodeID(3)) == .replicate)
        #expect(c[3].lastIndex == c[1].lastIndex)
    }

    /// Figure 8: a leader must not commit an entry from an earlier term by counting replicas.
    @Test func section5_4_2_leaderDoesNotCommitPreviousTermEntryByCounting() {
        let counted = figure8(bugs: [])
        #expect(counted == false)
        let buggy = figure8(bugs: .commitPreviousTermByCounting)
        #expect(buggy == true, "the injected bug commits it")
    }

    /// Node 1 holds an old-term entry nobody else has; it becomes leader of a later term
    /// (without a no-op, as in the figure) and replicates the old entry to a majority.
    /// Returns whether the old entry became committed.
    func figure8(bugs: RaftBugs) -> Bool {
        var c = TestCluster(size: 3) {
            $0.preVote = false; $0.checkQuorum = false; $0.appendNoopOnElection = false; $0.bugs = bugs
        }
        c.elect(1)
        c.isolate(1)
        let old = c.propose(1)                 // term-1 entry only on node 1
        c.stabilize()
        c[1].becomeFollower(term: c[1].term, leader: .none)   // node 1 crashes and comes back
        c.elect(2)                             // term 2: node 2 leads without it, writes nothing
        #expect(c[2].role == .leader)
        c.heal()
        c.cut = [[2, 1], [1, 2], [2, 3], [3, 2]]
        c.elect(1)                             // term 2 again: node 3 already voted
        c.elect(1)                             // term 3: node 1 wins with node 3's vote
        #expect(c[1].role == .leader)
        #expect(c[3].entry(at: old.index)?.term == old.term, "old entry now on a majority")
        return c[1].commitIndex >= old.index
    }

    @Test func section5_3_conflictingSuffixIsTruncated() {
        var c = TestCluster(size: 3) { $0.preVote = false; $0.checkQuorum = false }
        c.elect(1)
        c.isolate(1)
        c.propose(1); c.propose(1)
        c.stabilize()
        c.elect(2)
        c.propose(2)
        c.stabilize()
        c.heal()
        c.tickAll(times: 4)
        #expect(c[1].lastIndex == c[2].lastIndex)
        for i in 1...c[2].lastIndex.rawValue {
            #expect(c[1].term(at: LogIndex(i)) == c[2].term(at: LogIndex(i)))
        }
        #expect((try? c.stores[0].lastIndex()) == c[1].lastIndex, "the truncation reached the disk")
    }
}
