import SynodCore

/// Classic Raft bugs that tests switch on to prove the simulator's checkers catch them.
/// Never set outside tests: every one of these breaks safety (one, liveness).
public struct RaftBugs: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// A leader commits an entry from an earlier term once a majority holds it (the paper's
    /// Figure 8 mistake) instead of waiting for an entry of its own term.
    public static let commitPreviousTermByCounting = RaftBugs(rawValue: 1 << 0)
    /// A node grants its vote but the vote is left out of the hard state it asks the shell to persist.
    public static let voteWithoutPersisting = RaftBugs(rawValue: 1 << 1)
    /// A leader answers a ReadIndex request at once, without a heartbeat round confirming it still leads.
    public static let readWithoutLeadershipCheck = RaftBugs(rawValue: 1 << 2)
    /// A follower overwrites conflicting entries but keeps the old suffix after them.
    public static let keepConflictingSuffix = RaftBugs(rawValue: 1 << 3)
    /// A follower answers a ReadIndex request at its own commit index instead of asking the leader.
    public static let followerReadWithoutLeader = RaftBugs(rawValue: 1 << 4)
    /// `ticksMissed` is ignored: a leader's lease counts only delivered ticks, so after a stall
    /// or pause longer than the shell's tick burst it outlives real time (lease reads only).
    public static let leaseIgnoresMissedTicks = RaftBugs(rawValue: 1 << 5)
    /// A leader that sent TimeoutNow trusts its lease again once it gives the transfer up,
    /// though the target may still act on that TimeoutNow and win votes past the followers'
    /// leases (lease reads only).
    public static let leaseSurvivesTransfer = RaftBugs(rawValue: 1 << 6)
    /// A follower whose `snapshotCheck` refused a whole snapshot asks for it from the start,
    /// as for any gap, instead of reporting it damaged: a leader whose own copy is damaged then
    /// sends the same bytes without end (a liveness bug, the only one here).
    public static let resendDamagedSnapshot = RaftBugs(rawValue: 1 << 7)

    public static let all: [(String, RaftBugs)] = [
        ("commit-previous-term", .commitPreviousTermByCounting),
        ("vote-without-persisting", .voteWithoutPersisting),
        ("read-without-leadership-check", .readWithoutLeadershipCheck),
        ("keep-conflicting-suffix", .keepConflictingSuffix),
        ("follower-read-without-leader", .followerReadWithoutLeader),
        ("lease-ignores-missed-ticks", .leaseIgnoresMissedTicks),
        ("lease-survives-transfer", .leaseSurvivesTransfer),
        ("resend-damaged-snapshot", .resendDamagedSnapshot),
    ]
}

/// Tuning and limits of one Raft core. Time is counted in ticks; the shell decides what a tick is.
public struct RaftConfig: Sendable, Hashable {
    /// This node.
    public var id: NodeID
    /// A follower that hears nothing from a leader for a randomized timeout in
    /// `[electionTimeoutTicks, 2 * electionTimeoutTicks)` starts an election (Raft §5.2).
    public var electionTimeoutTicks: Int = 10
    /// A leader sends heartbeats this often. Must be well below `electionTimeoutTicks`.
    public var heartbeatIntervalTicks: Int = 2
    /// Pre-vote (dissertation §9.6): a candidate first asks whether it could win before bumping its term.
    public var preVote: Bool = true
    /// Check-quorum (dissertation §6.2): a leader that has not heard from a quorum within an
    /// election timeout steps down, and followers that heard from a leader recently ignore votes.
    public var checkQuorum: Bool = true
    /// Opt-in lease reads (dissertation §6.4.1). Needs `checkQuorum`. A read is served without a
    /// heartbeat round while a quorum acknowledged a heartbeat sent less than
    /// `electionTimeoutTicks - leaseDriftMarginTicks` ticks ago.
    public var leaseReads: Bool = false
    /// A follower's `readIndex` asks the leader for the read index (a `.readIndex` message; the
    /// answer arrives as a `ReadState` like a leader's own) instead of refusing with `notLeader`,
    /// so any member serves linearizable reads. Off: only the leader answers.
    public var followerReads: Bool = true
    /// Clock-drift allowance for lease reads, in ticks: how much faster another node's ticks may
    /// run than ours over one election timeout. The lease is shortened by this much.
    public var leaseDriftMarginTicks: Int = 2
    /// Most entries in one append message.
    public var entriesPerMessageMax: Int = 32
    /// Most entry bytes (by `Entry.sizeBytes`) in one append message; at least one entry is always sent.
    public var bytesPerMessageMax: Int = 64 * 1024
    /// Most append messages in flight to one follower in the replicate state (pipelining window).
    public var inflightMessagesMax: Int = 4
    /// Most proposed entries a leader holds uncommitted before it refuses new proposals.
    public var uncommittedEntriesMax: Int = 4096
    /// Most committed entries handed to the shell in one `Ready`.
    public var committedEntriesPerReadyMax: Int = 256
    /// Most read requests a leader queues.
    public var pendingReadsMax: Int = 1024
    /// Bytes of snapshot data per InstallSnapshot chunk.
    public var snapshotChunkBytesMax: Int = 512
    /// Largest snapshot a follower gathers before installing it (in memory, as the leader holds
    /// it); a larger one is refused for good, and the leader sends it nothing more until a newer
    /// snapshot (`RaftCore.peersRefusingSnapshot`). 1 GiB: was 64 MiB, which a state already
    /// exceeds after 200,000 puts of 256 bytes (73 MB snapshot, measured).
    public var snapshotBytesMax: Int = 1 << 30
    /// Raft §8: a new leader appends a no-op entry of its term so that earlier entries commit
    /// promptly. Off only in tests that recreate the paper's Figure 8 exactly.
    public var appendNoopOnElection: Bool = true
    /// Test-only bug injection. Empty in production.
    public var bugs: RaftBugs = []

    public init(id: NodeID) {
        precondition(!id.isNone, "a node needs an id")
        self.id = id
    }

    /// Checks the invariants between the settings.
    public func validate() {
        precondition(electionTimeoutTicks >= 2, "election timeout too short")
        precondition(heartbeatIntervalTicks >= 1 && heartbeatIntervalTicks < electionTimeoutTicks, "heartbeat must be shorter than election timeout")
        precondition(entriesPerMessageMax >= 1, "entriesPerMessageMax must be positive")
        precondition(bytesPerMessageMax >= 1, "bytesPerMessageMax must be positive")
        precondition(inflightMessagesMax >= 1, "inflightMessagesMax must be positive")
        precondition(snapshotChunkBytesMax >= 1, "snapshotChunkBytesMax must be positive")
        precondition(snapshotBytesMax >= snapshotChunkBytesMax, "snapshotBytesMax must hold at least one chunk")
        precondition(!leaseReads || checkQuorum, "lease reads need check-quorum")
        precondition(leaseDriftMarginTicks >= 0 && leaseDriftMarginTicks < electionTimeoutTicks, "bad drift margin")
    }
}
