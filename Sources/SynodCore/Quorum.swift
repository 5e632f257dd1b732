/// Quorum arithmetic, kept apart from the cores (after etcd-raft's quorum/majority.go).
public enum Quorum {
    /// Votes needed for a majority of `count` voters: ⌊n/2⌋+1. A configuration of 0 voters has
    /// quorum 0 by convention (nothing can be decided in it, and nothing needs to be).
    @inlinable public static func majority(of count: Int) -> Int {
        precondition(count >= 0, "negative voter count")
        return count / 2 + 1 - (count == 0 ? 1 : 0)
    }

    /// Replicas a BFT quorum needs so that any two quorums share at least f+1 replicas, hence a
    /// correct one: ⌈(n+f+1)/2⌉ — 2f+1 when n = 3f+1, more for other sizes (4 of 5 or 6, 6 of
    /// 8). A plain 2f+1 with 5 or 6 replicas lets two quorums meet in the one Byzantine replica,
    /// and an equivocating primary then gets correct replicas to execute different requests at
    /// one sequence number (found by the simulator, 2026-11-22). Never above n − f, so the
    /// correct replicas alone can always form one.
    @inlinable public static func byzantineQuorum(replicas n: Int) -> Int {
        precondition(n >= 1, "need at least one replica")
        return (n + byzantineFaultsTolerated(replicas: n) + 2) / 2
    }

    /// f for n replicas in BFT mode: ⌊(n-1)/3⌋.
    @inlinable public static func byzantineFaultsTolerated(replicas n: Int) -> Int { (n - 1) / 3 }

    /// The highest index that a majority of `voters` has matched, given each voter's match index
    /// (voters absent from `match` count as zero). Deterministic: depends only on the values.
    public static func committedIndex(voters: [NodeID], match: (NodeID) -> LogIndex) -> LogIndex {
        if voters.isEmpty { return LogIndex(UInt64.max) } // an empty config never constrains
        var indexes = voters.map(match)
        indexes.sort(by: >)
        return indexes[majority(of: voters.count) - 1]
    }

    /// Joint consensus: an index is committed only if both configurations commit it.
    public static func committedIndex(membership: Membership, match: (NodeID) -> LogIndex) -> LogIndex {
        let incoming = committedIndex(voters: membership.voters, match: match)
        guard membership.isJoint else { return incoming }
        return min(incoming, committedIndex(voters: membership.outgoingVoters, match: match))
    }

    /// Result of counting votes in one configuration.
    public enum VoteResult: Sendable, Hashable { case won, lost, pending }

    /// Counts `granted` (true/false per voter that answered) against `voters`.
    public static func voteResult(voters: [NodeID], granted: (NodeID) -> Bool?) -> VoteResult {
        if voters.isEmpty { return .won }
        var yes = 0, no = 0
        for v in voters {
            switch granted(v) {
            case .some(true): yes += 1
            case .some(false): no += 1
            case .none: break
            }
        }
        let q = majority(of: voters.count)
        if yes >= q { return .won }
        if voters.count - no < q { return .lost }
        return .pending
    }

    /// Joint vote: won only if both configurations are won; lost if either is lost.
    public static func voteResult(membership: Membership, granted: (NodeID) -> Bool?) -> VoteResult {
        let a = voteResult(voters: membership.voters, granted: granted)
        guard membership.isJoint else { return a }
        let b = voteResult(voters: membership.outgoingVoters, granted: granted)
        if a == .lost || b == .lost { return .lost }
        if a == .won && b == .won { return .won }
        return .pending
    }
}
