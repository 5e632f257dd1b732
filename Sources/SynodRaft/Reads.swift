import SynodCore

// Linearizable reads without writing to the log (dissertation §6.4): ReadIndex with a heartbeat
// round, and the opt-in lease read (§6.4.1).
extension RaftCore {
    /// Asks for a read index. `context` (non-zero) identifies the request in the `ReadState`
    /// that answers it. Only a leader answers; a leader that has not yet committed an entry of
    /// its term queues the request until it has.
    public mutating func readIndex(context: UInt64) throws(RaftError) {
        inputCount &+= 1
        precondition(context != 0, "read context 0 is reserved")
        guard role == .leader else { throw .notLeader(leaderHint: leader) }
        guard pendingReads.count + readsAwaitingCommit.count < config.pendingReadsMax else { throw .busy }
        if log.term(at: log.committed) != term {
            readsAwaitingCommit.append(context)
            return
        }
        startReads([context])
    }

    mutating func startReads(_ contexts: [UInt64]) {
        guard let last = contexts.last else { return }
        let onlyVoter = Quorum.voteResult(membership: membership) { $0 == id ? true : nil } == .won
        if onlyVoter || config.bugs.contains(.readWithoutLeadershipCheck) || (config.leaseReads && leaseIsValid) {
            for c in contexts { readStates.append(ReadState(context: c, index: log.committed)) }
            return
        }
        for c in contexts { pendingReads.append(PendingRead(context: c, index: log.committed, acks: [id])) }
        broadcastHeartbeat(context: last)
    }

    /// A heartbeat answer naming a read: once a quorum answered, that read and every earlier
    /// one are confirmed (leadership was confirmed after they were registered).
    mutating func acknowledgeRead(from peer: NodeID, context: UInt64) {
        guard let at = pendingReads.firstIndex(where: { $0.context == context }) else { return }
        if !pendingReads[at].acks.contains(peer) { pendingReads[at].acks.append(peer) }
        let acks = pendingReads[at].acks
        guard Quorum.voteResult(membership: membership, granted: { acks.contains($0) ? true : nil }) == .won else { return }
        for r in pendingReads[...at] { readStates.append(ReadState(context: r.context, index: r.index)) }
        pendingReads.removeSubrange(...at)
    }

    /// Lease: a quorum answered heartbeats we sent less than
    /// `electionTimeoutTicks - leaseDriftMarginTicks` ticks ago. Those followers will not vote
    /// for anyone else until an election timeout after they received them (check-quorum), so no
    /// other leader can exist yet, provided no clock runs faster than the drift margin allows.
    var leaseIsValid: Bool {
        guard role == .leader, config.checkQuorum, leadTransferee.isNone else { return false }
        let span = UInt64(config.electionTimeoutTicks - config.leaseDriftMarginTicks)
        let now = tickCount + 1
        return Quorum.voteResult(membership: membership) { nid in
            if nid == id { return true }
            guard let acked = progress[nid]?.ackedSentTick, acked != 0 else { return nil }
            return acked + span > now ? true : nil
        } == .won
    }
}
