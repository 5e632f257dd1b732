import SynodCore
@testable import SynodRaft
import Synchronization
import Testing

/// Dissertation §6.4 (ReadIndex), §6.4.1 (leases); Raft §7 (compaction, InstallSnapshot).
@Suite struct ReadAndSnapshotTests {
    @Test func section6_4_readIndexWaitsForAHeartbeatQuorum() throws {
        var c = TestCluster(size: 3)
        c.elect(1)
        c.isolate(1)
        try c[1].readIndex(context: 42)
        c.stabilize()
        #expect(c[1].ready().readStates.isEmpty, "no quorum confirmed leadership yet")
        c.heal()
        c.tick(1, times: 2)
        c.stabilize()
        // The heartbeat carrying the read was lost; the read is answered by the one sent with it later?
        // A new read rides a fresh heartbeat round and confirms both.
        try c[1].readIndex(context: 43)
        let before = c[1].commitIndex
        var answered: [ReadState] = []
        for _ in 0..<4 {
            c.processAllReady()
            answered += c[1].ready().readStates
            let batch = c.queue; c.queue = []
            for m in batch { c.cores[Int(m.to.rawValue) - 1].step(m) }
            answered += c[1].ready().readStates
        }
        #expect(answered.contains { $0.context == 43 && $0.index == before })
    }

    @Test func section6_4_followerRefusesReadIndexWithoutFollowerReads() {
        var c = TestCluster(size: 3) { $0.followerReads = false }
        c.elect(1)
        #expect(throws: RaftError.notLeader(leaderHint: NodeID(1))) { try c[2].readIndex(context: 1) }
    }

    /// etcd-raft's MsgReadIndex: a follower's read index comes from the leader, after a
    /// heartbeat quorum confirmed the leader still leads, and is the leader's commit index.
    @Test func section6_4_followerAsksTheLeaderForTheReadIndex() throws {
        var c = TestCluster(size: 3)
        c.elect(1)
        c.propose(1)
        c.stabilize()
        let commit = c[1].commitIndex
        try c[2].readIndex(context: 7)
        c.stabilize()
        #expect(c.readStatesSeen[2] == [ReadState(context: 7, index: commit)])
        #expect(c.readStatesSeen[1, default: []].isEmpty, "the leader answers by message, not with its own ReadState")
        let rounds = c.sent.filter { $0.type == .heartbeat && $0.context >= RaftCore.forwardedReadContextBase }
        #expect(!rounds.isEmpty, "the leader confirmed its leadership with a heartbeat round")
    }

