import SynodCore

/// A snapshot as the core knows it: where it ends, the membership there, and the state
/// machine's bytes (opaque to the core).
public struct Snapshot: Hashable, Sendable {
    public var position: LogPosition
    public var membership: Membership
    public var data: [UInt8]
    public init(position: LogPosition, membership: Membership, data: [UInt8]) {
        self.position = position
        self.membership = membership
        self.data = data
    }
}

/// The answer to a ReadIndex request: once the shell has applied through `index`, a read of the
/// state machine is linearizable (dissertation §6.4).
public struct ReadState: Hashable, Sendable {
    public var context: UInt64
    public var index: LogIndex
}

/// Everything the core wants done, in the order the shell must do it. Obtain with `ready()`,
/// carry it out, then call `advance(_:)` with the same value before stepping the core again.
public struct Ready: Sendable {
    /// 1. Install first, when set: a snapshot received from the leader. Make `data` and its
    /// position durable (reset the log store to `position`) and restore the state machine from
    /// it, before anything below.
    public var snapshot: Snapshot?
    /// 2. Then persist atomically, in one `LogWrite` (see `logWrite`): delete entries from
    /// `truncateFrom` on, append `entries`, store `hardState` and `membership`.
    /// This must be durable BEFORE any message below is sent: votes and append acknowledgements
    /// promise that this state survives a crash.
    public var truncateFrom: LogIndex?
    public var entries: [Entry]
    public var hardState: HardState?
    public var membership: Membership?
    /// 3. Then send these, in order. They may be dropped or reordered by the network; never send
    /// them before step 2 is durable.
    public var messages: [Message]
    /// 4. Then apply these committed entries to the state machine, in order. Only committed
    /// entries ever appear here.
    public var committedEntries: [Entry]
    /// 5. ReadIndex answers: serve each read once the state machine has applied through its index.
    public var readStates: [ReadState]
    /// Follower only: contexts of ReadIndex requests the leader refused (it was busy). Fail those
    /// reads; the client may retry.
    public var refusedReads: [UInt64]
    /// Which input this `Ready` reflects; `advance` checks it is still the latest.
    public let inputCount: UInt64

    /// Step 2 as one atomic store write.
    public var logWrite: LogWrite {
        LogWrite(truncateFrom: truncateFrom, entries: entries, hardState: hardState, membership: membership)
    }

    public var isEmpty: Bool {
        snapshot == nil && truncateFrom == nil && entries.isEmpty && hardState == nil && membership == nil
            && messages.isEmpty && committedEntries.isEmpty && readStates.isEmpty && refusedReads.isEmpty
    }
}

/// Why the core refused a request.
public enum RaftError: Error, Hashable, Sendable {
    /// Only the leader accepts proposals and reads; `leaderHint` is the leader we know of, if any.
    case notLeader(leaderHint: NodeID)
    /// Too many uncommitted proposals or queued reads; retry later.
    case busy
    /// The payload exceeds `Limits.entryPayloadBytesMax`.
    case tooLarge
    /// A membership change is still uncommitted or joint; retry once it completes.
    case membershipChangeInProgress
    /// The change or transfer target does not fit the current membership.
    case invalidMembershipChange
    /// The leader is handing over leadership and takes no proposals meanwhile.
    case leadershipTransferInProgress
}

/// What a node looks like from outside, for tests, traces and checkers.
public enum RaftRole: UInt8, Sendable, Hashable, CustomStringConvertible {
    case follower, preCandidate, candidate, leader
    public var description: String {
        switch self {
        case .follower: return "follower"
        case .preCandidate: return "pre-candidate"
        case .candidate: return "candidate"
        case .leader: return "leader"
        }
    }
}

/// The durable state a core is rebuilt from after a restart.
public struct RaftRestartState: Sendable {
    public var hardState: HardState
    /// Position of the last compacted entry (the snapshot's position, or zero).
    public var compacted: LogPosition
    /// Entries after `compacted`, contiguous.
    public var entries: [Entry]
    /// The membership in force.
    public var membership: Membership
    /// The latest snapshot (needed to send to followers that fell behind the compaction).
    public var snapshot: Snapshot?
    /// Highest index already reflected in the state machine. Defaults to the snapshot's index,
    /// for a shell whose state machine is rebuilt from the snapshot on restart.
    public var applied: LogIndex

    public init(hardState: HardState, compacted: LogPosition, entries: [Entry], membership: Membership, snapshot: Snapshot?, applied: LogIndex? = nil) {
        self.applied = applied ?? compacted.index
        self.hardState = hardState
        self.compacted = compacted
        self.entries = entries
        self.membership = membership
        self.snapshot = snapshot
    }

    /// Reads the state from a log store (the snapshot itself lives with the state machine).
    public static func load(from store: some LogStore, snapshot: Snapshot?) throws(StoreError) -> RaftRestartState {
        var hs = try store.hardState()
        let compacted = try store.compactedPosition()
        // Everything compacted was committed; the hard state recording that commit may have been
        // in a write still in flight when the crash came (asynchronous leader writes).
        if hs.commit < compacted.index { hs.commit = compacted.index }
        let first = try store.firstIndex()
        let last = try store.lastIndex()
        var entries: [Entry] = []
        var from = first
        while from <= last {
            let chunk = try store.entries(from: from, upTo: last.next, maxBytes: 1 << 20)
            precondition(!chunk.isEmpty, "store returned no entries for a non-empty range")
            entries += chunk
            from = chunk.last!.index.next
        }
        return RaftRestartState(hardState: hs, compacted: compacted, entries: entries, membership: try store.membership(), snapshot: snapshot)
    }
}
