import SynodCore

// Message dispatch: term rules first (Raft Figure 2, "Rules for Servers"), then per role.
extension RaftCore {
    /// Feeds one message from a peer. Messages not addressed to us, or from strangers, are ignored.
    public mutating func step(_ m: Message) {
        inputCount &+= 1
        guard m.to == id, m.from != id, !m.from.isNone else { return }
        if m.term > term {
            let isTransferVote = m.type == .vote && m.context == RaftCore.transferContext
            if (m.type == .vote || m.type == .preVote) && inLease && !isTransferVote {
                // Check-quorum: we heard from a live leader recently, so this candidate is
                // disruptive (dissertation §4.2.3). Ignore it without adopting its term.
                return
            }
            let keepsTerm = m.type == .preVote || (m.type == .preVoteResponse && !m.reject)
            if !keepsTerm {
                let fromLeader = m.type == .append || m.type == .heartbeat || m.type == .snapshot
                becomeFollower(term: m.term, leader: fromLeader ? m.from : .none)
            }
        } else if m.term < term {
            answerStale(m)
            return
        }
        switch m.type {
        case .preVote, .vote:
            handleVoteRequest(m)
        default:
            switch role {
            case .leader: stepLeader(m)
            case .candidate, .preCandidate: stepCandidate(m)
            case .follower: stepFollower(m)
            }
        }
    }

    /// True while we believe a leader is alive: we heard from it within an election timeout.
    /// With lease reads on, a node that just restarted also stays quiet for one election
    /// timeout: it may have acknowledged a leader's heartbeat before the crash and forgotten it.
    var inLease: Bool {
        guard config.checkQuorum, electionElapsed < config.electionTimeoutTicks else { return false }
        return !leader.isNone || quietAfterRestart
    }

    /// A message from an older term. Tell stale leaders and pre-candidates our term so they step
    /// down; with check-quorum or pre-vote they could otherwise never learn it (etcd-raft does the same).
    private mutating func answerStale(_ m: Message) {
        if (config.checkQuorum || config.preVote) && (m.type == .append || m.type == .heartbeat) {
            send(message(.appendResponse, to: m.from))
        } else if m.type == .preVote {
            var r = message(.preVoteResponse, to: m.from)
            r.reject = true
            send(r)
        }
    }

    private mutating func stepCandidate(_ m: Message) {
        switch m.type {
        case .append, .heartbeat, .snapshot:
            // A leader exists for our term (Raft §5.2): give up.
            becomeFollower(term: m.term, leader: m.from)
            stepFollower(m)
        case .preVoteResponse, .voteResponse:
            handleVoteResponse(m)
        default:
            break
        }
    }

    private mutating func stepFollower(_ m: Message) {
        switch m.type {
        case .append:
            electionElapsed = 0
            leader = m.from
            handleAppend(m)
        case .heartbeat:
            electionElapsed = 0
            leader = m.from
            handleHeartbeat(m)
        case .snapshot:
            electionElapsed = 0
            leader = m.from
            handleSnapshotChunk(m)
        case .timeoutNow:
            campaignForTransfer()
        case .readIndexResponse:
            handleReadIndexResponse(m)
        default:
            break
        }
    }

    // MARK: Follower side of AppendEntries (Raft §5.3)

    mutating func handleAppend(_ m: Message) {
        var r = message(.appendResponse, to: m.from)
        if m.index < log.committed {
            r.index = log.committed
            send(r)
            return
        }
        guard log.matches(index: m.index, term: m.logTerm) else {
            r.reject = true
            r.index = m.index
            if m.index > log.lastIndex {
                r.rejectHint = log.lastIndex.next
            } else {
                // Fast backtracking: name the conflicting term and where it starts here.
                r.conflictTerm = log.term(at: m.index) ?? .zero
                r.rejectHint = log.firstIndex(ofTermAt: m.index)
            }
            send(r)
            return
        }
        let lastNew = LogIndex(m.index.rawValue + UInt64(m.entries.count))
        if let conflict = log.findConflict(m.entries) {
            guard conflict > log.committed else {
                brokenInvariant("append conflicts with committed entry at \(conflict)")
                return
            }
            var fresh = Array(m.entries[Int(conflict.rawValue - m.index.rawValue - 1)...])
            let keepSuffix = config.bugs.contains(.keepConflictingSuffix)
            if keepSuffix && lastNew < log.lastIndex {
                // Injected bug: the old entries after the new ones survive.
                fresh += log.entries(from: lastNew.next, countMax: Int.max, bytesMax: Int.max)
            }
            reconcileMembership(truncatingFrom: conflict, incoming: fresh)
            log.truncateAndAppend(fresh, checkTerms: !keepSuffix)
        }
        log.commit(to: min(m.commit, lastNew))
        r.index = lastNew
        send(r)
    }

    mutating func handleHeartbeat(_ m: Message) {
        log.commit(to: min(m.commit, log.lastIndex))
        var r = message(.heartbeatResponse, to: m.from)
        r.context = m.context
        r.sentTick = m.sentTick
        send(r)
    }

