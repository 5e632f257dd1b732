import SynodCore
@testable import SynodRaft
import Testing

/// Raft §5.2 (leader election), dissertation §9.6 (pre-vote), §6.2 and §4.2.3 (check-quorum).
@Suite struct ElectionTests {
    @Test func section5_2_followerCampaignsAfterRandomizedElectionTimeout() {
        var timeouts: Set<Int> = []
        for seed in UInt64(1)...20 {
            var c = TestCluster(size: 3, seed: seed)
            var ticks = 0
            while c[1].role == .follower && ticks < 100 { c.tick(1); ticks += 1 }
            #expect(ticks >= c[1].config.electionTimeoutTicks)
            #expect(ticks < 2 * c[1].config.electionTimeoutTicks)
            timeouts.insert(ticks)
        }
        #expect(timeouts.count > 1, "timeouts must be randomized")
    }

    @Test func section5_2_candidateWithMajorityBecomesLeaderAndOthersFollow() {
        var c = TestCluster(size: 5)
        c.elect(1)
        #expect(c.leaders == [NodeID(1)])
        for k in 2...5 {
            #expect(c[UInt64(k)].role == .follower)
            #expect(c[UInt64(k)].leader == NodeID(1))
            #expect(c[UInt64(k)].term == c[1].term)
        }
    }

    @Test func section5_2_electionsConvergeWithTicksAlone() {
        var c = TestCluster(size: 5, seed: 7)
        for _ in 0..<60 { c.tickAll() }
        #expect(c.leaders.count == 1)
    }

    @Test func section5_2_candidateWithoutMajorityDoesNotWin() {
        var c = TestCluster(size: 5) { $0.preVote = false }
        c.isolate(2); c.isolate(3); c.isolate(4)
        c.elect(1)
        #expect(c.leaders.isEmpty)
        #expect(c[1].role == .candidate)
    }

    @Test func section5_4_1_voteDeniedToCandidateWithLessUpToDateLog() {
        var c = TestCluster(size: 3) { $0.preVote = false }
        c.elect(1)
        c.isolate(3)
        c.propose(1)
        c.stabilize()
        c.heal()
        // Node 3 missed an entry: it may not win.
        c.elect(3)
        #expect(c[3].role != .leader)
        #expect(!c.sent.contains { $0.type == .voteResponse && $0.to == NodeID(3) && !$0.reject && $0.from == NodeID(1) })
    }

    @Test func section9_6_preVoteKeepsAPartitionedNodeFromInflatingTerms() {
        var c = TestCluster(size: 3)
        c.elect(1)
        let term = c[1].term
        c.isolate(3)
        for _ in 0..<100 { c.tick(3); c.stabilize() }
        #expect(c[3].term == term, "pre-vote rounds never bump the term")
        c.heal()
        c.tickAll(times: 5)
        #expect(c.leaders == [NodeID(1)], "the rejoining node does not depose the leader")
        #expect(c[1].term == term)
    }

    @Test func section6_2_checkQuorumLeaderStepsDownWhenCutOff() {
        var c = TestCluster(size: 3)
        c.elect(1)
        c.isolate(1)
        for _ in 0..<(2 * c[1].config.electionTimeoutTicks + 1) { c.tick(1); c.stabilize() }
        #expect(c[1].role == .follower)
    }

    @Test func section6_2_leaderWithQuorumStaysLeader() {
        var c = TestCluster(size: 3)
        c.elect(1)
        c.isolate(3)
        c.tickAll(times: 50)
        #expect(c[1].role == .leader)
    }

    @Test func section4_2_3_followerInLeaseIgnoresDisruptiveVoteRequest() {
        var c = TestCluster(size: 3) { $0.preVote = false }
        c.elect(1)
        let term = c[1].term
        // Node 3 campaigns although the leader is alive: the others ignore it.
        c.elect(3)
        #expect(c[2].term == term)
        #expect(c[1].role == .leader)
    }

    @Test func readyOrder_voteIsInTheSameReadyAsTheGrant() {
        var c = TestCluster(size: 3) { $0.preVote = false }
        c[1].campaign()
        c.processReady(1)
        let request = c.queue.first { $0.to == NodeID(2) }!
        c[2].step(request)
        let rd = c[2].ready()
        #expect(rd.messages.contains { $0.type == .voteResponse && !$0.reject })
        #expect(rd.hardState?.vote == NodeID(1), "the vote must be persisted before the grant is sent")
    }

    @Test func injectedBug_voteWithoutPersistingLeavesVoteOffTheDisk() {
        var c = TestCluster(size: 3) { $0.preVote = false; $0.bugs = .voteWithoutPersisting }
        c[1].campaign()
        c.processReady(1)
        c[2].step(c.queue.first { $0.to == NodeID(2) }!)
        #expect(c[2].ready().hardState?.vote == NodeID.none)
    }

    @Test func section8_newLeaderAppendsNoopOfItsTerm() {
        var c = TestCluster(size: 3)
        c.elect(2)
        let e = c[2].entry(at: c[2].lastIndex)!
        #expect(e.kind == .noop)
        #expect(e.term == c[2].term)
        #expect(c[1].commitIndex == c[2].lastIndex)
    }
}
