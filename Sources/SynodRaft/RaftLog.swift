import SynodCore

/// The core's in-memory copy of its log: entries since the last snapshot, plus the bookkeeping
/// of what the shell has persisted and applied.
///
/// Invariants: `entries[i].index == compacted.index + 1 + i`;
/// `compacted.index <= applied <= committed`; `stableLast <= lastIndex`;
/// `inFlightLast <= lastIndex`.
struct RaftLog: Sendable {
    /// Position of the last entry folded into a snapshot.
    private(set) var compacted: LogPosition
    private(set) var entries: [Entry]
    /// Highest index known committed. Never decreases.
    private(set) var committed: LogIndex
    /// Highest index handed to the shell to apply (set on `advance`).
    var applied: LogIndex
    /// Highest index the shell has persisted (set on `advance`, or on `persisted(through:)`
    /// for writes the shell carries out asynchronously).
    var stableLast: LogIndex
    /// Highest index handed to the shell in an asynchronous write not yet reported durable
    /// (`advance(_:entriesInFlight: true)`); entries up to it are not handed out again. At most
    /// `stableLast` when nothing is in flight.
    var inFlightLast: LogIndex
    /// Set when entries the shell already persisted were removed: the shell must delete its
    /// entries from this index on before appending.
    var pendingTruncate: LogIndex?

    init(compacted: LogPosition, entries: [Entry], committed: LogIndex) {
        for (i, e) in entries.enumerated() {
            precondition(e.index.rawValue == compacted.index.rawValue + 1 + UInt64(i), "log not contiguous")
        }
        self.compacted = compacted
        self.entries = entries
        let last = entries.last?.index ?? compacted.index
        precondition(committed >= compacted.index, "commit below snapshot")
        self.committed = min(committed, last)
        self.applied = compacted.index
        self.stableLast = last
        self.inFlightLast = last
        self.pendingTruncate = nil
    }

    var firstIndex: LogIndex { compacted.index.next }
    var lastIndex: LogIndex { entries.last?.index ?? compacted.index }
    var lastTerm: Term { entries.last?.term ?? compacted.term }
    var lastPosition: LogPosition { LogPosition(index: lastIndex, term: lastTerm) }

    private func offset(_ index: LogIndex) -> Int { Int(index.rawValue - compacted.index.rawValue - 1) }

    /// The term at `index`, or nil when it was compacted away or is past the end.
    func term(at index: LogIndex) -> Term? {
        if index == compacted.index { return compacted.term }
        if index < compacted.index || index > lastIndex { return nil }
        return entries[offset(index)].term
    }

    func entry(at index: LogIndex) -> Entry? {
        guard index > compacted.index, index <= lastIndex else { return nil }
        return entries[offset(index)]
    }

    func matches(index: LogIndex, term: Term) -> Bool { self.term(at: index) == term }

    /// Raft §5.4.1: a candidate's log is at least as up to date as ours.
    func isUpToDate(lastTerm candidateTerm: Term, lastIndex candidateIndex: LogIndex) -> Bool {
        candidateTerm > lastTerm || (candidateTerm == lastTerm && candidateIndex >= lastIndex)
    }

    /// Entries from `from` (inclusive) bounded by count and bytes; at least one if any exist.
    func entries(from: LogIndex, upTo: LogIndex? = nil, countMax: Int, bytesMax: Int) -> [Entry] {
        precondition(from > compacted.index, "reading compacted entries")
        let end = min(upTo ?? lastIndex.next, lastIndex.next)
        guard from < end else { return [] }
        var out: [Entry] = []
        var bytes = 0
        var i = from
        while i < end && out.count < countMax {
            let e = entries[offset(i)]
            if !out.isEmpty && bytes + e.sizeBytes > bytesMax { break }
            bytes += e.sizeBytes
            out.append(e)
            i = i.next
        }
        return out
    }

