// Storage seams. The cores never see these; the shell (and the simulator) persist what a core's
// `Ready` asks for through them. Two implementations: `SynodLMDB` (durable) and `MemoryStore`
// (the simulator's disk). One conformance suite runs against both.

/// One atomic write: the unit of group commit. Applied in field order — truncate, append, then
/// hard state and membership — and either all of it becomes durable or none of it does.
public struct LogWrite: Sendable {
    /// Delete every entry with index >= this before appending (a Raft log conflict).
    public var truncateFrom: LogIndex?
    /// Entries to append. Invariant: contiguous, and the first continues the log (after truncation).
    public var entries: [Entry]
    public var hardState: HardState?
    public var membership: Membership?

    public init(truncateFrom: LogIndex? = nil, entries: [Entry] = [], hardState: HardState? = nil, membership: Membership? = nil) {
        self.truncateFrom = truncateFrom
        self.entries = entries
        self.hardState = hardState
        self.membership = membership
    }

    public var isEmpty: Bool { truncateFrom == nil && entries.isEmpty && hardState == nil && membership == nil }

    /// True when this write promises nothing: no entries, truncation or membership, and a hard
    /// state (if any) that differs from `persisted` only in the commit index. The commit index is
    /// volatile in Raft (a restarted node relearns it), so such a write may become durable late —
    /// together with the applies it licenses, never after them.
    public func onlyAdvancesCommit(from persisted: HardState) -> Bool {
        guard truncateFrom == nil, entries.isEmpty, membership == nil else { return false }
        guard let hs = hardState else { return true }
        return hs.term == persisted.term && hs.vote == persisted.vote && hs.commit >= persisted.commit
    }
}

/// The replicated log plus hard state.
///
/// How to implement: keep entries keyed by index; remember the compacted position (index and term
/// of the last entry deleted by compaction, or of an installed snapshot) so `term(at:)` answers
/// for it; make `write` atomic and durable before it returns.
public protocol LogStore: AnyObject {
    /// `compactedPosition().index + 1`: the first index that may still be read.
    func firstIndex() throws(StoreError) -> LogIndex
    /// The last index in the log, or the compacted index when the log is empty.
    func lastIndex() throws(StoreError) -> LogIndex
    /// Index and term of the last entry removed by compaction or replaced by a snapshot.
    func compactedPosition() throws(StoreError) -> LogPosition
    /// The term of the entry at `index`; answers for the compacted position too.
    /// Throws `.compacted` below it and `.unavailable` past the last index.
    func term(at index: LogIndex) throws(StoreError) -> Term
    /// Entries in `[from, upTo)`, stopping once `maxBytes` (by `Entry.sizeBytes`) would be
    /// exceeded, but always returning at least one entry when the range is not empty.
    func entries(from: LogIndex, upTo: LogIndex, maxBytes: Int) throws(StoreError) -> [Entry]
    /// Atomically truncates, appends and sets hard state and membership. Durable on return
    /// (unless the store was opened with an explicitly unsafe no-sync option).
    func write(_ batch: LogWrite) throws(StoreError)
    /// Deletes every entry up to and including `index` (log compaction) and records its position.
    /// Precondition: `index <= lastIndex()`; compacting an already compacted index is a no-op.
    func deletePrefix(through index: LogIndex) throws(StoreError)
    /// Discards the whole log and records `position` as compacted (installing a snapshot).
    func reset(to position: LogPosition) throws(StoreError)
    func hardState() throws(StoreError) -> HardState
    /// The last membership written, or `.empty` for a new store.
    func membership() throws(StoreError) -> Membership
}

extension LogStore {
    /// Appends a contiguous batch atomically.
    public func append(_ entries: [Entry]) throws(StoreError) { try write(LogWrite(entries: entries)) }
    /// Deletes every entry with index >= `index`.
    public func truncateSuffix(from index: LogIndex) throws(StoreError) { try write(LogWrite(truncateFrom: index)) }
    public func setHardState(_ hs: HardState) throws(StoreError) { try write(LogWrite(hardState: hs)) }
}

/// Checkpoint metadata: where a snapshot of the state was taken and what proves it.
public struct Checkpoint: Hashable, Sendable {
    /// The last log position the snapshot includes. In BFT mode `term` holds the view.
    public var position: LogPosition
    /// Digest of the state tables at `position` (computed by the state machine).
    public var stateDigest: [UInt8]
    /// Membership in force at `position`.
    public var membership: Membership
    /// Opaque certificate bytes (BFT mode: 2f+1 signed checkpoint messages). Empty in Raft mode.
    public var proof: [UInt8]

    public init(position: LogPosition, stateDigest: [UInt8], membership: Membership, proof: [UInt8] = []) {
        self.position = position
        self.stateDigest = stateDigest
        self.membership = membership
        self.proof = proof
    }
}

/// Checkpoint metadata keyed by index.
public protocol CheckpointStore: AnyObject {
    /// Saves (or replaces) the checkpoint at `checkpoint.position.index`. Durable on return.
    func saveCheckpoint(_ checkpoint: Checkpoint) throws(StoreError)
    /// The checkpoint with the highest index, if any.
    func latestCheckpoint() throws(StoreError) -> Checkpoint?
    func checkpoint(at index: LogIndex) throws(StoreError) -> Checkpoint?
    /// All checkpoint indexes, ascending.
    func checkpointIndexes() throws(StoreError) -> [LogIndex]
    /// Deletes checkpoints with index < `index`.
    func deleteCheckpoints(below index: LogIndex) throws(StoreError)
}
