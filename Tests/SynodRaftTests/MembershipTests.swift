import SynodCore
@testable import SynodRaft
import Testing

/// Dissertation §4.3 (joint consensus), §4.2.1 (learners), §4.2.2 (removing the leader),
/// §3.10 (leadership transfer), §4.1 (a node uses the latest configuration in its log).
@Suite struct MembershipTests {
    func configurations(_ core: RaftCore) -> [Membership] {
        core.entries.filter { $0.kind == .configuration }.compactMap { try? ConfigurationChange.decode($0.payload).next }
    }

    @Test func section4_3_addingAVoterGoesThroughAJointConfiguration() throws {
        var c = TestCluster(size: 3, spares: 1)
        c.elect(1)
        try c[1].proposeMembershipChange(.addVoter(NodeID(4)))
        c.stabilize()
        let configs = configurations(c[1])
        #expect(configs.count == 2)
        #expect(configs.first?.isJoint == true)
        #expect(configs.first?.outgoingVoters == [1, 2, 3].map { NodeID($0) })
        #expect(configs.last?.voters == [1, 2, 3, 4].map { NodeID($0) })
        #expect(configs.last?.isJoint == false)
        for k in 1...4 {
            #expect(c[UInt64(k)].membership.voters.count == 4, "node \(k) follows the latest configuration")
            #expect(c[UInt64(k)].lastIndex == c[1].lastIndex)
        }
    }

    @Test func section4_3_oneChangeAtATime() throws {
        var c = TestCluster(size: 3, spares: 2)
        c.elect(1)
        c.isolate(2); c.isolate(3)
        try c[1].proposeMembershipChange(.addLearner(NodeID(4)))
        #expect(throws: RaftError.membershipChangeInProgress) { try c[1].proposeMembershipChange(.addLearner(NodeID(5))) }
    }

    @Test func section4_3_jointConfigurationNeedsBothMajorities() throws {
        var c = TestCluster(size: 3, spares: 2) { $0.checkQuorum = false }
        c.elect(1)
        try c[1].proposeMembershipChange(.replaceVoter(old: NodeID(3), new: NodeID(4)))
        c.processReady(1)
        #expect(c[1].membership.isJoint)
        // Old config {1,2,3}, new {1,2,4}: with only 1 and 4 answering, the new majority holds
        // but the old one does not, so nothing commits.
        c.queue.removeAll()
        c.isolate(2); c.isolate(3)
        c.cut.remove([1, 4]); c.cut.remove([4, 1])
        let before = c[1].commitIndex
        c.propose(1)
        c.stabilize()
        #expect(c[1].commitIndex == before)
        c.heal()
        c.tickAll(times: 6)
        #expect(c[1].membership.voters == [1, 2, 4].map { NodeID($0) })
        #expect(!c[1].membership.isJoint)
    }

    @Test func section4_2_1_learnerGetsTheLogButNeitherVotesNorCounts() throws {
        var c = TestCluster(size: 3, spares: 1)
        c.elect(1)
        try c[1].proposeMembershipChange(.addLearner(NodeID(4)))
        c.stabilize()
        #expect(c[4].membership.learners == [NodeID(4)])
        c.isolate(2); c.isolate(3)
        c.cut.remove([1, 4]); c.cut.remove([4, 1])
        let p = c.propose(1)
        c.stabilize()
        #expect(c[4].lastIndex == p.index, "the learner receives the entry")
        #expect(c[1].commitIndex < p.index, "but does not count toward the quorum")
        c.tick(4, times: 100)
        c.stabilize()
        #expect(c[4].role == .follower, "a learner never campaigns")
        c.heal()
        try c[1].proposeMembershipChange(.promoteLearner(NodeID(4)))
        c.tickAll(times: 8)
        #expect(c[1].membership.voters.contains(NodeID(4)))
    }

    @Test func section4_2_2_removedLeaderStepsDownAfterCommittingTheNewConfiguration() throws {
        var c = TestCluster(size: 3)
        c.elect(1)
        try c[1].proposeMembershipChange(.removeVoter(NodeID(1)))
        c.stabilize()
        #expect(c[1].role == .follower)
        #expect(c[2].membership.voters == [2, 3].map { NodeID($0) })
        for _ in 0..<60 { c.tick(2); c.tick(3); c.stabilize() }
        #expect(c.leaders.count == 1 && c.leaders[0] != NodeID(1))
    }

    @Test func section4_1_truncatedConfigurationEntryIsUndone() throws {
        var c = TestCluster(size: 3, spares: 1) { $0.checkQuorum = false; $0.preVote = false }
        c.elect(1)
        c.isolate(1)
        try c[1].proposeMembershipChange(.addLearner(NodeID(4)))
        c.stabilize()
        #expect(c[1].membership.learners == [NodeID(4)])
        c.elect(2)
        c.propose(2)
        c.stabilize()
        c.heal()
        c.tickAll(times: 4)
        #expect(c[1].role == .follower)
        #expect(c[1].membership.learners.isEmpty, "the uncommitted configuration was truncated")
        #expect((try? c.stores[0].membership())?.learners.isEmpty == true, "and the store knows")
    }

    @Test func section3_10_leadershipTransferHandsOverQuickly() throws {
        var c = TestCluster(size: 3)
        c.elect(1)
        c.propose(1)
        c.stabilize()
        let term = c[1].term
        try c[1].transferLeadership(to: NodeID(3))
        #expect(throws: RaftError.leadershipTransferInProgress) { try c[1].propose([1]) }
        c.stabilize()
        #expect(c.leaders == [NodeID(3)])
        #expect(c[3].term == term.next, "followers in a lease still vote for a transfer")
    }
}
