import SynodCore
import SynodRaft

/// Everything that shapes one simulated run. The same options give the same run.
public struct SimulationOptions: Sendable {
    public var seed: UInt64
    /// Cluster size, 3 through 7.
    public var nodes: Int = 5
    /// Ticks of the safety phase (faults on). The CLI's `--steps`.
    public var safetyTicks: Int = 400
    /// Most ticks the liveness phase (faults off) may take to elect a leader, finish every
    /// pending client operation and bring every node to the same state.
    public var livenessTicksMax: Int = 400
    public var clients: Int = 3
    /// Clients that propose mesh commands (`MeshWorkload`) to Synod's real state machine, which
    /// every node then runs beside the tiny KV machine; 0 leaves the mesh out.
    public var meshClients: Int = 1
    /// Test-only mesh bugs to inject into every node's state machine.
    public var meshBugs: MeshBugs = []
    public var keys: Int = 3
    /// Fault injection in the safety phase.
    public var faults: FaultRates = .standard
    /// Test-only Raft bugs to inject into every node.
    public var bugs: RaftBugs = []
    /// Serve some reads by lease instead of a heartbeat round.
    public var leaseReads: Bool = false
    /// Clock drift: some ticks, a node's clock ticks twice, but never more often than every
    /// `driftSpacingTicks` ticks, which keeps it within the cores' default lease drift margin
    /// (2 extra ticks per 10-tick election timeout). On by default with `leaseReads`.
    public var clockDrift: Bool? = nil
    /// Fewest ticks between two extra ticks of one node's clock (5: at most 20 % fast).
    public var driftSpacingTicks = 5
    /// The cores' lease drift margin (see `RaftConfig.leaseDriftMarginTicks`).
    public var leaseDriftMarginTicks = 2
    /// The cores' election timeout (`RaftConfig.electionTimeoutTicks`). Longer timeouts make
    /// leases long next to the network's 1–2 tick delays; raise `leaseDriftMarginTicks` with it
    /// (clock drift may run 1 tick in `driftSpacingTicks` fast).
    public var electionTimeoutTicks = 10
    /// A node compacts its log once this many applied entries sit above its snapshot.
    public var compactionThresholdEntries: Int = 24
    /// Keep the trace lines in memory (the digest is computed either way).
    public var recordTrace: Bool = false
    /// Also put every delivered message in the trace (not in the digest, which folds messages in
    /// numerically either way, so the digest does not depend on this switch).
    public var traceMessages: Bool = false
    /// Core settings the simulator may vary (the bug-injection tests sharpen the faults with them).
    public var preVote: Bool = true
    public var checkQuorum: Bool = true
    public var entriesPerMessageMax: Int = 32
    public var appendNoopOnElection: Bool = true
    /// Nodes that start outside the cluster, to be added as learners or voters.
    public var spareNodes: Int = 1
    /// Membership changes (joint consensus, learners) and leadership transfers during the safety phase.
    public var membershipChanges: Bool = true
    /// Per mille of a leader's eligible Readys written asynchronously, as the networked node's
    /// leader does (`RaftCore.advance(_:entriesInFlight:)`): the write reaches the disk a few
    /// ticks later — or never, if the node crashes first — and only then is reported durable.
    public var asyncLeaderWritesPerMille = 500
    /// Most ticks such a write takes to land (uniform from 0): a disk flush is often slower than
    /// a follower's acknowledgement round trip.
    public var asyncWriteTicksMax = 8
    /// Test-only: report asynchronous writes durable at once, before they reach the disk (the
    /// bug the in-flight bookkeeping exists to prevent; see SimulatorTests).
    public var bugReportAsyncWritesEarly = false
    /// Most ticks a node's shell delivers to its core at once when it wakes from a pause; the
    /// rest go to `RaftCore.ticksMissed`, as `synod serve`'s loop does (there 10 of 10 ms; here
    /// 2 of a 10-tick election timeout, so a pause outlasts a lease by far).
    public var tickBurstMax = 2

    public static let nodesRange = 3...7

    public init(seed: UInt64) { self.seed = seed }
}

