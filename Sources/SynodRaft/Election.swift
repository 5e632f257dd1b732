import SynodCore

// Leader election (Raft §5.2), pre-vote (dissertation §9.6) and check-quorum (dissertation §6.2).
extension RaftCore {
    var isPromotable: Bool { membership.isVoter(id) }

    mutating func resetElectionTimer() {
        electionElapsed = 0
        heartbeatElapsed = 0
        let base = config.electionTimeoutTicks
        randomizedElectionTimeout = base + random.int(in: 0...(base - 1))
    }

    mutating func tickElection() {
        electionElapsed += 1
        if electionElapsed >= config.electionTimeoutTicks { quietAfterRestart = false }
        if role == .candidate || role == .preCandidate {
            // Raft §5.5: RPCs to crashed or unreachable servers are retried; re-ask the voters
            // that have not answered yet, every heartbeat interval.
            heartbeatElapsed += 1
            if heartbeatElapsed >= config.heartbeatIntervalTicks {
                heartbeatElapsed = 0
                requestVotes(role == .preCandidate ? .preVote : .vote, term: role == .preCandidate ? term.next : term)
            }
        }
        if isPromotable && electionElapsed >= randomizedElectionTimeout {
            campaign()
        }
    }

    mutating func tickLeader() {
        heartbeatElapsed += 1
        electionElapsed += 1
        if !leadTransferee.isNone {
            transferElapsed += 1
            if transferElapsed >= config.electionTimeoutTicks { leadTransferee = .none } // give up
        }
        if electionElapsed >= config.electionTimeoutTicks {
            electionElapsed = 0
            if config.checkQuorum {
                guard quorumRecentlyActive() else {
                    becomeFollower(term: term, leader: .none)
                    return
                }
                for p in peers { progress[p]?.recentActive = false }
            }
        }
        if heartbeatElapsed >= config.heartbeatIntervalTicks {
            heartbeatElapsed = 0
            // The newest pending read rides along (as in etcd-raft): a round whose heartbeats or
            // answers were lost is confirmed by the next periodic one, sent after it was registered.
            broadcastHeartbeat(context: pendingReads.last?.heartbeatContext ?? 0)
        }
    }

    /// Check-quorum: did a quorum (counting ourselves) answer since the last round?
    func quorumRecentlyActive() -> Bool {
        let result = Quorum.voteResult(membership: membership) { nid in
            nid == id || (progress[nid]?.recentActive ?? false) ? true : nil
        }
        return result == .won
    }

    /// Starts an election: a pre-vote round first when enabled.
    public mutating func campaign() {
        inputCount &+= 1
        guard isPromotable, role != .leader else { return }
        if config.preVote { becomePreCandidate() } else { becomeCandidate() }
    }

    /// Leadership transfer: the leader asked us to campaign now.
    mutating func campaignForTransfer() {
        guard isPromotable, role != .leader else { return }
        becomeCandidate(transfer: true)
    }

    mutating func becomeFollower(term newTerm: Term, leader newLeader: NodeID) {
        precondition(newTerm >= term, "terms never decrease")
        if newTerm > term {
            term = newTerm
            vote = .none
        }
        role = .follower
        leader = newLeader
        leadTransferee = .none
        progress.removeAll()
        votes.removeAll()
        pendingReads.removeAll()
        readsAwaitingCommit.removeAll()
        resetElectionTimer()
    }

    mutating func becomePreCandidate() {
        role = .preCandidate
        leader = .none
        votes = [id: true]
        resetElectionTimer()
        if pollVotes() == .won { becomeCandidate(); return }
        requestVotes(.preVote, term: term.next)
    }

    mutating func becomeCandidate(transfer: Bool = false) {
        precondition(role != .leader, "a leader does not campaign")
        term = term.next
        vote = id
        role = .candidate
        leader = .none
        votes = [id: true]
        resetElectionTimer()
        if pollVotes() == .won { becomeLeader(); return }
        campaignIsTransfer = transfer
        requestVotes(.vote, term: term)
    }

    /// Asks every voter that has not answered yet.
    private mutating func requestVotes(_ type: MessageType, term t: Term) {
        for voter in membership.allMembers where voter != id && membership.isVoter(voter) && votes[voter] == nil {
            var m = Message(type: type, from: id, to: voter, term: t)
            if type == .vote && campaignIsTransfer { m.context = RaftCore.transferContext }
            m.logTerm = log.lastTerm
            m.index = log.lastIndex
            send(m)
        }
    }

    func pollVotes() -> Quorum.VoteResult {
        Quorum.voteResult(membership: membership) { votes[$0] }
    }

    mutating func becomeLeader() {
        precondition(role == .candidate, "only a candidate becomes leader")
        precondition(vote == id, "a leader voted for itself in its term")
        role = .leader
        leader = id
        leadTransferee = .none
        leaseForfeited = false
        resetElectionTimer()
        progress.removeAll()
        for member in membership.allMembers {
            progress[member] = Progress(next: log.lastIndex.next, inflightMax: config.inflightMessagesMax)
        }
        progress[id]?.match = log.stableLast
        progress[id]?.state = .replicate
        // Raft §8: a new leader commits a blank entry of its own term to learn what is committed.
        if config.appendNoopOnElection {
            log.append(Entry(index: log.lastIndex.next, term: term, kind: .noop))
        }
        broadcastAppend(sendIfEmpty: true)
    }

    /// Answers RequestVote or a pre-vote (Raft §5.2, §5.4.1; dissertation §9.6).
    mutating func handleVoteRequest(_ m: Message) {
        let isPre = m.type == .preVote
        let canVote = vote == m.from || (vote.isNone && leader.isNone) || (isPre && m.term > term)
        let responseType: MessageType = isPre ? .preVoteResponse : .voteResponse
        if canVote && log.isUpToDate(lastTerm: m.logTerm, lastIndex: m.index) {
            var r = Message(type: responseType, from: id, to: m.from, term: m.term)
            r.reject = false
            send(r)
            if !isPre {
                electionElapsed = 0
                vote = m.from
            }
        } else {
            var r = message(responseType, to: m.from)
            r.reject = true
            send(r)
        }
    }

    /// Vote answers while campaigning.
    mutating func handleVoteResponse(_ m: Message) {
        switch (role, m.type) {
        case (.preCandidate, .preVoteResponse):
            guard m.reject || m.term == term.next else { return }
        case (.candidate, .voteResponse):
            guard m.term == term else { return }
        default:
            return
        }
        if votes[m.from] == nil { votes[m.from] = !m.reject }
        switch pollVotes() {
        case .won: if role == .preCandidate { becomeCandidate() } else { becomeLeader() }
        case .lost: becomeFollower(term: term, leader: .none)
        case .pending: break
        }
    }
}
