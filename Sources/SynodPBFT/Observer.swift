import SynodCore

/// What a replica changing views has seen of one sequence number in older views.
struct ObservedSlot: Sendable {
    /// Pre-prepares signed by the primary of their view, by digest: the first
    /// `PBFTReplica.observedBatchesMax`, and the decided one whenever it comes.
    var batches: [Digest: PrePrepare] = [:]
    /// Each replica's commit of the highest view it sent one in.
    var commits: [NodeID: Commit] = [:]
}

// A replica whose view change nobody joined (it was cut off, timed out alone, and the others
// never suspected their primary) is stuck: the paper has it wait in its higher view until the
// others change views for reasons of their own, dropping everything of the view they still run.
// Until then the cluster has lost one of its f faults' worth of slack, and that replica's state
// falls behind with nothing to bring it back but state transfers at checkpoints.
//
// So while it changes views, the replica follows what the others decide in older views, without
// voting: 2f+1 matching COMMITs (MAC-authenticated, one per replica) for one view, sequence number
// and digest mean f+1 correct replicas prepared that batch, so it is the decision at that sequence
// number in every view (the protocol's safety). It executes such a batch in order once it holds
// a pre-prepare whose requests hash to that digest — the same batch every correct replica runs.
//
// It sends no PREPARE or COMMIT for older views, so the VIEW-CHANGE it already sent still tells
// the truth about everything it voted for, and the view-change safety argument (any 2f+1
// VIEW-CHANGEs include a correct replica that prepared each committed batch) is untouched: the
// replicas that committed these batches are the others. Its timers are left alone too: the
// NEW-VIEW timer runs only once 2f+1 replicas want its view, as before.
extension PBFTReplica {
    /// Most pre-prepares kept per sequence number before its decision is known: an equivocating
    /// primary cannot make a replica hold more (each is at most one batch, `batchBytesMax`).
    static let observedBatchesMax = 2

    mutating func observeOlderView(_ message: PBFTMessage) {
        switch message {
        case let .prePrepare(pp):
            let n = pp.sequence
            guard n > lastExecuted, n <= highWatermark, pp.primary == config.primary(of: pp.view),
                  pp.requests.count <= config.batchRequestsMax,
                  pp.requests.count == 1 || pp.requests.reduce(0, { $0 + $1.sizeBytes }) <= config.batchBytesMax,
                  observed[n]?.batches[pp.digest] == nil else { return }
            let kept = observed[n]?.batches.count ?? 0
            guard kept < Self.observedBatchesMax || Self.decidedDigest(commits(at: n), quorum: config.certificateQuorum) == pp.digest,
                  verify(pp.signature, of: pp.signedBytes, by: .replica(pp.primary)), validBatch(pp) else { return }
            observed[n, default: ObservedSlot()].batches[pp.digest] = pp
        case let .commit(c):
            // The sender was checked against the commit's replica and its MAC verified in `step`.
            guard c.sequence > lastExecuted, c.sequence <= highWatermark else { return }
            if let have = observed[c.sequence]?.commits[c.replica], have.view >= c.view { return }
            observed[c.sequence, default: ObservedSlot()].commits[c.replica] = c
        default:
            return
        }
        executeObserved()
    }

    /// Each replica's newest commit at `n`: those observed since the view change, over those the
    /// slot kept from before it (this replica's own among them, if it committed there).
    func commits(at n: SequenceNumber) -> [NodeID: Commit] {
        var all = slots[n]?.commits ?? [:]
        for (r, c) in observed[n]?.commits ?? [:] where c.view >= all[r]?.view ?? .zero { all[r] = c }
        return all
    }

    /// The batch with digest `d` at `n`: observed, or the pre-prepare or certificate the slot
    /// kept from before the view change (both were checked when they came).
    func batch(at n: SequenceNumber, digest d: Digest) -> PrePrepare? {
        if let pp = observed[n]?.batches[d] { return pp }
        if let pp = slots[n]?.prePrepare, pp.digest == d { return pp }
        if let pp = slots[n]?.certificate?.prePrepare, pp.digest == d { return pp }
        return nil
    }

    /// Executes, in order, every batch after `lastExecuted` that 2f+1 replicas committed in one
    /// view. Also run after a state transfer while changing views (`executeCommitted`).
    mutating func executeObserved() {
        var progressed = false
        while mayExecuteWhileFetching, let d = Self.decidedDigest(commits(at: lastExecuted.next), quorum: config.certificateQuorum),
              let pp = batch(at: lastExecuted.next, digest: d) {
            executeNext(pp)
            progressed = true
        }
        endFetchIfCaughtUp()
        observed = observed.filter { $0.key > lastExecuted && $0.key <= highWatermark }
        if progressed { serveDeferredReads() }
    }

    /// The digest `quorum` replicas committed in one view, if any. At most one can be: each
    /// replica counts once, and two quorums of 2f+1 among 3f+1 replicas would need 4f+2.
    static func decidedDigest(_ commits: [NodeID: Commit], quorum: Int) -> Digest? {
        var votes: [View: [Digest: Int]] = [:]
        for c in commits.values { votes[c.view, default: [:]][c.digest, default: 0] += 1 }
        for byDigest in votes.values { for (d, count) in byDigest where count >= quorum { return d } }
        return nil
    }
}
