import SynodCore

// Linearizable reads without writing to the log (dissertation §6.4): ReadIndex with a heartbeat
// round, and the opt-in lease read (§6.4.1).
extension RaftCore {
    /// Heartbeat contexts at or above this are the leader's own for followers' reads; the
    /// shell's contexts must stay below it.
    public static let forwardedReadContextBase: UInt64 = 1 << 63

    /// Asks for a read index. `context` (non-zero, below `forwardedReadContextBase`) identifies
    /// the request in the `ReadState` that answers it. A leader confirms its leadership with a
    /// heartbeat round; a leader that has not yet committed an entry of its term queues the
    /// request until it has. A follower with `followerReads` asks its leader, whose answer
    /// becomes the `ReadState`, or an entry of `Ready.refusedReads` if the leader was busy
    /// (nothing comes back if the request or the answer is lost: the shell times such reads out).
    /// Contexts must never repeat, not even across restarts (see `handleReadIndexResponse`).
    public mutating func readIndex(context: UInt64) throws(RaftError) {
        inputCount &+= 1
        precondition(context != 0 && context < Self.forwardedReadContextBase, "read context 0 and the forwarded range are reserved")
        guard role == .leader else {
            guard role == .follower, config.followerReads, !leader.isNone else { throw .notLeader(leaderHint: leader) }
            if config.bugs.contains(.followerReadWithoutLeader) {
                readStates.append(ReadState(context: context, index: log.committed))
                return
            }
            var m = message(.readIndex, to: leader)
            m.context = context
            send(m)
            return
        }
        guard requestRead(ReadRequest(requester: id, context: context)) else { throw .busy }
    }

    /// A follower's `.readIndex`: served like the leader's own reads, answered by message.
    mutating func handleReadIndexRequest(_ m: Message) {
        guard m.context != 0, requestRead(ReadRequest(requester: m.from, context: m.context)) else {
            var r = message(.readIndexResponse, to: m.from)
            r.context = m.context
            r.reject = true
            send(r)
            return
        }
    }

    /// Follower: the leader's answer to one of our `.readIndex` requests. The shell must never
    /// reuse a context, not even across restarts (an answer to the earlier request could still
    /// arrive): `NodeLoop` starts its contexts at a random value.
    mutating func handleReadIndexResponse(_ m: Message) {
        // Only the leader of our term answers for it (step already dropped older terms).
        guard m.from == leader, m.context != 0, m.context < Self.forwardedReadContextBase else { return }
        if m.reject {
            refusedReads.append(m.context)
        } else {
            readStates.append(ReadState(context: m.context, index: m.index))
        }
    }

    /// Registers a read (started now, or once an entry of this term commits); false when
    /// `pendingReadsMax` reads are already waiting.
    private mutating func requestRead(_ r: ReadRequest) -> Bool {
        guard pendingReads.count + readsAwaitingCommit.count < config.pendingReadsMax else { return false }
        if log.term(at: log.committed) != term {
            readsAwaitingCommit.append(r)
        } else {
            startReads([r])
        }
        return true
    }

    mutating func startReads(_ requests: [ReadRequest]) {
        guard !requests.isEmpty else { return }
        let onlyVoter = Quorum.voteResult(membership: membership) { $0 == id ? true : nil } == .won
        if onlyVoter || config.bugs.contains(.readWithoutLeadershipCheck) || (config.leaseReads && leaseIsValid) {
            for r in requests { answerRead(r, index: log.committed) }
            return
        }
        var last: UInt64 = 0
        for r in requests {
            var context = r.context
            if r.requester != id {
                nextForwardedReadContext &+= 1
                context = Self.forwardedReadContextBase | (nextForwardedReadContext & (Self.forwardedReadContextBase - 1))
            }
            pendingReads.append(PendingRead(heartbeatContext: context, index: log.committed, acks: [id], request: r))
            last = context
        }
        broadcastReadHeartbeat(context: last)
    }

    /// One heartbeat round for every read registered before the shell next takes the messages:
    /// a heartbeat to a peer still queued (not yet handed to the shell) carries `context` instead
    /// of a second heartbeat joining it. Safe: that heartbeat leaves after every read it now
    /// confirms was registered, and an answer to it confirms each earlier pending read too
    /// (`acknowledgeRead`). Without this a leader sent a round per forwarded ReadIndex request —
    /// each follower's per pass, on top of its own reads'. Its send tick stays: a lease counts
    /// from the earlier time, never a later one.
    mutating func broadcastReadHeartbeat(context: UInt64) {
        for p in peers {
            if let at = messages.lastIndex(where: { $0.type == .heartbeat && $0.to == p && $0.term == term }) {
                messages[at].context = context
            } else {
                send(heartbeat(to: p, context: context))
            }
        }
    }

    /// A confirmed read: a `ReadState` for our own, a `.readIndexResponse` for a follower's.
    private mutating func answerRead(_ r: ReadRequest, index: LogIndex) {
        if r.requester == id {
            readStates.append(ReadState(context: r.context, index: index))
        } else {
            var m = message(.readIndexResponse, to: r.requester)
            m.context = r.context
            m.index = index
            send(m)
        }
    }

    /// A heartbeat answer naming a read: once a quorum answered, that read and every earlier
    /// one are confirmed (leadership was confirmed after they were registered).
    mutating func acknowledgeRead(from peer: NodeID, context: UInt64) {
        guard let at = pendingReads.firstIndex(where: { $0.heartbeatContext == context }) else { return }
        if !pendingReads[at].acks.contains(peer) { pendingReads[at].acks.append(peer) }
        let acks = pendingReads[at].acks
        guard Quorum.voteResult(membership: membership, granted: { acks.contains($0) ? true : nil }) == .won else { return }
        for r in pendingReads[...at] { answerRead(r.request, index: r.index) }
        pendingReads.removeSubrange(...at)
    }

    /// Lease: a quorum answered heartbeats we sent less than
    /// `electionTimeoutTicks - leaseDriftMarginTicks` ticks ago. Those followers will not vote
    /// for anyone else until an election timeout after they received them (check-quorum), so no
    /// other leader can exist yet, provided no clock runs faster than the drift margin allows —
    /// and provided this leader sent no TimeoutNow this term (a transfer's votes pass those
    /// leases; see `leaseForfeited`).
    var leaseIsValid: Bool {
        guard role == .leader, config.checkQuorum, leadTransferee.isNone, !leaseForfeited else { return false }
        let span = UInt64(config.electionTimeoutTicks - config.leaseDriftMarginTicks)
        let now = tickCount + 1
        return Quorum.voteResult(membership: membership) { nid in
            if nid == id { return true }
            guard let acked = progress[nid]?.ackedSentTick, acked != 0 else { return nil }
            return acked + span > now ? true : nil
        } == .won
    }
}