/// Per-tick fault probabilities (per mille) of the safety phase.
public struct FaultRates: Sendable, Hashable {
    public var dropPerMille = 30
    public var duplicatePerMille = 20
    /// A message is held back long enough to be reordered.
    public var longDelayPerMille = 60
    public var partitionPerMille = 15
    public var healPerMille = 30
    public var crashPerMille = 12
    public var restartPerMille = 60
    /// Targeted crashes ("buggify"): after a node grants a vote, becomes leader or advances its
    /// commit as leader, it crashes at the next crash point with this probability.
    public var crashAfterEventPerMille = 30
    /// Per tick: the leader is asked to change the membership, or to transfer leadership.
    public var membershipChangePerMille = 10
    public var transferPerMille = 4
    /// Ticks a crashed node stays down, at least.
    public var downTicksRange: ClosedRange<Int> = 5...60
    /// Per tick: a running node (the leader half of the time) is paused — a SIGSTOP, a long
    /// stall. It keeps its memory and its sockets: what its peers and clients send waits, and
    /// when it wakes, after `pauseTicksRange` ticks, it first takes its clients' requests and
    /// only then what its peers sent (the order that let a woken leader answer reads from a
    /// lease it no longer held).
    public var pausePerMille = 6
    public var pauseTicksRange: ClosedRange<Int> = 4...40
    /// When a TimeoutNow reaches its target: the target freezes just then (for
    /// `pauseTicksRange`) with this probability, holding the message — it acts on it when it
    /// wakes, perhaps after the leader gave the transfer up. 0 in `standard` (its seeds stay as
    /// they were), on in `heavy`.
    public var pauseTransferTargetPerMille = 0
    /// Such a paused target wakes, instead, the moment the leader that sent it the TimeoutNow
    /// gives the transfer up, and that leader is cut off from its peers (until the next heal),
    /// with this probability: it keeps the lease its followers granted while the target
    /// campaigns, as in `PartitionTests.lateTransfer` on real processes (and the bug
    /// `RaftBugs.leaseSurvivesTransfer`). 0 in `standard`.
    public var isolateTransferSenderPerMille = 0
    /// Snapshot damage: a chunk sent has one byte flipped on the way, and a leader's snapshot
    /// is kept damaged in its memory (its disk copy intact) — each with this probability. The
    /// follower's check must refuse it, and the leader build its bytes again (what
    /// `RaftBugs.resendDamagedSnapshot` breaks). 0 in `standard`.
    public var damageSnapshotPerMille = 0

    public init(dropPerMille: Int = 30, duplicatePerMille: Int = 20, longDelayPerMille: Int = 60, partitionPerMille: Int = 15,
                healPerMille: Int = 30, crashPerMille: Int = 12, restartPerMille: Int = 60, crashAfterEventPerMille: Int = 30, downTicksRange: ClosedRange<Int> = 5...60) {
        self.crashAfterEventPerMille = crashAfterEventPerMille
        self.membershipChangePerMille = 10
        self.transferPerMille = 4
        self.dropPerMille = dropPerMille
        self.duplicatePerMille = duplicatePerMille
        self.longDelayPerMille = longDelayPerMille
        self.partitionPerMille = partitionPerMille
        self.healPerMille = healPerMille
        self.crashPerMille = crashPerMille
        self.restartPerMille = restartPerMille
        self.downTicksRange = downTicksRange
    }

    public static let standard = FaultRates()
    /// Much harsher: lossy network, frequent partitions, short frequent outages, many targeted crashes.
    public static let heavy: FaultRates = {
        var f = FaultRates(dropPerMille: 200, duplicatePerMille: 50, longDelayPerMille: 200, partitionPerMille: 40,
                           healPerMille: 60, crashPerMille: 40, restartPerMille: 300, crashAfterEventPerMille: 200,
                           downTicksRange: 1...15)
        f.membershipChangePerMille = 20
        f.transferPerMille = 8
        f.pausePerMille = 15
        f.pauseTransferTargetPerMille = 250
        f.isolateTransferSenderPerMille = 300
        f.damageSnapshotPerMille = 100
        return f
    }()
    public static let none: FaultRates = {
        var f = FaultRates(dropPerMille: 0, duplicatePerMille: 0, longDelayPerMille: 0, partitionPerMille: 0,
                           healPerMille: 1000, crashPerMille: 0, restartPerMille: 1000, crashAfterEventPerMille: 0)
        f.membershipChangePerMille = 0
        f.transferPerMille = 0
        f.pausePerMille = 0
        return f
    }()
}

/// How a run ended.
public struct SimulationResult: Sendable {
    public var seed: UInt64
    /// Empty when every check passed.
    public var violations: [String]
    public var digest: String
    public var trace: [String]
    public var ticks: Int
    public var operationsCompleted: Int
    public var operationsUnknown: Int
    /// Mesh clients' commands answered (not in the linearizability history).
    public var meshCommandsCompleted: Int
    public var commitIndex: LogIndex
    public var elections: Int
    public var crashes: Int
    public var snapshotsInstalled: Int
    public var membershipChanges: Int
    public var transfers: Int
    public var linearizability: LinearizabilityVerdict?

    public var passed: Bool { violations.isEmpty }
}
