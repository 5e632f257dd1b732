import SynodCore

/// Test-only protocol bugs, to show the simulator's checks can fail. Never set in production.
public struct PBFTBugs: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Prepared and committed-local with 2f instead of 2f+1 (the pre-prepare included).
    public static let quorumOfTwoF = PBFTBugs(rawValue: 1 << 0)
    /// Accept pre-prepares whose digest does not match their batch, and count prepares whatever
    /// digest they carry.
    public static let skipPrepareDigestCheck = PBFTBugs(rawValue: 1 << 1)
    /// NEW-VIEW leaves out the prepared certificate of the highest sequence number (every replica
    /// runs the same faulty rule, so backups accept it).
    public static let dropPreparedInNewView = PBFTBugs(rawValue: 1 << 2)
    /// Accept VIEW-CHANGE messages (alone or inside NEW-VIEW) without checking signatures.
    public static let skipViewChangeSignatureCheck = PBFTBugs(rawValue: 1 << 3)
    /// A replica changing views drops everything of older views, as the paper has it, instead
    /// of executing what 2f+1 others committed there (`observeOlderView`): one that timed out
    /// alone stays behind while the others go on in the view it left.
    public static let ignoreOlderViews = PBFTBugs(rawValue: 1 << 4)
    /// STATUS from a peer changing to a later view alone gets no retransmission of this view's
    /// log: what it missed while cut off never reaches its observer.
    public static let skipRetransmitToLaterView = PBFTBugs(rawValue: 1 << 5)
    /// FETCH-STATE is answered only for this replica's own stable checkpoint, not for one it
    /// computed but has not seen 2f+1 votes for.
    public static let serveOnlyStableCheckpoint = PBFTBugs(rawValue: 1 << 6)
    /// A replica fetching state executes nothing, even the batches it committed itself: one
    /// whose certifiers no longer serve that checkpoint waits for a newer stable one.
    public static let noExecutionWhileFetching = PBFTBugs(rawValue: 1 << 7)

    /// Names for `synod serve --mode bft --testing-pbft-bug` (real-process tests).
    public static let all: [(String, PBFTBugs)] = [
        ("quorum-of-2f", .quorumOfTwoF),
        ("skip-prepare-digest-check", .skipPrepareDigestCheck),
        ("drop-prepared-in-new-view", .dropPreparedInNewView),
        ("skip-view-change-signature-check", .skipViewChangeSignatureCheck),
        ("ignore-older-views", .ignoreOlderViews),
        ("skip-retransmit-to-later-view", .skipRetransmitToLaterView),
        ("serve-only-stable-checkpoint", .serveOnlyStableCheckpoint),
        ("no-execution-while-fetching", .noExecutionWhileFetching),
    ]
}

/// What a replica that restarted without its protocol state may have voted for before: every
/// PRE-PREPARE, PREPARE and COMMIT it sent was in a view ≤ `viewThrough` and for a sequence
/// number ≤ `sequenceThrough` (the shell keeps both durable, raised before it sends past them).
///
/// Such a replica must not contradict what it forgot: it sends normal-case messages only for a
/// (view, sequence) pair above one of the bounds (a pair it never voted on), and VIEW-CHANGE or
/// NEW-VIEW only for views above `viewThrough` once its stable checkpoint has reached
/// `sequenceThrough` — after that, no prepared certificate it may have held is above its
/// checkpoint, so a view change it joins cannot lose one (the paper's safety argument needs every
/// correct replica in a view-change quorum to report what it prepared).
public struct PBFTAmnesia: Sendable, Hashable {
    public var sequenceThrough: SequenceNumber
    public var viewThrough: View
    public init(sequenceThrough: SequenceNumber, viewThrough: View) {
        self.sequenceThrough = sequenceThrough
        self.viewThrough = viewThrough
    }
}

/// Static configuration of one replica. Every limit is named here.
public struct PBFTConfig: Sendable {
    public var id: NodeID
    /// Every replica, sorted; n = 3f+1. The primary of view v is `replicas[v mod n]`.
    public var replicas: [NodeID]
    /// K: a checkpoint is taken after every K sequence numbers.
    public var checkpointInterval: UInt64 = 8
    /// L: the log window; sequence numbers must lie in (h, h+L]. A multiple of K.
    public var logWindow: UInt64 = 32
    /// Most requests in one pre-prepare.
    public var batchRequestsMax: Int = 8
    /// Most request bytes in one pre-prepare (one larger request still goes alone).
    public var batchBytesMax: Int = 16 * 1024
    /// Most pre-prepares the primary keeps in flight (sent, not yet executed); more requests wait
    /// and are batched.
    public var inflightBatchesMax: Int = 2
    /// Most requests waiting to be ordered; more are dropped (the client retransmits).
    public var pendingRequestsMax: Int = 512
    /// Ticks a backup waits for a pending request to execute before it starts a view change.
    public var viewChangeTimeoutTicks: Int = 24
    /// Cap of the exponential back-off across consecutive view changes.
    public var viewChangeTimeoutTicksMax: Int = 24 * 16
    /// Most messages of future views held back until the replica enters that view.
    public var futureMessagesMax: Int = 1024
    /// Most bytes (requests included) of those held messages; each sender may use 1/n of both.
    public var futureBytesMax: Int = 16 << 20
    /// Ticks before a state-transfer request is repeated (to another replica).
    public var stateFetchRetryTicks: Int = 10
    /// Ticks between STATUS multicasts (retransmission of what peers miss).
    public var statusIntervalTicks: Int = 8
    /// Most read-only requests deferred at once.
    public var deferredReadsMax: Int = 64
    /// Set when the replica restarted without its protocol state (see `PBFTAmnesia`).
    public var amnesia: PBFTAmnesia?
    /// Test-only bugs.
    public var bugs: PBFTBugs = []

    public init(id: NodeID, replicas: [NodeID]) {
        self.id = id
        self.replicas = replicas.sorted()
    }

    public var n: Int { replicas.count }
    /// f = ⌊(n-1)/3⌋.
    public var f: Int { Quorum.byzantineFaultsTolerated(replicas: n) }
    /// 2f+1, or 2f under the injected bug.
    public var quorum: Int { bugs.contains(.quorumOfTwoF) ? 2 * f : Quorum.byzantineQuorum(replicas: n) }
    /// 2f+1 always: the size of proofs others must accept (checkpoints, view changes).
    public var certificateQuorum: Int { Quorum.byzantineQuorum(replicas: n) }

    public func primary(of view: View) -> NodeID { replicas[Int(view.rawValue % UInt64(n))] }

    public func validate() {
        precondition(n >= 4, "pBFT needs at least 3f+1 = 4 replicas")
        precondition(replicas.contains(id), "id not among replicas")
        precondition(Set(replicas).count == n, "duplicate replica ids")
        precondition(checkpointInterval > 0 && logWindow % checkpointInterval == 0 && logWindow >= 2 * checkpointInterval,
                     "logWindow must be a multiple of checkpointInterval, at least two intervals")
        precondition(batchRequestsMax > 0 && batchBytesMax > 0 && inflightBatchesMax > 0)
        precondition(viewChangeTimeoutTicks > 0 && viewChangeTimeoutTicksMax >= viewChangeTimeoutTicks)
    }
}
