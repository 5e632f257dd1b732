import SynodCore
import SynodCrypto
import SynodPBFT
import Testing

/// §4.3 checkpoints and garbage collection; §4.4 view changes; TOCS §6.2 state transfer.
@Suite("pBFT §4.3 checkpoints, §4.4 view change, state transfer")
struct CheckpointAndViewChangeTests {
    /// Runs `count` requests through the cluster, one at a time from the client.
    static func drive(_ c: inout Cluster, _ count: Int, first: UInt8 = 1) {
        for k in 0..<count {
            _ = c.clients[0].invoke([first &+ UInt8(k)])
            c.run()
            var guardTicks = 0
            while c.clients[0].isBusy && guardTicks < 400 { c.tick(1); guardTicks += 1 }
        }
    }

    @Test("every K sequence numbers a checkpoint becomes stable with 2f+1; the log below is collected")
    func checkpointStableAndGC() {
        var c = Cluster { $0.checkpointInterval = 4; $0.logWindow = 8; $0.inflightBatchesMax = 1 }
        Self.drive(&c, 9)
        for r in c.replicas {
            #expect(r.lowWatermark == SequenceNumber(8))
            #expect(r.stableProof.count >= 3)
            #expect(Set(r.stableProof.map(\.stateDigest)).count == 1)
            #expect(r.slotCount <= 1) // only sequence 9 is above h
            #expect(r.highWatermark == SequenceNumber(16))
        }
    }

    @Test("with its log window full and no stable checkpoint, the primary stops assigning")
    func windowBlocksWithoutCheckpoints() {
        // n3 and n4 drop checkpoints: only 2 < 2f+1 CHECKPOINT messages, so h never moves.
        var c = Cluster { $0.checkpointInterval = 2; $0.logWindow = 4; $0.inflightBatchesMax = 8; $0.batchRequestsMax = 1 }
        c.filter = { e in if case .checkpoint = e.message, e.from != .replica(NodeID(1)), e.from != .replica(NodeID(2)) { return false }; return true }
        for t in 1...8 { c.replicas[0].propose(c.request(UInt64(t), [UInt8(t)])) }
        c.run()
        #expect(c.replicas[0].lowWatermark == .zero)
        #expect(c.sequences(1) == [1, 2, 3, 4])
    }

    @Test("a silent primary: backups time out, install view 1 (primary n2) and execute the request")
    func viewChangeOnSilentPrimary() {
        var c = Cluster()
        c.filter = without([1])
        _ = c.clients[0].invoke([5])
        c.tick(120)
        for i in 1..<4 {
            #expect(c.replicas[i].view == View(1))
            #expect(c.replicas[i].isViewActive)
            #expect(c.sequences(i) == [1])
        }
        #expect(c.accepted == [[5]])
    }

