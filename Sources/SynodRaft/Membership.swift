import SynodCore

/// A requested change of who votes and who listens (dissertation §4.3; §4.2.1 for learners).
public enum MembershipChange: Hashable, Sendable, CustomStringConvertible {
    case addVoter(NodeID)
    case removeVoter(NodeID)
    case replaceVoter(old: NodeID, new: NodeID)
    /// A non-voting member that receives the log (to catch up before it votes).
    case addLearner(NodeID)
    case promoteLearner(NodeID)
    case removeLearner(NodeID)

    public var description: String {
        switch self {
        case let .addVoter(n): return "add-voter \(n)"
        case let .removeVoter(n): return "remove-voter \(n)"
        case let .replaceVoter(o, n): return "replace-voter \(o)->\(n)"
        case let .addLearner(n): return "add-learner \(n)"
        case let .promoteLearner(n): return "promote-learner \(n)"
        case let .removeLearner(n): return "remove-learner \(n)"
        }
    }
}

/// The payload of a configuration entry: the membership before and after it, so that a
/// follower that truncates the entry can restore the membership it replaced.
public struct ConfigurationChange: Hashable, Sendable {
    public var previous: Membership
    public var next: Membership

    public func encode() -> [UInt8] {
        var w = ByteWriter()
        previous.encode(into: &w)
        next.encode(into: &w)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> ConfigurationChange {
        var r = ByteReader(bytes)
        let previous = try Membership.decode(from: &r)
        let next = try Membership.decode(from: &r)
        try r.expectEnd()
        return ConfigurationChange(previous: previous, next: next)
    }
}

// Membership change by joint consensus (dissertation §4.3), learners, leadership transfer (§3.10).
// A node uses the latest configuration in its log, committed or not (§4.1).
extension RaftCore {
    /// Proposes a change. Voter changes go through a joint configuration C(old,new); once that
    /// commits the leader appends C(new) by itself. One change at a time.
    @discardableResult
    public mutating func proposeMembershipChange(_ change: MembershipChange) throws(RaftError) -> LogPosition {
        inputCount &+= 1
        guard role == .leader else { throw .notLeader(leaderHint: leader) }
        guard leadTransferee.isNone else { throw .leadershipTransferInProgress }
        guard !membership.isJoint, lastConfigIndex <= log.committed else { throw .membershipChangeInProgress }
        guard let next = target(of: change) else { throw .invalidMembershipChange }
        return appendConfiguration(next)
    }

    /// The configuration a change leads to, or nil if it makes no sense here.
    func target(of change: MembershipChange) -> Membership? {
        var voters = membership.voters
        var learners = membership.learners
        switch change {
        case let .addVoter(n), let .promoteLearner(n):
            guard !voters.contains(n) else { return nil }
            voters.append(n)
            learners.removeAll { $0 == n }
        case let .removeVoter(n):
            guard voters.contains(n) else { return nil }
            voters.removeAll { $0 == n }
        case let .replaceVoter(old, new):
            guard voters.contains(old), !voters.contains(new), old != new else { return nil }
            voters.removeAll { $0 == old }
            voters.append(new)
            learners.removeAll { $0 == new }
        case let .addLearner(n):
            guard !voters.contains(n), !learners.contains(n) else { return nil }
            learners.append(n)
        case let .removeLearner(n):
            guard learners.contains(n) else { return nil }
            learners.removeAll { $0 == n }
        }
        guard !voters.isEmpty, !n0(voters + learners) else { return nil }
        let votersChange = Set(voters) != Set(membership.voters)
        return try? Membership(voters: voters, outgoingVoters: votersChange ? membership.voters : [], learners: learners)
    }

    private func n0(_ ids: [NodeID]) -> Bool { ids.contains(.none) }

    mutating func appendConfiguration(_ next: Membership) -> LogPosition {
        let payload = ConfigurationChange(previous: membership, next: next).encode()
        let e = Entry(index: log.lastIndex.next, term: term, kind: .configuration, payload: payload)
        log.append(e)
        lastConfigIndex = e.index
        adopt(next)
        broadcastAppend(sendIfEmpty: false)
        return e.position
    }