    /// Reads that reach a leader together share one heartbeat round: three followers' ReadIndex
    /// requests and the leader's own, stepped before the leader's next Ready, send one heartbeat
    /// per peer (before: one round per request, four here), and that round answers all four.
    @Test func section6_4_readsArrivingTogetherShareOneHeartbeatRound() throws {
        var c = TestCluster(size: 5)
        c.elect(1)
        c.propose(1)
        c.stabilize()
        let commit = c[1].commitIndex
        for f in [UInt64(2), 3, 4] {
            try c[f].readIndex(context: 100 + f)
            c.processReady(f)
        }
        let requests = c.queue
        c.queue = []
        #expect(requests.count == 3 && requests.allSatisfy { $0.type == .readIndex && $0.to == NodeID(1) })
        for m in requests { c[1].step(m) }
        try c[1].readIndex(context: 7)
        let sentBefore = c.sent.count
        c.processReady(1)
        let heartbeats = c.sent[sentBefore...].filter { $0.type == .heartbeat }
        #expect(heartbeats.count == 4, "one heartbeat to each of the four peers, not one round per read")
        #expect(Set(heartbeats.map(\.to.rawValue)) == [2, 3, 4, 5])
        c.stabilize()
        #expect(c.readStatesSeen[1] == [ReadState(context: 7, index: commit)])
        for f in [UInt64(2), 3, 4] { #expect(c.readStatesSeen[f] == [ReadState(context: 100 + f, index: commit)]) }
        let rounds = c.sent[sentBefore...].filter { $0.type == .heartbeat }.count
        #expect(rounds == 4, "no further round was needed")
    }

    /// Leader 1 of three, with node 3 cut off and node 2's heartbeat answers lost: node 2's
    /// requests reach the leader, but no quorum can confirm that it still leads.
    static func leaderWithoutQuorum(_ configure: (inout RaftConfig) -> Void = { _ in }) -> TestCluster {
        var c = TestCluster(size: 3, configure: configure)
        c.elect(1)
        c.stabilize()
        c.isolate(3)
        c.lose = { $0.type == .heartbeatResponse && $0.from == NodeID(2) }
        return c
    }

    @Test func section6_4_aLeaderWithoutAQuorumDoesNotAnswerAFollowersRead() throws {
        var c = Self.leaderWithoutQuorum()
        try c[2].readIndex(context: 8)
        c.stabilize()
        #expect(c.sent.contains { $0.type == .readIndex && $0.from == NodeID(2) && $0.to == NodeID(1) })
        #expect(c.sent.contains { $0.type == .heartbeat && $0.context >= RaftCore.forwardedReadContextBase }, "the leader started a round for it")
        #expect(!c.sent.contains { $0.type == .readIndexResponse }, "no answer without a quorum")
        #expect(c.readStatesSeen[2, default: []].isEmpty)
        // Once node 2's answers get through again, the next periodic heartbeat carries the
        // pending read and confirms it.
        c.lose = { _ in false }
        c.tick(1, times: c[1].config.heartbeatIntervalTicks)
        c.stabilize()
        #expect(c.readStatesSeen[2, default: []].map(\.context) == [8])
    }

    @Test func section6_4_aLeaderWithoutAQuorumCheckAnswersFollowersAtOnce_injectedBug() throws {
        var c = Self.leaderWithoutQuorum { $0.bugs = .readWithoutLeadershipCheck }
        try c[2].readIndex(context: 8)
        c.stabilize()
        #expect(c.readStatesSeen[2, default: []].map(\.context) == [8], "the bug answers without a round: the test above can fail")
    }

    @Test func section6_4_aBusyLeaderRefusesAFollowersRead() throws {
        // The leader's own read stays pending (no quorum), so it has no room for node 2's.
        var c = Self.leaderWithoutQuorum { $0.pendingReadsMax = 1 }
        try c[1].readIndex(context: 1)
        c.stabilize()
        try c[2].readIndex(context: 9)
        c.stabilize()
        #expect(c.sent.contains { $0.type == .readIndexResponse && $0.reject && $0.context == 9 })
        #expect(c.readStatesSeen[2, default: []].isEmpty)
        #expect(c.refusedSeen[2, default: []] == [9], "the follower's shell learns of the refusal")
    }

    /// An answer to a request this core did not make in this term (another leader's, a forged
    /// context, a leader context) is ignored.
    @Test func section6_4_aFollowerIgnoresAnswersFromAnotherLeaderOrTerm() throws {
        var c = TestCluster(size: 3)
        c.elect(1)
        c.stabilize()
        var fromOther = Message(type: .readIndexResponse, from: NodeID(3), to: NodeID(2), term: c[2].term)
        fromOther.context = 5
        fromOther.index = LogIndex(1)
        c[2].step(fromOther)
        var leaderContext = Message(type: .readIndexResponse, from: NodeID(1), to: NodeID(2), term: c[2].term)
        leaderContext.context = RaftCore.forwardedReadContextBase | 1
        c[2].step(leaderContext)
        var oldTerm = Message(type: .readIndexResponse, from: NodeID(1), to: NodeID(2), term: Term(c[2].term.rawValue - 1))
        oldTerm.context = 6
        c[2].step(oldTerm)
        #expect(c[2].ready().readStates.isEmpty)
    }

    @Test func injectedBug_followerReadWithoutLeaderAnswersAtItsOwnCommitIndex() throws {
        var c = TestCluster(size: 3) { $0.bugs = .followerReadWithoutLeader }
        c.elect(1)
        c.isolate(2)
        c.propose(1)
        c.stabilize()
        try c[2].readIndex(context: 5)
        #expect(c[2].ready().readStates == [ReadState(context: 5, index: c[2].commitIndex)])
        #expect(c[2].commitIndex < c[1].commitIndex, "the answer is stale")
    }

    @Test func injectedBug_readWithoutLeadershipCheckAnswersAtOnce() throws {
        var c = TestCluster(size: 3) { $0.bugs = .readWithoutLeadershipCheck }
        c.elect(1)
        c.isolate(1)
        try c[1].readIndex(context: 9)
        #expect(c[1].ready().readStates.map(\.context) == [9])
    }

    /// Three nodes with lease reads (and `bugs`), past the quiet period after start, node 1
    /// elected and its lease established by two rounds of heartbeats.
    static func leaseLeader(bugs: RaftBugs) -> TestCluster {
        var c = TestCluster(size: 3) {
            $0.leaseReads = true
            $0.bugs = bugs
        }
        for k in 1...3 { c.tick(UInt64(k), times: 10) }
        c.elect(1)
        c.tickAll(times: 2)
        return c
    }

    @Test func section6_4_1_leaseReadIsServedWithoutARoundWhileTheLeaseHolds() throws {
        var c = Self.leaseLeader(bugs: [])
        try c[1].readIndex(context: 5)
        #expect(c[1].ready().readStates.map(\.context) == [5])
        c.isolate(1)
        for _ in 0..<(c[1].config.electionTimeoutTicks) { c.tick(1) }
        c.stabilize()
        if c[1].role == .leader {
            try c[1].readIndex(context: 6)
            #expect(!c[1].ready().readStates.contains { $0.context == 6 }, "an expired lease needs a round")
        }
    }

    /// Ticks the shell skipped (a stalled or paused loop) still age the lease: a leader woken
    /// after a long freeze asks for a heartbeat round instead of trusting its lease. With the
    /// injected bug it answers at once, as the real-process pause test saw.
    @Test(arguments: [false, true])
    func section6_4_1_missedTicksAgeTheLease(injectBug: Bool) throws {
        var c = Self.leaseLeader(bugs: injectBug ? .leaseIgnoresMissedTicks : [])
        try c[1].readIndex(context: 5)
        #expect(c[1].ready().readStates.map(\.context) == [5], "the lease holds")
        // Frozen for four election timeouts: the shell delivers a burst of 2 ticks and reports the rest.
        c.isolate(1)
        c.tick(1, times: 2)
        c[1].ticksMissed(4 * c[1].config.electionTimeoutTicks)
        #expect(c[1].role == .leader, "missed ticks fire no timer")
        try c[1].readIndex(context: 6)
        let answered = c[1].ready().readStates.contains { $0.context == 6 }
        #expect(answered == injectBug, injectBug ? "the injected bug answers from the stale lease" : "an aged lease needs a round")
    }

    /// A transfer's vote requests pass the followers' leases. A TimeoutNow acted on late — the
    /// target froze just after it arrived and woke after the leader had given the transfer up —
    /// elects a second leader while the first, whose followers acknowledged its heartbeats until
    /// then, still holds a lease by the count. So a leader that sent TimeoutNow keeps no lease
    /// for the rest of its term; with the injected bug it answers a lease read after the new
    /// leader committed a write.
    @Test(arguments: [false, true])
    func section6_4_1_aTransferForfeitsTheLease(injectBug: Bool) throws {
        var c = Self.leaseLeader(bugs: injectBug ? .leaseSurvivesTransfer : [])
        // Node 2 freezes as the TimeoutNow reaches it: the message is held, not delivered.
        c.lose = { $0.type == .timeoutNow }
        try c[1].transferLeadership(to: NodeID(2))
        c.stabilize()
        let held = try #require(c.sent.last { $0.type == .timeoutNow })
        c.lose = { _ in false }
        // The leader gives the transfer up after an election timeout, heartbeating all along.
        c.tickAll(times: c[1].config.electionTimeoutTicks + 1)
        #expect(c[1].role == .leader && c[1].transferTarget.isNone)
        // Node 2 wakes and campaigns; node 3 grants the transfer vote despite its lease.
        c.cut = [[1, 2], [2, 1], [1, 3], [3, 1]]
        c[2].step(held)
        c.stabilize()
        #expect(c[2].role == .leader, "the late TimeoutNow elected node 2")
        c.propose(2, [9])
        c.stabilize()
        #expect(c[2].commitIndex > c[1].commitIndex, "the new leader committed a write node 1 never saw")
        try c[1].readIndex(context: 7)
        let answered = c[1].ready().readStates.contains { $0.context == 7 }
        #expect(answered == injectBug, injectBug ? "the injected bug answers from a lease a transfer voided" : "a leader that sent TimeoutNow needs a round")
    }

    /// Three nodes, node 3 cut off while the leader commits ten entries (16-byte snapshot chunks).
    func clusterWithLaggingFollower() -> TestCluster {
        var c = TestCluster(size: 3) { $0.snapshotChunkBytesMax = 16 }
        c.elect(1)
        c.isolate(3)
        for _ in 0..<10 { c.propose(1, [1, 2, 3]) }
        c.stabilize()
        return c
    }

    @Test func section7_compactedFollowerCatchesUpByChunkedSnapshot() {
        var c = clusterWithLaggingFollower()
        let applied = c[1].appliedIndex
        #expect(applied >= LogIndex(10))
        let data = [UInt8](repeating: 0xAB, count: 100)
        c[1].compact(upTo: applied, snapshotData: data)
        try! c.stores[0].deletePrefix(through: applied)
        #expect(c[1].firstIndex == applied.next)
        c.heal()
        c.sent.removeAll()
        c.tickAll(times: 20)
        let chunks = c.sent.filter { $0.type == .snapshot && $0.to == NodeID(3) }
        #expect(chunks.count >= 100 / 16, "sent in chunks")
        #expect(chunks.allSatisfy { ($0.snapshot?.data.count ?? 0) <= 16 })
        #expect(c[3].compactedPosition.index == applied)
        #expect(c[3].latestSnapshot?.data == data)
        #expect(c[3].lastIndex == c[1].lastIndex)
        #expect(c[3].commitIndex == c[1].commitIndex)
    }

    /// Chunks can arrive twice — a heartbeat answer resends the chunk in flight, and a network
    /// may duplicate — and a duplicate must not restart the transfer. With every chunk delivered
    /// twice the follower still catches up, and the chunks sent stay within a small multiple of
    /// the snapshot's ten. (Before the fix a duplicate was refused with "start over": every
    /// refusal sent the first chunk again and the chunks in flight multiplied; the simulator saw
    /// followers that never caught up once mesh state made snapshots span several chunks.)
    @Test func section7_duplicatedChunksDoNotRestartTheTransfer() {
        var c = clusterWithLaggingFollower()
        let applied = c[1].appliedIndex
        let data = (0..<160).map { UInt8($0) }
        c[1].compact(upTo: applied, snapshotData: data)
        try! c.stores[0].deletePrefix(through: applied)
        c.heal()
        c.sent.removeAll()
        c.duplicate = { $0.type == .snapshot }
        // While the transfer is under way the leader names the index it needs kept.
        var floorSeen: LogIndex?
        for _ in 0..<20 where floorSeen == nil {
            for k in c.cores.indices { c.cores[k].tick() }
            _ = c.settle(roundsMax: 2, queuedMax: 1000)
            floorSeen = c[1].snapshotTransferFloor
        }
        #expect(floorSeen == applied, "the leader says which snapshot index a transfer needs kept")
        var settled = true
        for _ in 0..<20 where settled {
            for k in c.cores.indices { c.cores[k].tick() }
            settled = c.settle(roundsMax: 200, queuedMax: 1000)
        }
        #expect(settled, "the transfer kept multiplying chunks")
        #expect(c[3].latestSnapshot?.data == data)
        #expect(c[3].commitIndex == c[1].commitIndex)
        let chunks = c.sent.filter { $0.type == .snapshot && $0.to == NodeID(3) }.count
        #expect(chunks <= 40, "\(chunks) chunks sent for a 10-chunk snapshot")
        #expect(c[1].snapshotTransferFloor == nil, "no transfer once the follower caught up")
    }

    /// A snapshot the follower's `snapshotCheck` refuses (its SHA-256 does not match, in the
    /// node) replaces nothing. The leader's own bytes were damaged after they were sealed: sent
    /// again they would be refused forever (as they were before the leader learnt to drop them).
    /// The follower says so; the leader drops its bytes, wants them built again, and the new copy
    /// is installed.
    @Test func section7_aDamagedSnapshotIsRefusedAndBuiltAgain() {
        var c = clusterWithLaggingFollower()
        let applied = c[1].appliedIndex
        let data = (0..<100).map { UInt8($0) }
        var damaged = data
        damaged[37] ^= 0x40
        c[1].compact(upTo: applied, snapshotData: damaged)
        try! c.stores[0].deletePrefix(through: applied)
        let arrivals = Counter()
        c.cores[2].snapshotCheck = { bytes in _ = arrivals.next(); return bytes == data }
        c.heal()
        c.sent.removeAll()
        var rebuilt = 0
        for _ in 0..<40 {
            // Bounded delivery: before the fix the same bytes went back and forth without end.
            for k in c.cores.indices { c.cores[k].tick() }
            _ = c.settle(roundsMax: 200, queuedMax: 1000)
            if c[1].snapshotDataWanted {
                rebuilt += 1
                c[1].attachSnapshot(at: c[1].appliedIndex, data: data)
            }
        }
        #expect(c[3].snapshotsRefusedByCheck == 1)
        #expect(c[1].snapshotsReportedDamaged == 1)
        #expect(rebuilt == 1, "the leader asked for its bytes once")
        #expect(arrivals.value == 2, "one refused copy, one installed")
        #expect(c.sent.contains { $0.type == .snapshotResponse && $0.from == NodeID(3) && $0.reject && $0.context == RaftCore.snapshotDamagedContext }, "told the leader")
        #expect(c[3].latestSnapshot?.data == data)
        #expect(c[3].commitIndex == c[1].commitIndex)
    }

    /// A follower gathers at most `snapshotBytesMax` bytes of snapshot: a larger one is refused
    /// (memory stays bounded) and the follower does not install it.
    @Test func section7_snapshotOverTheFollowersBoundIsRefused() {
        var c = TestCluster(size: 3) { $0.snapshotChunkBytesMax = 16; $0.snapshotBytesMax = $0.id == NodeID(3) ? 64 : 1 << 30 }
        c.elect(1)
        c.isolate(3)
        for _ in 0..<10 { c.propose(1, [1, 2, 3]) }
        c.stabilize()
        let applied = c[1].appliedIndex
        c[1].compact(upTo: applied, snapshotData: [UInt8](repeating: 7, count: 100))
        try! c.stores[0].deletePrefix(through: applied)
        c.heal()
        c.sent.removeAll()
        for _ in 0..<5 {
            for k in c.cores.indices { c.cores[k].tick() }
            _ = c.settle(roundsMax: 50, queuedMax: 1000)
        }
        #expect(c[3].latestSnapshot == nil)
        #expect(c[3].commitIndex < c[1].commitIndex)
        #expect(c.sent.contains { $0.type == .snapshotResponse && $0.reject && $0.context == UInt64.max }, "refused outright")
        #expect(!c.sent.contains { $0.type == .snapshot && $0.to == NodeID(3) && ($0.snapshot?.offset ?? 0) > 64 })
        // The leader stops sending that snapshot (no endless restart) and says who refused it.
        #expect(c[1].peersRefusingSnapshot == [NodeID(3)])
        #expect(c[1].snapshotTransferFloor == nil)
        c.sent.removeAll()
        for _ in 0..<10 {
            for k in c.cores.indices { c.cores[k].tick() }
            _ = c.settle(roundsMax: 50, queuedMax: 1000)
        }
        #expect(!c.sent.contains { $0.type == .snapshot }, "nothing more is sent until a newer snapshot")
    }

    /// A transfer resumes only from the same leader in the same term: a leader elected again
    /// (perhaps restarted with another build, encoding the same position differently) starts
    /// over, so bytes of two encodings are never spliced.
    @Test func section7_aTransferResumesOnlyInTheSameTerm() {
        let c = TestCluster(size: 3)
        var f = c[3]
        let position = LogPosition(index: LogIndex(50), term: Term(1))
        func chunk(term: UInt64, offset: Int, _ data: [UInt8]) -> Message {
            var m = Message(type: .snapshot, from: NodeID(1), to: NodeID(3), term: Term(term))
            m.snapshot = SnapshotChunkMessage(position: position, membership: c[1].membership, offset: offset, data: data, isLast: false)
            return m
        }
        f.step(chunk(term: 1, offset: 0, [1, 2, 3]))
        f.step(chunk(term: 1, offset: 3, [4, 5, 6]))
        f.step(chunk(term: 2, offset: 6, [7, 8, 9]))
        let replies = f.ready().messages.filter { $0.type == .snapshotResponse }.map { ($0.reject, $0.context) }
        #expect(replies.count == 3)
        #expect(replies.prefix(2).map(\.1) == [3, 6] && replies.prefix(2).allSatisfy { !$0.0 }, "same term: the transfer goes on")
        #expect(replies.last! == (true, 0), "a new term: start over")
    }

    /// The node compacts without building bytes (its state tables are the snapshot) and builds
    /// them only when a follower needs them: nothing is sent until they are attached, then the
    /// follower catches up from the attached (newer) snapshot.
    @Test func section7_snapshotBytesAreBuiltOnDemand() {
        var c = clusterWithLaggingFollower()
        let compactedAt = c[1].appliedIndex
        c[1].compact(upTo: compactedAt, snapshotData: [])
        try! c.stores[0].deletePrefix(through: compactedAt)
        for _ in 0..<3 { c.propose(1, [4]) }
        c.stabilize()
        #expect(!c[1].snapshotDataWanted, "nobody needs a snapshot yet")
        c.heal()
        c.sent.removeAll()
        c.tickAll(times: 20)
        #expect(!c.sent.contains { $0.type == .snapshot }, "no bytes, nothing to send")
        #expect(c[1].snapshotDataWanted)
        let builtAt = c[1].appliedIndex
        #expect(builtAt > compactedAt)
        let data = [UInt8](repeating: 0xCD, count: 40)
        c[1].attachSnapshot(at: builtAt, data: data)
        #expect(!c[1].snapshotDataWanted)
        #expect(c[1].compactedPosition.index == compactedAt, "attaching does not compact further")
        // A later compaction (no bytes of its own) up to the attached point keeps the bytes.
        c[1].compact(upTo: builtAt, snapshotData: [])
        #expect(c[1].latestSnapshot?.data == data && c[1].latestSnapshot?.position.index == builtAt)
        c.tickAll(times: 20)
        c.stabilize()
        #expect(c[3].compactedPosition.index == builtAt, "the follower installed the attached snapshot")
        #expect(c[3].latestSnapshot?.data == data)
        #expect(c[3].lastIndex == c[1].lastIndex)
    }

    @Test func section7_restartRebuildsFromTheStore() throws {
        var c = TestCluster(size: 3)
        c.elect(1)
        for _ in 0..<5 { c.propose(1) }
        c.stabilize()
        let before = c[2]
        let state = try RaftRestartState.load(from: c.stores[1], snapshot: nil)
        let rebuilt = RaftCore(config: before.config, random: SeededRandom(seed: 9), restart: state)
        #expect(rebuilt.term == before.term)
        #expect(rebuilt.vote == before.vote)
        #expect(rebuilt.lastIndex == before.lastIndex)
        #expect(rebuilt.commitIndex == before.commitIndex)
        #expect(rebuilt.appliedIndex == .zero, "the state machine is rebuilt by re-applying")
    }

    @Test func ready_onlyCommittedEntriesAreApplied() {
        var c = TestCluster(size: 3)
        c.elect(1)
        c.isolate(2); c.isolate(3)
        c.propose(1)
        c.processReady(1)
        let rd = c[1].ready()
        #expect(rd.committedEntries.allSatisfy { $0.index <= c[1].commitIndex })
        #expect(c[1].commitIndex < c[1].lastIndex)
    }
}

/// Beyond the paper's fault model, but asked of Synod: a follower whose disk was wiped restarts
/// empty. The leader's record of what it acknowledged is then wrong; it must notice from the
/// follower's rejection hint and catch it up (by snapshot when the log was compacted) instead of
/// probing at its stale match index forever.
@Test func wipedFollowerIsCaughtUpAgain() throws {
    var c = TestCluster(size: 3)
    c.elect(1)
    for _ in 0..<10 { c.propose(1, [7]) }
    c.stabilize()
    let applied = c[1].appliedIndex
    c[1].compact(upTo: applied, snapshotData: [1, 2, 3])
    try c.stores[0].deletePrefix(through: applied)
    #expect(c[1].matchIndex(of: NodeID(3)) == applied)
    // Node 3 loses its disk and restarts empty (it bootstraps the same membership).
    let wiped = MemoryStore()
    try wiped.write(LogWrite(hardState: .initial, membership: c[3].membership))
    c.stores[2] = wiped
    c[3] = RaftCore(config: c[3].config, random: SeededRandom(seed: 77), restart: try RaftRestartState.load(from: wiped, snapshot: nil))
    for _ in 0..<3 { c.propose(1, [8]) }
    c.tickAll(times: 30)
    c.stabilize()
    #expect(c[3].lastIndex == c[1].lastIndex, "the wiped follower must be caught up")
    #expect(c[3].compactedPosition.index == applied, "through the leader's snapshot")
}

/// Dissertation §6.3: client sessions make retried commands exactly-once.
@Suite struct ClientSessionTests {
    @Test func section6_3_newRetryAndStaleCommandsAreTold() {
        var s = ClientSessions<String>(sessionsMax: 2)
        #expect(s.check(client: 7, seq: 1) == .new)
        s.record(client: 7, seq: 1, result: "ok", at: LogIndex(1))
        #expect(s.check(client: 7, seq: 1) == .duplicate("ok"))
        #expect(s.check(client: 7, seq: 2) == .new)
        s.record(client: 7, seq: 2, result: "two", at: LogIndex(2))
        #expect(s.check(client: 7, seq: 1) == .stale)
    }

