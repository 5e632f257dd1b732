import SynodCore
import SynodCrypto
import SynodPBFT
import Testing

/// Castro & Liskov §4.2: pre-prepare, prepare, commit; execution in order; batching; watermarks.
@Suite("pBFT §4.2 normal case")
struct NormalCaseTests {
    @Test("a request reaches every replica at sequence 1; the client accepts f+1 matching replies")
    func normalCase() {
        var c = Cluster()
        _ = c.clients[0].invoke([7])
        c.run()
        for i in 0..<4 { #expect(c.sequences(i) == [1]) }
        #expect(c.accepted == [[7]])
        #expect(c.replicas.allSatisfy { $0.lastExecuted == SequenceNumber(1) && $0.view == .zero })
    }

    @Test("the message pattern of Figure 1: 1 request, 3 pre-prepares, 9 prepares, 12 commits, 4 replies")
    func figureOne() {
        var c = Cluster()
        _ = c.clients[0].invoke([7])
        c.run()
        var counts: [String: Int] = [:]
        for e in c.sent { counts[e.message.kind, default: 0] += 1 }
        #expect(counts["request"] == 1)       // client to primary
        #expect(counts["pre-prepare"] == 3)   // primary to each backup
        #expect(counts["prepare"] == 9)       // each backup to the 3 others
        #expect(counts["commit"] == 12)       // every replica to the 3 others
        #expect(counts["reply"] == 4)         // every replica to the client
        let order = c.sent.map(\.message.kind).reduce(into: [String]()) { if $0.last != $1 { $0.append($1) } }
        #expect(order.prefix(3) == ["request", "pre-prepare", "prepare"])
    }

    @Test("with f silent backups the other 2f+1 still commit")
    func oneSilentBackup() {
        var c = Cluster()
        c.filter = without([4])
        _ = c.clients[0].invoke([1])
        c.run()
        for i in 0..<3 { #expect(c.sequences(i) == [1]) }
        #expect(c.sequences(3).isEmpty)
        #expect(c.accepted.count == 1)
    }

    @Test("with f+1 silent replicas nothing commits (quorums are 2f+1)")
    func twoSilent() {
        var c = Cluster()
        c.filter = without([3, 4])
        _ = c.clients[0].invoke([1])
        c.run()
        #expect(c.executed.allSatisfy { $0.isEmpty })
        #expect(c.accepted.isEmpty)
    }

    @Test("injected bug: with quorums of 2f, two replicas alone commit")
    func twoSilentBuggy() {
        var c = Cluster { $0.bugs = .quorumOfTwoF }
        c.filter = without([3, 4])
        _ = c.clients[0].invoke([1])
        c.run()
        #expect(c.sequences(0) == [1])
    }

    @Test("requests are batched, bounded by count, and executed strictly in order")
    func batching() {
        var c = Cluster(clients: 1) { $0.batchRequestsMax = 3; $0.inflightBatchesMax = 1 }
        for t in 1...10 { c.replicas[0].propose(c.request(UInt64(t), [UInt8(t)])) }
        c.run()
        for i in 0..<4 {
            #expect(c.sequences(i) == Array(1...UInt64(c.executed[i].count)))
            #expect(c.executed[i].allSatisfy { $0.1.count <= 3 })
            #expect(c.state[i] == (1...10).map { [UInt8($0)] })
        }
        #expect(c.executed[0].count >= 4)
    }

    @Test("batches are bounded by bytes (one large request still goes alone)")
    func batchBytes() {
        var c = Cluster { $0.batchBytesMax = 300; $0.inflightBatchesMax = 1 }
        for t in 1...4 { c.replicas[0].propose(c.request(UInt64(t), Array(repeating: UInt8(t), count: 200))) }
        c.run()
        #expect(c.executed[1].allSatisfy { $0.1.count == 1 })
        #expect(c.state[1].count == 4)
    }

    @Test("a pre-prepare whose digest does not match its batch is refused")
    func wrongDigest() {
        var c = Cluster()
        let auth = c.auth[.replica(NodeID(1))]!
        var pp = PrePrepare(view: .zero, sequence: SequenceNumber(1), digest: auth.batchDigest([c.request(1, [1])]),
                            requests: [c.request(1, [2])], primary: NodeID(1))
        pp.signature = auth.sign(pp.signedBytes)
        c.replicas[1].step(PBFTEnvelope(from: .replica(NodeID(1)), to: .replica(NodeID(2)), message: .prePrepare(pp)))
        #expect(c.replicas[1].ready().messages.isEmpty) // no PREPARE sent
    }

    @Test("a pre-prepare not signed by the primary, or from a backup, is refused")
    func forgedPrePrepare() {
        var c = Cluster()
        let backup = c.auth[.replica(NodeID(3))]!
        let reqs = [c.request(1, [1])]
        var pp = PrePrepare(view: .zero, sequence: SequenceNumber(1), digest: backup.batchDigest(reqs), requests: reqs, primary: NodeID(1))
        pp.signature = backup.sign(pp.signedBytes) // signed by n3, claims n1
        c.replicas[1].step(PBFTEnvelope(from: .replica(NodeID(3)), to: .replica(NodeID(2)), message: .prePrepare(pp)))
        #expect(c.replicas[1].ready().messages.isEmpty)
        pp.primary = NodeID(3)
        pp.signature = backup.sign(pp.signedBytes)
        c.replicas[1].step(PBFTEnvelope(from: .replica(NodeID(3)), to: .replica(NodeID(2)), message: .prePrepare(pp)))
        #expect(c.replicas[1].ready().messages.isEmpty)
    }

    @Test("an equivocating primary: a backup keeps the first pre-prepare of a sequence number")
    func equivocation() {
        var c = Cluster()
        let auth = c.auth[.replica(NodeID(1))]!
        for op: UInt8 in [1, 2] {
            let reqs = [c.request(UInt64(op), [op])]
            var pp = PrePrepare(view: .zero, sequence: SequenceNumber(1), digest: auth.batchDigest(reqs), requests: reqs, primary: NodeID(1))
            pp.signature = auth.sign(pp.signedBytes)
            c.replicas[1].step(PBFTEnvelope(from: .replica(NodeID(1)), to: .replica(NodeID(2)), message: .prePrepare(pp)))
        }
        let prepares = c.replicas[1].ready().messages.compactMap { e -> Digest? in
            if case let .prepare(p) = e.message { return p.digest } else { return nil }
        }
        #expect(Set(prepares).count == 1)
    }

    @Test("commits with forged MACs do not count; authentic ones do")
    func forgedCommitMAC() {
        var c = Cluster()
        c.filter = { e in if case .commit = e.message { return false }; return true }
        _ = c.clients[0].invoke([1])
        c.run()
        #expect(c.executed.allSatisfy { $0.isEmpty }) // prepared everywhere, commits all lost
        let digest = c.auth[.replica(NodeID(1))]!.batchDigest([c.clients[0].currentRequest!])
        func commit(from r: UInt64, corrupt: Bool) -> PBFTEnvelope {
            let msg = PBFTMessage.commit(Commit(view: .zero, sequence: SequenceNumber(1), digest: digest, replica: NodeID(r)))
            var mac = c.auth[.replica(NodeID(r))]!.mac(msg.signedBytes, to: .replica(NodeID(1)))
            if corrupt { mac[0] ^= 1 }
            return PBFTEnvelope(from: .replica(NodeID(r)), to: .replica(NodeID(1)), message: msg, mac: mac)
        }
        for r: UInt64 in [2, 3, 4] { c.replicas[0].step(commit(from: r, corrupt: true)) }
        c.flush()
        #expect(c.sequences(0).isEmpty)
        for r: UInt64 in [2, 3] { c.replicas[0].step(commit(from: r, corrupt: false)) }
        c.flush()
        #expect(c.sequences(0) == [1])
    }

    @Test("pre-prepares above the high watermark h+L are ignored")
    func highWatermark() {
        var c = Cluster()
        let auth = c.auth[.replica(NodeID(1))]!
        let reqs = [c.request(1, [1])]
        let h = c.replicas[1].highWatermark
        var pp = PrePrepare(view: .zero, sequence: h.next, digest: auth.batchDigest(reqs), requests: reqs, primary: NodeID(1))
        pp.signature = auth.sign(pp.signedBytes)
        c.replicas[1].step(PBFTEnvelope(from: .replica(NodeID(1)), to: .replica(NodeID(2)), message: .prePrepare(pp)))
        #expect(c.replicas[1].ready().messages.isEmpty)
        #expect(c.replicas[1].slotCount == 0)
    }

    @Test("exactly once: a retransmitted request is not reordered; its cached reply is resent")
    func exactlyOnce() {
        var c = Cluster()
        let r = c.request(1, [9])
        c.replicas[0].propose(r)
        c.run()
        c.replicas[0].propose(r)
        c.replicas[2].propose(r)
        #expect(c.replicas[2].ready().replyResends == [r])
        c.run()
        #expect(c.state[0] == [[9]])
        #expect(c.sequences(0) == [1])
    }

    @Test("a request without a valid client signature is dropped")
    func unsignedRequest() {
        var c = Cluster()
        var r = c.request(1, [1])
        r.signature[5] ^= 0xFF
        c.replicas[0].propose(r)
        c.run()
        #expect(c.executed[0].isEmpty)
    }
}