    // MARK: Follower side of InstallSnapshot (Raft §7), in chunks

    mutating func handleSnapshotChunk(_ m: Message) {
        guard let c = m.snapshot else { return }
        if c.position.index <= log.committed {
            // Already have everything it holds.
            incomingSnapshot = nil
            var r = message(.appendResponse, to: m.from)
            r.index = log.committed
            send(r)
            return
        }
        // Chunks may arrive more than once (a heartbeat answer resends the chunk in flight) or
        // after a lost one. Within the transfer in progress, a chunk that is not the next one is
        // answered with how far the transfer is — the leader resumes from there — and never
        // restarts it: a duplicate that reset the transfer made every resend undo the progress
        // (seen in the simulator as a follower that never caught up).
        let current = incomingSnapshot.map { $0.position == c.position && incomingSnapshotFrom == m.from && incomingSnapshotTerm == m.term } ?? false
        if c.offset == 0 && !current {
            incomingSnapshot = Snapshot(position: c.position, membership: c.membership, data: [])
            incomingSnapshotFrom = m.from
            incomingSnapshotTerm = m.term
        }
        guard var inc = incomingSnapshot, current || c.offset == 0 else {
            // No transfer of this snapshot from this leader (this node restarted, or another
            // leader's was under way): start over.
            replySnapshotProgress(to: m.from, c.position.index, received: 0, gap: true)
            return
        }
        guard c.offset == inc.data.count else {
            // A duplicate (behind us: not a gap) or a chunk after a lost one (a gap).
            replySnapshotProgress(to: m.from, c.position.index, received: inc.data.count, gap: c.offset > inc.data.count)
            return
        }
        guard inc.data.count + c.data.count <= config.snapshotBytesMax else {
            // Larger than this node gathers (`snapshotBytesMax`): refuse it for good (a gap at
            // `refusedContext`), so the leader stops sending it rather than start over forever.
            incomingSnapshot = nil
            var r = message(.snapshotResponse, to: m.from)
            r.index = c.position.index
            r.reject = true
            r.context = Self.snapshotRefusedContext
            send(r)
            return
        }
        // Appended in place: with `incomingSnapshot` still holding the buffer, `+=` on the copy
        // would copy everything gathered so far for every chunk.
        incomingSnapshot = nil
        inc.data.append(contentsOf: c.data)
        if !c.isLast {
            incomingSnapshot = inc
            replySnapshotProgress(to: m.from, c.position.index, received: inc.data.count, gap: false)
            return
        }
        incomingSnapshot = nil
        if let check = snapshotCheck, !check(inc.data) {
            // Damaged: nothing is replaced; the leader builds its bytes again and starts over.
            snapshotsRefusedByCheck += 1
            if config.bugs.contains(.resendDamagedSnapshot) {
                replySnapshotProgress(to: m.from, c.position.index, received: 0, gap: true)
                return
            }
            var r = message(.snapshotResponse, to: m.from)
            r.index = c.position.index
            r.reject = true
            r.context = Self.snapshotDamagedContext
            send(r)
            return
        }
        restore(inc)
        // Acknowledge only what is known to match the leader: the commit index (now at least
        // the snapshot's). Not our last index: when our log already held the snapshot's last
        // entry we kept our log, and entries after it may be stale ones from an older term.
        var r = message(.appendResponse, to: m.from)
        r.index = log.committed
        send(r)
    }

    /// The `context` of a `snapshotResponse` refusing a snapshot outright (too large).
    static let snapshotRefusedContext = UInt64.max
    /// The `context` of a `snapshotResponse` reporting that the whole snapshot arrived and
    /// `snapshotCheck` refused it. (A leader from before this existed reads it as a gap past its
    /// end, sends an empty last chunk, is told of a gap at 0, and starts over: as before.)
    static let snapshotDamagedContext = UInt64.max - 1

    /// Tells the leader how many bytes of snapshot `index` we hold. `gap` (sent as `reject`):
    /// resume from `received` even if that is behind what you sent; otherwise the report only
    /// ever moves the leader forward (see `handleSnapshotResponse`).
    mutating func replySnapshotProgress(to leader: NodeID, _ index: LogIndex, received: Int, gap: Bool) {
        var r = message(.snapshotResponse, to: leader)
        r.index = index
        r.reject = gap
        r.context = UInt64(received)
        send(r)
    }

    /// Installs a complete snapshot, discarding our conflicting log.
    mutating func restore(_ snap: Snapshot) {
        if log.matches(index: snap.position.index, term: snap.position.term) {
            // Our log already has the snapshot's last entry: keep the log, just commit.
            log.commit(to: snap.position.index)
            return
        }
        log.restore(snap.position)
        membership = snap.membership
        lastConfigIndex = snap.position.index
        snapshot = snap
        snapshotToInstall = snap
    }
}