    /// Found on real processes (`BFTNemesisTests`): a backup cut off from its peers timed out
    /// alone and waited in view 1 while the others, never suspecting their primary, went on in
    /// view 0 — it dropped all of view 0's messages and stayed behind for good.
    @Test("a backup that changed views alone follows the others' decisions in their view without voting, and rejoins at their next view change")
    func loneViewChangeFollows() {
        var c = Cluster()
        c.replicas[0].propose(c.request(1, [1]))
        c.run()
        #expect(c.sequences(3) == [1])
        // n4 alone holds request 2 and hears nobody: it suspects the primary, by itself.
        c.filter = without([4])
        c.replicas[3].propose(c.request(2, [2]))
        c.tick(120)
        #expect(c.replicas[3].view == View(1) && !c.replicas[3].isViewActive)
        #expect(c.replicas[0].view == .zero && c.replicas[0].isViewActive)
        // Healed: the others order requests 2...5 in view 0; n4 executes them from their commits.
        c.filter = { _ in true }
        for t in 2...5 { c.replicas[0].propose(c.request(UInt64(t), [UInt8(t)])) }
        c.run()
        for i in 0..<4 { #expect(c.state[i] == [[1], [2], [3], [4], [5]], "replica \(i + 1)") }
        #expect(c.sequences(3) == c.sequences(0))
        #expect(c.replicas[3].view == View(1) && !c.replicas[3].isViewActive, "n4 must not return to view 0")
        // It sent no PREPARE or COMMIT in view 0 after its VIEW-CHANGE.
        let voted = c.sent.contains { e in
            switch e.message {
            case let .prepare(p): return p.replica == NodeID(4) && p.sequence.rawValue > 1
            case let .commit(m): return m.replica == NodeID(4) && m.sequence.rawValue > 1
            default: return false
            }
        }
        #expect(!voted)
        // The primary dies: n2 and n3 join n4's view 1, and all three go on in it.
        c.filter = without([1])
        c.replicas[1].propose(c.request(6, [6]))
        c.replicas[2].propose(c.request(6, [6]))
        c.replicas[3].propose(c.request(6, [6]))
        c.tick(120)
        for i in 1..<4 {
            #expect(c.replicas[i].view == View(1) && c.replicas[i].isViewActive, "replica \(i + 1)")
            #expect(c.state[i] == [[1], [2], [3], [4], [5], [6]], "replica \(i + 1)")
        }
    }

    /// What the others committed while the lone replica was cut off reaches it again through
    /// STATUS retransmission, though no new request comes (a quiet cluster): without it, the
    /// replica waits for the next stable checkpoint. Found by the BFT simulator's lone isolation.
    @Test("a backup that changed views alone gets what it missed while cut off, with no new request", arguments: [false, true])
    func loneViewChangeCatchesUpWhenQuiet(bug: Bool) {
        var c = Cluster { if bug { $0.bugs = .skipRetransmitToLaterView } }
        c.replicas[0].propose(c.request(1, [1]))
        c.run()
        c.filter = without([4])
        c.replicas[3].propose(c.request(2, [2]))
        c.replicas[0].propose(c.request(2, [2]))
        c.replicas[0].propose(c.request(3, [3]))
        c.tick(120)
        #expect(c.state[0] == [[1], [2], [3]])
        #expect(c.replicas[3].view == View(1) && !c.replicas[3].isViewActive)
        #expect(c.replicas[0].view == .zero && c.replicas[0].isViewActive)
        c.filter = { _ in true }
        c.tick(60)
        if bug {
            #expect(c.state[3] == [[1]], "without retransmission n4 stays behind")
        } else {
            #expect(c.state[3] == [[1], [2], [3]])
            #expect(c.sequences(3) == c.sequences(0))
        }
    }

    /// The pre-prepare came before the lone view change and the commits after it: the batch is
    /// taken from the slot the view change left, and the commits from wherever they were kept.
    @Test("a backup that changed views alone executes a batch whose pre-prepare came before its view change and whose commits came after")
    func loneViewChangeUsesEarlierPrePrepare() {
        var c = Cluster()
        var held: [PBFTEnvelope] = []
        c.filter = { e in
            if case .commit = e.message, e.to == .replica(NodeID(4)) { held.append(e); return false }
            return true
        }
        c.replicas[0].propose(c.request(1, [1]))
        c.run()
        #expect(c.state[0] == [[1]] && c.state[3] == [])
        // n4 never sees the batch execute: it suspects the primary, alone.
        c.tick(120)
        #expect(c.replicas[3].view == View(1) && !c.replicas[3].isViewActive)
        #expect(c.replicas[0].view == .zero && c.replicas[0].isViewActive)
        c.filter = { _ in true }
        for e in held { c.deliver(e) }
        c.run()
        #expect(c.state[3] == [[1]])
    }

    @Test("a request prepared in view 0 keeps its sequence number and digest in view 1")
    func preparedSurvivesViewChange() {
        var c = Cluster()
        // Commits are lost and n1 dies after the prepare phase: the request is prepared at 2f+1.
        c.filter = { e in if case .commit = e.message { return false }; return true }
        _ = c.clients[0].invoke([3])
        c.run()
        c.filter = { e in
            if e.from == .replica(NodeID(1)) || e.to == .replica(NodeID(1)) { return false }
            if case let .commit(m) = e.message, m.view == .zero { return false }
            return true
        }
        c.tick(120)
        for i in 1..<4 {
            #expect(c.replicas[i].view >= View(1))
            #expect(c.executed[i].first?.0 == SequenceNumber(1))
            #expect(c.executed[i].first?.1 == [[3]])
        }
    }

    @Test("view-change timers back off exponentially across consecutive view changes")
    func backoff() {
        var c = Cluster { $0.viewChangeTimeoutTicks = 10; $0.viewChangeTimeoutTicksMax = 1000 }
        // The primaries of views 0, 1 and 2 never get a pre-prepare or NEW-VIEW through.
        c.filter = { e in
            guard let from = e.from.replicaID, from.rawValue <= 3 else { return true }
            switch e.message {
            case .prePrepare, .newView: return false
            default: return true
            }
        }
        _ = c.clients[0].invoke([1])
        c.run()
        var starts: [Int] = []
        var last = c.replicas[2].viewChangesStarted
        for t in 1...200 {
            c.tick(1)
            if c.replicas[2].viewChangesStarted != last { starts.append(t); last = c.replicas[2].viewChangesStarted }
        }
        #expect(starts.count >= 3)
        let gaps = zip(starts.dropFirst(), starts).map { $0 - $1 }
        #expect(gaps.count >= 2)
        #expect(gaps[1] > gaps[0])
    }

    @Test("a backup whose timer fires alone waits in view 1: it cannot race ahead without 2f+1")
    func loneBackupWaits() {
        var c = Cluster()
        c.filter = { e in !(e.from == .replica(NodeID(4)) && { if case .request = e.message { return true }; return false }()) }
        c.replicas[3].propose(c.request(1, [1]))
        c.tick(600)
        #expect(c.replicas[3].view == View(1))
        #expect(!c.replicas[3].isViewActive)
        for i in 0..<3 { #expect(c.replicas[i].view == .zero) }
    }

    @Test("NEW-VIEW fills gaps with null requests; backups recompute it and accept")
    func nullRequests() {
        var c = Cluster { $0.inflightBatchesMax = 3; $0.batchRequestsMax = 1 }
        // Sequence 1's pre-prepare reaches nobody; 2 is prepared everywhere (its commits lost).
        c.filter = { e in
            if case let .prePrepare(pp) = e.message, pp.sequence == SequenceNumber(1), pp.view == .zero { return false }
            if case let .commit(m) = e.message, m.view == .zero { return false }
            return true
        }
        c.replicas[0].propose(c.request(1, [1]))
        c.replicas[0].propose(c.request(2, [2]))
        c.run()
        c.filter = { e in
            if e.from == .replica(NodeID(1)) || e.to == .replica(NodeID(1)) { return false }
            if case let .prePrepare(pp) = e.message, pp.view == .zero { return false }
            return true
        }
        c.tick(150)
        for i in 1..<4 {
            #expect(c.replicas[i].view >= View(1))
            let s1 = c.executed[i].first { $0.0 == SequenceNumber(1) }
            let s2 = c.executed[i].first { $0.0 == SequenceNumber(2) }
            #expect(s2?.1 == [[2]])
            #expect(s1 != nil)
        }
    }

    @Test("a replica cut off past a stable checkpoint fetches the certified state and resumes")
    func stateTransfer() {
        var c = Cluster { $0.checkpointInterval = 4; $0.logWindow = 8; $0.inflightBatchesMax = 1 }
        c.filter = without([4])
        Self.drive(&c, 12)
        #expect(c.replicas[3].lastExecuted == .zero)
        c.filter = { _ in true }
        c.tick(40)
        #expect(c.replicas[3].stateTransfers == 1)
        #expect(c.replicas[3].lastExecuted >= SequenceNumber(12))
        #expect(c.state[3] == c.state[0])
        Self.drive(&c, 1, first: 100)
        #expect(c.state[3] == c.state[0])
    }

    /// n4 holds 2f+1 CHECKPOINT votes for 4 that the others never collected (each got only
    /// its own: as when a faulty replica's MACs to them are bad but to n4 good). They must still
    /// serve the state they computed, or n4 fetches forever and, fetching, executes nothing.
    /// Found by the BFT simulator (f=1, a forging replica: seed 293).
    @Test("a lagging replica fetches a checkpoint its certifiers have not seen become stable", arguments: [false, true])
    func fetchesCheckpointNotYetStableElsewhere(bug: Bool) {
        var c = Cluster { $0.checkpointInterval = 4; $0.logWindow = 8; $0.inflightBatchesMax = 1; if bug { $0.bugs = .serveOnlyStableCheckpoint } }
        c.filter = { e in
            let toL = e.to.replicaID == NodeID(4), fromL = e.from.replicaID == NodeID(4)
            switch e.message {
            case .checkpoint: return toL
            case .fetchState: return fromL
            case .stateTransfer: return toL
            default: return !toL && !fromL
            }
        }
        Self.drive(&c, 4)
        c.tick(40)
        #expect(c.replicas[0].lastExecuted == SequenceNumber(4))
        #expect(c.replicas[0].lowWatermark == .zero, "n1 never saw 4 become stable")
        if bug {
            #expect(c.replicas[3].isFetchingState && c.replicas[3].stateTransfers == 0)
        } else {
            #expect(c.replicas[3].stateTransfers == 1)
            #expect(c.replicas[3].lastExecuted == SequenceNumber(4))
            #expect(c.state[3] == c.state[0])
        }
    }

    /// n4 learns that checkpoint 4 is certified (2f+1 CHECKPOINT votes) before it holds the
    /// batches, and no certifier will answer its FETCH-STATE. Retransmitted, the batches commit
    /// at n4: it must execute them while still fetching, reach 4 itself, and make 4 stable from
    /// its own checkpoint (checked against the certified digest). With the bug it executes
    /// nothing while fetching and stays behind.
    @Test("a replica fetching state still executes the batches it commits itself", arguments: [false, true])
    func executesWhileFetching(bug: Bool) {
        var c = Cluster { $0.checkpointInterval = 4; $0.logWindow = 8; $0.inflightBatchesMax = 1; if bug { $0.bugs = .noExecutionWhileFetching } }
        c.filter = { e in
            let toL = e.to.replicaID == NodeID(4), fromL = e.from.replicaID == NodeID(4)
            if case .checkpoint = e.message { return toL }
            return !toL && !fromL
        }
        Self.drive(&c, 4)
        c.tick(2)
        #expect(c.replicas[3].isFetchingState && c.replicas[3].lastExecuted == .zero, "n4 knows 4 is certified and holds nothing")
        // Everything flows again but checkpoints to the others (they never see 4 stable) and
        // state transfer (no certifier serves it).
        c.filter = { e in
            switch e.message {
            case .checkpoint: return e.to.replicaID == NodeID(4)
            case .fetchState, .stateTransfer: return false
            default: return true
            }
        }
        c.tick(40)
        if bug {
            #expect(c.replicas[3].isFetchingState && c.replicas[3].lastExecuted == .zero)
        } else {
            #expect(!c.replicas[3].isFetchingState)
            #expect(c.replicas[3].stateTransfers == 0, "it got there by executing, not by a transfer")
            #expect(c.replicas[3].lastExecuted == SequenceNumber(4))
            #expect(c.replicas[3].lowWatermark == SequenceNumber(4), "its own checkpoint matched the certified one")
            #expect(c.state[3] == c.state[0])
        }
    }

    @Test("fetched state that does not match the certified digest is refused")
    func corruptStateRefused() {
        var c = Cluster { $0.checkpointInterval = 4; $0.logWindow = 8; $0.inflightBatchesMax = 1 }
        c.filter = without([4])
        Self.drive(&c, 8)
        c.filter = { e in
            if case .stateTransfer = e.message { return false } // n4 only ever sees corrupt state
            return true
        }
        c.tick(15)
        #expect(c.replicas[3].isFetchingState)
        let auth = c.auth[.replica(NodeID(1))]!
        let msg = PBFTMessage.stateTransfer(StateTransfer(sequence: SequenceNumber(8), state: [1, 2, 3], replica: NodeID(1)))
        c.replicas[3].step(PBFTEnvelope(from: .replica(NodeID(1)), to: .replica(NodeID(4)), message: msg,
                                         mac: auth.mac(msg.signedBytes, to: .replica(NodeID(4)))))
        #expect(c.replicas[3].ready().stateToInstall == nil)
        #expect(c.replicas[3].stateTransfers == 0)
    }

    @Test("a VIEW-CHANGE with a fabricated prepared certificate is refused")
    func bogusViewChange() {
        var c = Cluster()
        let byz = c.auth[.replica(NodeID(4))]!
        var pp = PrePrepare(view: .zero, sequence: SequenceNumber(1), digest: byz.batchDigest([]), requests: [], primary: NodeID(1))
        pp.signature = byz.sign(pp.signedBytes) // not n1's signature
        let prepares = [2, 3].map { r -> Prepare in
            var p = Prepare(view: .zero, sequence: SequenceNumber(1), digest: pp.digest, replica: NodeID(UInt64(r)))
            p.signature = Array(repeating: 7, count: 64)
            return p
        }
        var vc = ViewChange(newView: View(1), stableSequence: .zero, checkpointProof: [],
                            prepared: [PreparedCertificate(prePrepare: pp, prepares: prepares)], replica: NodeID(4))
        vc.signature = byz.sign(vc.signedBytes)
        // n2 (primary of view 1) plus n3 change view; with n4's bogus message it would have 2f+1.
        c.filter = without([1])
        c.replicas[1].step(PBFTEnvelope(from: .replica(NodeID(4)), to: .replica(NodeID(2)), message: .viewChange(vc)))
        c.replicas[2].step(PBFTEnvelope(from: .replica(NodeID(4)), to: .replica(NodeID(3)), message: .viewChange(vc)))
        c.filter = without([1, 4])
        _ = c.clients[0].invoke([1])
        c.tick(80)
        // Only n2 and n3 take part: no NEW-VIEW can form without n4's (refused) view change.
        #expect(!c.replicas[1].isViewActive || c.replicas[1].view == .zero)
    }
}

/// A replica restarted without its protocol state (`PBFTAmnesia`) must not contradict votes it
/// forgot: no normal-case vote in a view it may have voted in, no view change before its stable
/// checkpoint passes what it may have prepared; it votes again after both.
@Suite("pBFT restart without protocol state")
struct AmnesiaTests {
    static func votes(_ sent: [PBFTEnvelope], from id: UInt64) -> [PBFTMessage] {
        sent.filter { $0.from == .replica(NodeID(id)) }.map(\.message).filter {
            switch $0 {
            case .prePrepare, .prepare, .commit, .viewChange, .newView: return true
            default: return false
            }
        }
    }

    @Test("withholds votes in views it may have voted in; votes again from the next view once caught up")
    func withholdsThenRejoins() {
        var c = Cluster { cfg in
            cfg.checkpointInterval = 2
            cfg.logWindow = 4
            cfg.viewChangeTimeoutTicks = 6
            if cfg.id == NodeID(4) { cfg.amnesia = PBFTAmnesia(sequenceThrough: SequenceNumber(4), viewThrough: View(0)) }
        }
        CheckpointAndViewChangeTests.drive(&c, 8)
        #expect(c.sequences(0).count == 8, "the three others still order requests")
        // No vote for a (view, sequence) pair it may have voted on: view 0, sequence <= 4.
        let early = Self.votes(c.sent, from: 4).filter {
            switch $0 {
            case let .prepare(p): return p.view == View(0) && p.sequence <= SequenceNumber(4)
            case let .commit(x): return x.view == View(0) && x.sequence <= SequenceNumber(4)
            case .viewChange, .newView: return true
            default: return false
            }
        }
        #expect(early.isEmpty, "replica 4 voted where it may have voted before the restart: \(early.map(\.kind))")
        #expect(c.replicas[3].withheldMessages > 0)
        // Above the sequence bound the pair is new: it votes there even in view 0.
        #expect(Self.votes(c.sent, from: 4).contains { if case let .prepare(p) = $0 { return p.sequence > SequenceNumber(4) } else { return false } })
        // The primary fails: replica 4 (its checkpoint now past sequence 4) joins the view change
        // and votes in view 1.
        c.filter = without([1])
        CheckpointAndViewChangeTests.drive(&c, 4, first: 40)
        let later = Self.votes(c.sent, from: 4)
        #expect(later.contains { if case .viewChange = $0 { return true } else { return false } })
        #expect(later.contains { if case let .prepare(p) = $0 { return p.view > View(0) } else { return false } })
        #expect(c.replicas[3].amnesia == nil)
    }
}

@Suite("pBFT bounds on messages of later views")
struct FutureMessageBoundsTests {
    @Test("one sender flooding later-view messages gets its share only; beyond the horizon nothing is held")
    func floodIsBounded() {
        let c = Cluster()
        var r = c.replicas[1]
        // Replica 3 sends 5,000 (unsigned: they would be checked in their view) pre-prepares for view 5.
        for n in 1...5000 {
            let pp = PrePrepare(view: View(5), sequence: SequenceNumber(UInt64(n)), digest: Digest([1]), requests: [], primary: NodeID(2))
            r.step(PBFTEnvelope(from: .replica(NodeID(3)), to: .replica(NodeID(2)), message: .prePrepare(pp)))
        }
        #expect(r.heldFutureMessages == 1024 / 4)
        // Another sender still gets its share.
        let p = Prepare(view: View(5), sequence: SequenceNumber(1), digest: Digest([1]), replica: NodeID(4))
        r.step(PBFTEnvelope(from: .replica(NodeID(4)), to: .replica(NodeID(2)), message: .prepare(p)))
        #expect(r.heldFutureMessages == 1024 / 4 + 1)
        // Past the view-change horizon nothing is held.
        let far = Prepare(view: View(1_000_000), sequence: SequenceNumber(1), digest: Digest([1]), replica: NodeID(1))
        r.step(PBFTEnvelope(from: .replica(NodeID(1)), to: .replica(NodeID(2)), message: .prepare(far)))
        #expect(r.heldFutureMessages == 1024 / 4 + 1)
    }
}