    @Test func section6_3_sessionsAreBoundedAndExpireTheLeastRecentlyUsed() {
        var s = ClientSessions<Int>(sessionsMax: 2)
        s.record(client: 1, seq: 1, result: 1, at: LogIndex(1))
        s.record(client: 2, seq: 1, result: 2, at: LogIndex(2))
        s.record(client: 1, seq: 2, result: 3, at: LogIndex(3))
        s.record(client: 3, seq: 1, result: 4, at: LogIndex(4))
        #expect(s.sessions.map(\.client) == [1, 3], "client 2 was least recently used")
    }
}

/// Found by the simulator (3 nodes, seed 2239 of `--faults heavy --clients 16`): a follower whose
/// log already holds a snapshot's last entry keeps its log, so it must acknowledge only the
/// snapshot's index; acknowledging its last index let the leader count stale entries after it
/// as matched and tell the follower to commit them.
@Suite struct SnapshotRegressionTests {
    @Test func section7_snapshotOverAMatchingLogAcknowledgesOnlyTheSnapshotIndex() throws {
        // A follower that holds entries 1...4 of term 1 but knows only entry 1 committed
        // (it missed the messages that carried the commit index). Entries 3 and 4 were never
        // committed; the new leader of term 2 has a different future after entry 2.
        let ids = [NodeID(1), NodeID(2), NodeID(3)]
        let entries = (1...4).map { Entry(index: LogIndex(UInt64($0)), term: Term(1), payload: [UInt8($0)]) }
        let state = RaftRestartState(hardState: HardState(term: Term(1), vote: .none, commit: LogIndex(1)),
                                     compacted: .zero, entries: entries,
                                     membership: try Membership(voters: ids), snapshot: nil)
        var follower = RaftCore(config: RaftConfig(id: NodeID(3)), random: SeededRandom(seed: 1), restart: state)
        // The leader of term 2 compacted through entry 2 and sends that snapshot.
        var m = Message(type: .snapshot, from: NodeID(2), to: NodeID(3), term: Term(2))
        m.snapshot = SnapshotChunkMessage(position: LogPosition(index: LogIndex(2), term: Term(1)),
                                          membership: try Membership(voters: ids), offset: 0, data: [7], isLast: true)
        follower.step(m)
        let ack = follower.ready().messages.last!
        #expect(ack.type == .appendResponse && !ack.reject)
        #expect(ack.index == LogIndex(2), "acknowledge the snapshot, never the stale entries after it")
        #expect(follower.commitIndex == LogIndex(2))
    }
}

/// A thread-safe counter for `@Sendable` test closures.
final class Counter: Sendable {
    private let count = Atomic<Int>(0)
    var value: Int { count.load(ordering: .relaxed) }
    func next() -> Int { count.add(1, ordering: .relaxed).newValue }
}