    /// Entries the shell has not persisted yet, nor started writing.
    var unstableEntries: [Entry] {
        let written = max(stableLast, inFlightLast)
        return written >= lastIndex ? [] : Array(entries[offset(written.next)...])
    }

    /// Committed entries not yet applied, bounded by count.
    func committedUnapplied(countMax: Int) -> [Entry] {
        guard committed > applied else { return [] }
        return entries(from: applied.next, upTo: committed.next, countMax: countMax, bytesMax: Int.max)
    }

    /// The first index of the conflicting entry, if any entry in `incoming` disagrees with ours.
    /// Returns nil when every incoming entry is already present (or compacted and so committed).
    func findConflict(_ incoming: [Entry]) -> LogIndex? {
        for e in incoming where e.index > compacted.index {
            if term(at: e.index) != e.term { return e.index }
        }
        return nil
    }

    /// The first index of the run of entries with term `term` that contains `index` (searching
    /// back no further than the snapshot). Used for the conflict hint (Raft §5.3 optimisation).
    func firstIndex(ofTermAt index: LogIndex) -> LogIndex {
        guard let t = term(at: index) else { return index }
        var i = index
        while i.previous > compacted.index, term(at: i.previous) == t { i = i.previous }
        return i
    }

    /// The last index whose term is `term`, searching back from `index`; nil if there is none.
    func lastIndex(ofTerm t: Term, atOrBefore index: LogIndex) -> LogIndex? {
        var i = min(index, lastIndex)
        while i > compacted.index {
            guard let here = term(at: i) else { return nil }
            if here == t { return i }
            if here < t { return nil }
            i = i.previous
        }
        return nil
    }

    /// Leader append of a new entry.
    mutating func append(_ e: Entry, checkTerm: Bool = true) {
        precondition(e.index == lastIndex.next, "append must continue the log")
        precondition(!checkTerm || e.term >= lastTerm, "terms in a log never decrease")
        entries.append(e)
    }

    /// Follower append: drops our entries from `incoming[0].index` on and appends `incoming`.
    /// `checkTerms` is off only for the injected keep-conflicting-suffix bug.
    mutating func truncateAndAppend(_ incoming: [Entry], checkTerms: Bool = true) {
        guard let start = incoming.first?.index else { return }
        precondition(start > committed, "would truncate a committed entry")
        precondition(start > compacted.index && start <= lastIndex.next, "append leaves a gap")
        if start <= lastIndex { entries.removeSubrange(offset(start)...) }
        if start <= max(stableLast, inFlightLast) {
            // Entries the shell wrote, or is writing, are gone: its next write deletes them first.
            pendingTruncate = min(pendingTruncate ?? start, start)
            stableLast = min(stableLast, start.previous)
            inFlightLast = min(inFlightLast, start.previous)
        }
        for e in incoming { append(e, checkTerm: checkTerms) }
    }

    mutating func commit(to index: LogIndex) {
        guard index > committed else { return }
        precondition(index <= lastIndex, "commit past the end of the log")
        precondition(index > compacted.index, "commit inside the snapshot")
        committed = index
    }

    /// Drops entries up to `index` (the shell has a snapshot there).
    mutating func compact(upTo index: LogIndex) {
        guard index > compacted.index else { return }
        precondition(index <= applied, "compacting unapplied entries")
        let t = term(at: index)!
        entries.removeSubrange(...offset(index))
        compacted = LogPosition(index: index, term: t)
        precondition(firstIndex == index.next, "compaction left a gap")
        precondition(entries.first.map { $0.index == firstIndex } ?? true, "compaction left a gap")
    }

    /// Replaces everything with a received snapshot.
    mutating func restore(_ position: LogPosition) {
        precondition(position.index > committed, "snapshot behind commit")
        entries.removeAll()
        compacted = position
        committed = position.index
        applied = position.index
        stableLast = position.index
        inFlightLast = position.index
        pendingTruncate = nil
    }
}
