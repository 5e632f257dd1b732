import SynodCore
import SynodRaft

/// Checks Raft's safety properties (Raft Figure 3) from outside the nodes, after every step.
/// It sees only what nodes persist, apply and report; it never reaches into a core's decisions.
struct SafetyChecker {
    struct EntryFacts: Equatable {
        var term: Term
        var prevTerm: Term
        var kind: EntryKind
        var payloadHash: UInt64
    }

    /// Election safety: the leader seen in each term.
    private var leaders: [Term: NodeID] = [:]
    /// Log matching, by induction: a (index, term) pair must always name the same entry with
    /// the same predecessor term.
    private var entries: [LogPosition: EntryFacts] = [:]
    /// State machine safety: what was applied at each index.
    private var applied: [LogIndex: EntryFacts] = [:]
    /// Committed entries (term, digest), and the term in which each was first seen committed.
    private var committed: [LogIndex: (facts: EntryFacts, seenInTerm: Term)] = [:]
    private(set) var highestCommitted: LogIndex = .zero
    private(set) var violations: [String] = []

    static let violationsMax = 20

    mutating func fail(_ s: String) {
        if violations.count < SafetyChecker.violationsMax { violations.append(s) }
    }

    static func facts(_ e: Entry, prevTerm: Term) -> EntryFacts {
        var h = FNV1a64()
        for b in e.payload { h.add(byte: b) }
        return EntryFacts(term: e.term, prevTerm: prevTerm, kind: e.kind, payloadHash: h.value)
    }

    /// At most one leader per term (Election Safety).
    mutating func leaderElected(_ node: NodeID, term: Term, core: RaftCore) {
        if let other = leaders[term], other != node {
            fail("election safety: \(other) and \(node) both leaders in \(term)")
        }
        leaders[term] = node
        checkLeaderCompleteness(core)
    }

    /// Leader Completeness: a leader of term T holds every entry seen committed before T.
    mutating func checkLeaderCompleteness(_ core: RaftCore) {
        var i = LogIndex(1)
        while i <= highestCommitted {
            if let c = committed[i], c.seenInTerm < core.term, i > core.compactedPosition.index {
                if core.term(at: i) != c.facts.term {
                    fail("leader completeness: \(core.id) leads \(core.term) without committed entry \(i)@\(c.facts.term)")
                    return
                }
            }
            i = i.next
        }
    }

    /// Log Matching, checked on every entry a node persists.
    mutating func persisted(_ e: Entry, prevTerm: Term, node: NodeID) {
        let f = SafetyChecker.facts(e, prevTerm: prevTerm)
        if let known = entries[e.position] {
            if known != f { fail("log matching: \(node) holds a different entry or predecessor at \(e.position)") }
        } else {
            entries[e.position] = f
        }
    }

    /// State Machine Safety: no two nodes apply different entries at one index.
    mutating func applied(_ e: Entry, node: NodeID) {
        let f = SafetyChecker.facts(e, prevTerm: .zero)
        if let known = applied[e.index] {
            if known != f { fail("state machine safety: \(node) applied \(e.position) but another node applied \(known.term) there") }
        } else {
            applied[e.index] = f
        }
    }

    /// A node's commit index moved: its entries up to there must agree with every other node's
    /// committed entries, forever (no committed entry is ever lost or changed).
    mutating func committed(node: inout SimNode) {
        guard let core = node.core else { return }
        var i = max(node.checkedCommit, core.compactedPosition.index).next
        while i <= core.commitIndex {
            guard let e = core.entry(at: i) else { break }
            let f = SafetyChecker.facts(e, prevTerm: .zero)
            if let known = committed[i] {
                if known.facts != f { fail("committed entry changed: \(node.id) has \(e.position) committed, earlier \(known.facts.term)") }
            } else {
                committed[i] = (f, core.term)
                highestCommitted = max(highestCommitted, i)
            }
            i = i.next
        }
        node.checkedCommit = max(node.checkedCommit, core.commitIndex)
    }

    /// After a restart: what the node reloaded from disk must still hold its committed prefix.
    mutating func restarted(_ core: RaftCore) {
        var i = core.compactedPosition.index.next
        while i <= core.commitIndex {
            if let c = committed[i], core.term(at: i) != c.facts.term {
                fail("durability: \(core.id) lost committed entry \(i)@\(c.facts.term) across a crash")
                return
            }
            i = i.next
        }
    }

    func committedFacts(at i: LogIndex) -> EntryFacts? { committed[i]?.facts }
}
