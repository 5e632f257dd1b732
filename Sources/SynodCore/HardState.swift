/// The state a consensus core must persist before it answers any message (Raft Figure 2,
/// "persistent state on all servers"), plus the commit index so a restart need not rediscover it.
public struct HardState: Hashable, Sendable, CustomStringConvertible {
    public var term: Term
    /// Who this node voted for in `term`; `.none` when it has not voted.
    public var vote: NodeID
    /// Highest index known committed. Invariant: never decreases for a given store.
    public var commit: LogIndex

    @inlinable public init(term: Term = .zero, vote: NodeID = .none, commit: LogIndex = .zero) {
        self.term = term
        self.vote = vote
        self.commit = commit
    }

    public static let initial = HardState()
    public var description: String { "{term \(term.rawValue) vote \(vote.rawValue) commit \(commit.rawValue)}" }
}
