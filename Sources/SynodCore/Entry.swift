/// What a log entry carries. The raw values are part of the on-disk and wire formats: never reuse one.
public enum EntryKind: UInt8, Sendable, Hashable, CaseIterable {
    /// An application command for the state machine.
    case command = 1
    /// A membership change (payload: encoded `Membership` transition).
    case configuration = 2
    /// An empty entry a new leader appends to commit its term (Raft §8).
    case noop = 3
}

/// One replicated log entry.
public struct Entry: Hashable, Sendable, CustomStringConvertible {
    public var index: LogIndex
    public var term: Term
    public var kind: EntryKind
    /// Opaque bytes interpreted by whoever applies the entry. Bounded by `Limits.entryPayloadBytesMax`.
    public var payload: [UInt8]

    @inlinable
    public init(index: LogIndex, term: Term, kind: EntryKind = .command, payload: [UInt8] = []) {
        self.index = index
        self.term = term
        self.kind = kind
        self.payload = payload
    }

    public var position: LogPosition { LogPosition(index: index, term: term) }

    /// Bytes this entry costs against byte limits (payload plus a fixed header estimate).
    @inlinable public var sizeBytes: Int { payload.count + Entry.headerBytes }
    /// Encoded header size: version, kind, term (index travels in keys or message headers).
    public static let headerBytes = 1 + 1 + 8

    public var description: String { "\(index)@\(term):\(kind)(\(payload.count)B)" }
}

/// Named upper bounds shared by every layer (STYLE.md: put a limit on everything).
public enum Limits {
    /// Largest payload one entry may carry. Larger commands are rejected before they are proposed.
    public static let entryPayloadBytesMax = 1 << 20
    /// Largest number of voters plus learners in one membership.
    public static let membersMax = 64
    /// Largest opaque proof carried by a checkpoint (BFT certificates).
    public static let checkpointProofBytesMax = 1 << 20
    /// Largest state digest carried by a checkpoint.
    public static let stateDigestBytesMax = 64
}
