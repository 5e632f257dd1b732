/// Who votes and who only listens. During a joint-consensus change (Raft dissertation §4.3) both
/// `voters` (the incoming configuration) and `outgoingVoters` must agree; otherwise
/// `outgoingVoters` is empty.
///
/// Invariants: each list is sorted ascending with no duplicates (so encoding and iteration are
/// deterministic); no node is both a voter and a learner; `NodeID.none` never appears.
public struct Membership: Hashable, Sendable, CustomStringConvertible {
    public private(set) var voters: [NodeID]
    public private(set) var outgoingVoters: [NodeID]
    public private(set) var learners: [NodeID]

    /// Creates a membership, normalising order. Throws on overlap, `none`, or too many members.
    public init(voters: [NodeID], outgoingVoters: [NodeID] = [], learners: [NodeID] = []) throws(MembershipError) {
        let v = Membership.normalise(voters)
        let o = Membership.normalise(outgoingVoters)
        let l = Membership.normalise(learners)
        guard !v.contains(.none), !o.contains(.none), !l.contains(.none) else { throw .reservedNodeID }
        guard v.count + l.count <= Limits.membersMax, o.count <= Limits.membersMax else { throw .tooManyMembers }
        for learner in l where v.contains(learner) || o.contains(learner) { throw .voterAndLearner(learner) }
        self.voters = v
        self.outgoingVoters = o
        self.learners = l
    }

    /// An empty membership (a node that has not been bootstrapped yet).
    public static let empty = try! Membership(voters: [])

    /// True while a joint-consensus change is in progress.
    public var isJoint: Bool { !outgoingVoters.isEmpty }

    /// Every node that receives the log, sorted.
    public var allMembers: [NodeID] { Membership.normalise(voters + outgoingVoters + learners) }

    public func isVoter(_ id: NodeID) -> Bool { voters.contains(id) || outgoingVoters.contains(id) }
    public func isLearner(_ id: NodeID) -> Bool { learners.contains(id) }

    private static func normalise(_ ids: [NodeID]) -> [NodeID] {
        var out = ids.sorted()
        var i = 1
        while i < out.count { if out[i] == out[i - 1] { out.remove(at: i) } else { i += 1 } }
        return out
    }

    public var description: String {
        func list(_ ids: [NodeID]) -> String { ids.map { String($0.rawValue) }.joined(separator: ",") }
        var s = "voters=[\(list(voters))]"
        if isJoint { s += " outgoing=[\(list(outgoingVoters))]" }
        if !learners.isEmpty { s += " learners=[\(list(learners))]" }
        return s
    }
}

/// Why a membership was refused.
public enum MembershipError: Error, Hashable, Sendable {
    case reservedNodeID
    case tooManyMembers
    case voterAndLearner(NodeID)
}
