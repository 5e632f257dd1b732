import SynodCore
import SynodPBFT

/// What a Byzantine replica does to the messages its (otherwise ordinary) core produces.
public enum ByzantineBehaviour: String, CaseIterable, Sendable {
    /// As primary, sends different (validly signed) pre-prepares for one sequence number to
    /// different backups.
    case equivocatingPrimary = "equivocate"
    /// As primary, never sends pre-prepares or NEW-VIEW: backups must change view.
    case stallingPrimary = "stall"
    /// As primary, holds every pre-prepare back for longer than the backups' timeout.
    case delayingPrimary = "delay"
    /// Flips bytes of MACs and signatures, and forges messages in other replicas' names.
    case corruptAuthenticators = "forge"
    /// Pre-prepares whose digest does not match their batch; prepares with random digests.
    case wrongDigests = "wrong-digest"
    /// Replays old messages (earlier views, other destinations) at random.
    case replayOldMessages = "replay"
    /// Signs checkpoints with a wrong state digest and serves corrupt state.
    case lyingCheckpoints = "lying-checkpoint"
    /// Adds fabricated prepared certificates to VIEW-CHANGE and bogus pre-prepares to NEW-VIEW,
    /// and asks for view changes out of turn.
    case bogusViewChanges = "bogus-view-change"
    /// Sends nothing at all.
    case silent = "silent"
}

/// Everything that shapes one BFT run. The same options give the same run.
public struct BFTSimulationOptions: Sendable {
    public var seed: UInt64
    /// n = 3f+1 replicas, 4 through 7 (f = 1 or 2).
    public var nodes: Int = 4
    /// Byzantine replicas, at most f.
    public var byzantine: Int = 1
    /// Ticks of the safety phase (faults and Byzantine behaviour on).
    public var safetyTicks: Int = 300
    /// Most ticks the liveness phase may take: a correct primary's view installed on 2f+1
    /// correct replicas and every client operation finished.
    public var livenessTicksMax: Int = 1500
    public var clients: Int = 3
    /// Clients proposing mesh commands (`MeshWorkload`), which every replica applies with
    /// Synod's real state machine beside the tiny KV machine; 0 leaves the mesh out.
    public var meshClients: Int = 1
    public var keys: Int = 3
    /// Network faults and crash/restart of correct replicas in the safety phase.
    public var faults: FaultRates = .bft
    /// Test-only protocol bugs injected into every replica.
    public var bugs: PBFTBugs = []
    /// Byzantine behaviours to draw from (per seed, per Byzantine replica).
    public var behaviours: [ByzantineBehaviour] = ByzantineBehaviour.allCases
    /// nil: decided per seed.
    public var byzantineClient: Bool?
    /// nil: decided per seed.
    public var readOnlyOptimization: Bool?
    /// Clients send each request to every replica, as `SynodBFTClient` does (`PBFTClient.Config
    /// .sendToAll`), instead of to the primary first. nil: decided per seed.
    public var clientsSendToAll: Bool?
    public var recordTrace = false
    /// Per tick: one correct backup is cut off from every peer (clients still reach it) for
    /// `loneIsolationTicksRange` ticks, long enough for its view-change timer to fire while the
    /// others keep their view — it then changes views alone and must still follow what they
    /// decide once healed (`PBFTBugs.ignoreOlderViews`). 0: never (the default keeps seeds as
    /// they were).
    public var loneIsolationPerMille = 0
    public var loneIsolationTicksRange: ClosedRange<Int> = 30...60

    public static let nodesRange = 4...7

    public init(seed: UInt64) { self.seed = seed }
}

extension FaultRates {
    /// BFT runs: the Raft mix, with fewer crashes (each crashed correct replica eats into the
    /// 2f+1 that must answer).
    public static let bft = FaultRates(dropPerMille: 30, duplicatePerMille: 20, longDelayPerMille: 60,
                                       partitionPerMille: 10, healPerMille: 40, crashPerMille: 4, restartPerMille: 80)
}

/// How a BFT run ended.
public struct BFTSimulationResult: Sendable {
    public var seed: UInt64
    public var violations: [String]
    public var digest: String
    public var trace: [String]
    public var ticks: Int
    public var byzantine: [String]
    public var operationsCompleted: Int
    /// Correct clients' operations abandoned in the safety phase (outcome unknown).
    public var operationsUnknown: Int
    /// Requests the Byzantine client signed (two per timestamp).
    public var byzantineClientRequests: Int
    /// Mesh clients' commands accepted on f+1 matching replies.
    public var meshCommandsCompleted: Int
    public var highestExecuted: UInt64
    public var highestStable: UInt64
    public var view: UInt64
    public var viewChanges: Int
    public var stateTransfers: Int
    public var linearizability: LinearizabilityVerdict?
    public var passed: Bool { violations.isEmpty }
}
