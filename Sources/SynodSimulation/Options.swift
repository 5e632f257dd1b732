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
    public var keys: Int = 3
    /// Fault injection in the safety phase.
    public var faults: FaultRates = .standard
    /// Test-only Raft bugs to inject into every node.
    public var bugs: RaftBugs = []
    /// Serve some reads by lease instead of a heartbeat round.
    public var leaseReads: Bool = false
    /// A node compacts its log once this many applied entries sit above its snapshot.
    public var compactionThresholdEntries: Int = 24
    /// Keep the trace lines in memory (the digest is computed either way).
    public var recordTrace: Bool = false

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

    public static let standard = FaultRates()
    public static let none = FaultRates(dropPerMille: 0, duplicatePerMille: 0, longDelayPerMille: 0,
                                        partitionPerMille: 0, healPerMille: 1000, crashPerMille: 0, restartPerMille: 1000)
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
    public var commitIndex: LogIndex
    public var elections: Int
    public var crashes: Int
    public var snapshotsInstalled: Int
    public var linearizability: LinearizabilityVerdict?

    public var passed: Bool { violations.isEmpty }
}