    /// Switches to `next`, keeping the leader's progress table in step with the members.
    mutating func adopt(_ next: Membership) {
        membership = next
        guard role == .leader else { return }
        for member in next.allMembers where progress[member] == nil {
            progress[member] = Progress(next: log.lastIndex.next, inflightMax: config.inflightMessagesMax)
        }
        for member in progress.keys.sorted() where member != id && !next.allMembers.contains(member) {
            progress[member] = nil
        }
        if !leadTransferee.isNone && !next.voters.contains(leadTransferee) { leadTransferee = .none }
    }

    /// Follower side: entries from `from` on are about to be replaced by `incoming`. Restores the
    /// membership a removed configuration entry had replaced, then adopts any new one.
    mutating func reconcileMembership(truncatingFrom from: LogIndex, incoming: [Entry]) {
        if from <= log.lastIndex {
            let removed = log.entries(from: from, countMax: Int.max, bytesMax: Int.max)
            if let first = removed.first(where: { $0.kind == .configuration }),
               let change = try? ConfigurationChange.decode(first.payload) {
                adopt(change.previous)
                lastConfigIndex = findLastConfigIndex(before: from)
            }
        }
        if let last = incoming.last(where: { $0.kind == .configuration }),
           let change = try? ConfigurationChange.decode(last.payload) {
            adopt(change.next)
            lastConfigIndex = last.index
        }
    }

    func findLastConfigIndex(before index: LogIndex) -> LogIndex {
        var i = min(index.previous, log.lastIndex)
        while i > log.compacted.index {
            if log.entry(at: i)?.kind == .configuration { return i }
            i = i.previous
        }
        return log.compacted.index
    }

    /// The membership in force at `index` (for a checkpoint taken there); `index` must not be
    /// compacted away.
    public func membership(atIndex index: LogIndex) -> Membership { membership(at: index) }

    /// The membership in force at `index` (for a snapshot taken there).
    func membership(at index: LogIndex) -> Membership {
        var m = membership
        var i = log.lastIndex
        while i > index && i > log.compacted.index {
            if let e = log.entry(at: i), e.kind == .configuration, let change = try? ConfigurationChange.decode(e.payload) {
                m = change.previous
            }
            i = i.previous
        }
        return m
    }

    /// Leader: finish a joint change once C(old,new) is committed; step down once a C(new)
    /// without us is committed (dissertation §4.2.2).
    mutating func maybeFinishMembershipChange() {
        guard role == .leader, lastConfigIndex <= log.committed else { return }
        if membership.isJoint {
            guard let leave = try? Membership(voters: membership.voters, learners: membership.learners) else { return }
            _ = appendConfiguration(leave)
        } else if !membership.isVoter(id) {
            becomeFollower(term: term, leader: .none)
        }
    }

    // MARK: Leadership transfer (dissertation §3.10)

    /// Asks the leader to hand leadership to `target`: it stops taking proposals, brings the
    /// target's log up to date, then tells it to campaign at once. Abandoned after an election timeout.
    public mutating func transferLeadership(to target: NodeID) throws(RaftError) {
        inputCount &+= 1
        guard role == .leader else { throw .notLeader(leaderHint: leader) }
        guard target != id, membership.voters.contains(target), !membership.isJoint, let pr = progress[target] else {
            throw .invalidMembershipChange
        }
        leadTransferee = target
        transferElapsed = 0
        if pr.match == log.lastIndex { sendTimeoutNow(to: target) } else { sendAppend(to: target, sendIfEmpty: true) }
    }

    mutating func sendTimeoutNow(to target: NodeID) {
        if !config.bugs.contains(.leaseSurvivesTransfer) { leaseForfeited = true }
        send(message(.timeoutNow, to: target))
    }

    /// Vote requests of a transfer carry this context so that followers in a lease answer them.
    static let transferContext: UInt64 = 1
}
