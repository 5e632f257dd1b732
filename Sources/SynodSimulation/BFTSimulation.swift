import SynodCore
import SynodCrypto
import SynodPBFT

/// One simulated BFT replica. `durable` is the core as of its last `advance` (the shell persists
/// the protocol state before sending, so that is what survives a crash) and `durableKV` the state
/// machine then.
struct BFTSimNode {
    let id: NodeID
    var core: PBFTReplica?
    var durable: PBFTReplica
    var kv: KVStateMachine
    var durableKV: KVStateMachine
    /// Synod's real state machine for the mesh clients' requests (nil without mesh clients).
    /// Replaced as a whole by a state transfer; a crash keeps it, since it always equals the
    /// state as of `durable` (both are taken at the end of every Ready).
    var mesh: MeshReplica?
    var byzantine: ByzantineBehaviour?
    var restartAt = 0
    var lastView: View = .zero
    var lastActive = true
    /// Byzantine replay: messages seen or sent, bounded.
    var replayable: [PBFTEnvelope] = []
    /// Byzantine equivocation: the pre-prepare the even-id side was sent for each sequence number.
    var alternatives: [SequenceNumber: PrePrepare] = [:]
    /// Byzantine delay: messages held back until their tick.
    var delayed: [(Int, PBFTEnvelope)] = []
    static let replayableMax = 256

    var isUp: Bool { core != nil }
    var isCorrect: Bool { byzantine == nil }
}

/// The deterministic BFT simulation: a safety phase with network faults, crashes of correct
/// replicas and f Byzantine replicas, then a liveness phase (faults off, Byzantine replicas
/// silent) in which a view with a correct primary must be installed and every operation finish.
/// Checkers sit outside the replicas and see only what they execute and certify.
public final class BFTSimulation {
    let options: BFTSimulationOptions
    var random: SeededRandom
    var nodes: [BFTSimNode]
    var network: BFTNetwork
    let crypto: [Principal: Ed25519HMACAuthenticator]
    var clients: [BFTSimClient] = []
    var byzantineClient: ByzantineClient?
    var readOnlyOptimization: Bool
    var clientsSendToAll: Bool
    var history: [HistoryOp] = []
    var faults: FaultRates
    var faultsOn = true
    var now = 0
    /// A backup cut off from its peers alone (`BFTSimulationOptions.loneIsolationPerMille`),
    /// and the tick its links heal.
    var loneIsolation: (node: Int, until: Int)?
    var eventClock = 0
    var digest = FNV1a64()
    var trace: [String] = []
    var violations: [String] = []
    /// Agreement: the batch digest each sequence number was executed with by correct replicas.
    var executed: [SequenceNumber: Digest] = [:]
    /// The state digest correct replicas computed or certified at each checkpoint.
    var checkpointDigests: [SequenceNumber: Digest] = [:]
    var highestExecuted = SequenceNumber.zero
    var meshCommandsCompleted = 0
    /// Exactly-once: the one operation correct replicas executed per Byzantine-client timestamp.
    var byzantineExecuted: [UInt64: KVOp] = [:]

    static let violationsMax = 20

    public init(options: BFTSimulationOptions) {
        precondition(BFTSimulationOptions.nodesRange.contains(options.nodes), "nodes must be 4...7")
        let f = Quorum.byzantineFaultsTolerated(replicas: options.nodes)
        precondition((0...f).contains(options.byzantine), "at most f Byzantine replicas")
        self.options = options
        random = SeededRandom(seed: options.seed)
        let ids = (1...options.nodes).map { NodeID(UInt64($0)) }
        // KV clients 1...clients, the Byzantine client next, then the mesh clients.
        let clientIDs = (1...(options.clients + 1 + options.meshClients)).map { ClientID(UInt64($0)) }
        let keys = DeterministicKeys.authenticators(seed: options.seed, replicas: ids, clients: clientIDs)
        crypto = keys
        network = BFTNetwork(nodeCount: options.nodes)
        faults = options.faults
        var rng = SeededRandom(seed: options.seed)
        let readOnly = options.readOnlyOptimization ?? rng.chance(1, in: 2)
        readOnlyOptimization = readOnly
        // Drawn from a generator of its own, so adding it left every other per-seed draw as it was.
        var sendRNG = SeededRandom(seed: options.seed ^ 0x5E4D_A11C)
        clientsSendToAll = options.clientsSendToAll ?? sendRNG.chance(1, in: 2)
        // Byzantine replicas: half the seeds include view 0's primary, so primary faults act at once.
        var order = ids
        order.shuffle(using: &rng)
        if rng.chance(1, in: 2), let k = order.firstIndex(of: ids[0]) { order.swapAt(0, k) }
        let bad = Set(order.prefix(options.byzantine))
        nodes = ids.map { id in
            var config = PBFTConfig(id: id, replicas: ids)
            config.bugs = options.bugs
            let core = PBFTReplica(config: config, crypto: keys[.replica(id)]!)
            let kv = KVStateMachine(keys: options.keys)
            return BFTSimNode(id: id, core: core, durable: core, kv: kv, durableKV: kv, mesh: options.meshClients > 0 ? MeshReplica(bugs: []) : nil)
        }
        random = rng
        for i in nodes.indices where bad.contains(nodes[i].id) {
            nodes[i].byzantine = options.behaviours[random.int(in: 0...(options.behaviours.count - 1))]
        }
        for c in 1...options.clients {
            var config = PBFTClient.Config(id: ClientID(UInt64(c)), replicas: ids)
            config.readOnlyOptimization = readOnlyOptimization
            config.sendToAll = clientsSendToAll
            clients.append(BFTSimClient(client: PBFTClient(config: config, crypto: crypto[.client(ClientID(UInt64(c)))]!),
                                        sim: SimClient(id: UInt64(c), target: 0, keys: options.keys)))
        }
        for m in 0..<options.meshClients {
            let id = ClientID(UInt64(options.clients + 2 + m))
            var config = PBFTClient.Config(id: id, replicas: ids)
            config.readOnlyOptimization = readOnlyOptimization
            config.sendToAll = clientsSendToAll
            clients.append(BFTSimClient(client: PBFTClient(config: config, crypto: crypto[.client(id)]!),
                                        sim: SimClient(id: id.rawValue, target: 0, keys: options.keys, isMesh: true)))
        }
        if options.byzantineClient ?? random.chance(1, in: 3) {
            let id = ClientID(UInt64(options.clients + 1))
            byzantineClient = ByzantineClient(id: id, crypto: crypto[.client(id)]!)
        }
    }

    public static func run(_ options: BFTSimulationOptions) -> BFTSimulationResult {
        BFTSimulation(options: options).run()
    }

    var f: Int { Quorum.byzantineFaultsTolerated(replicas: options.nodes) }
    /// The behaviours drawn for this seed (the liveness phase silences them all later).
    lazy var byzantineSummary: [String] = nodes.compactMap { n in n.byzantine.map { "\(n.id):\($0.rawValue)" } }

    public func run() -> BFTSimulationResult {
        record("start seed=\(options.seed) nodes=\(options.nodes) byzantine=\(byzantineSummary.joined(separator: ",")) client=\(byzantineClient != nil) ro=\(readOnlyOptimization) all=\(clientsSendToAll)")
        while now < options.safetyTicks && violations.isEmpty { step() }
        var converged = false
        var verdict: LinearizabilityVerdict?
        if violations.isEmpty {
            startLivenessPhase()
            let deadline = now + options.livenessTicksMax
            while now < deadline && violations.isEmpty {
                step()
                if isConverged { converged = true; break }
            }
            if !converged && violations.isEmpty {
                fail("liveness: no convergence within \(options.livenessTicksMax) ticks after faults stopped (\(livenessSummary))")
            }
        }
        if violations.isEmpty {
            let v = LinearizabilityChecker.check(history)
            verdict = v
            switch v {
            case .linearizable: break
            case let .notLinearizable(key): fail("linearizability: history of key k\(key) is not linearizable")
            case let .inconclusive(key): record("linearizability inconclusive for k\(key) (search bound hit)")
            }
        }
        for v in violations { record("VIOLATION \(v)") }
        let correct = nodes.filter(\.isCorrect).compactMap(\.core)
        record("end tick=\(now) executed=\(highestExecuted.rawValue)")
        return BFTSimulationResult(
            seed: options.seed, violations: violations, digest: digest.hex, trace: trace, ticks: now,
            byzantine: byzantineSummary,
            operationsCompleted: history.filter { $0.complete != nil && $0.client <= UInt64(options.clients) }.count,
            operationsUnknown: history.filter { $0.complete == nil && $0.client <= UInt64(options.clients) }.count,
            byzantineClientRequests: history.filter { $0.client > UInt64(options.clients) }.count,
            meshCommandsCompleted: meshCommandsCompleted,
            highestExecuted: highestExecuted.rawValue,
            highestStable: correct.map(\.lowWatermark.rawValue).max() ?? 0,
            view: correct.map(\.view.rawValue).max() ?? 0,
            viewChanges: correct.map(\.viewChangesStarted).reduce(0, +),
            stateTransfers: correct.map(\.stateTransfers).reduce(0, +),
            linearizability: verdict)
    }

    func fail(_ s: String) {
        if violations.count < BFTSimulation.violationsMax { violations.append(s) }
    }

    func record(_ line: String) {
        let text = "\(now) \(line)"
        digest.add(text)
        digest.add(byte: 10)
        if options.recordTrace { trace.append(text) }
    }

    /// One tick: deliver, tick cores and clients, crash, carry out Ready, partitions and restarts,
    /// then the per-step checks.
    func step() {
        now += 1
        for e in network.due(now: now) { deliver(e) }
        for i in nodes.indices where nodes[i].core != nil { nodes[i].core!.tick() }
        clientsAct()
        if faultsOn { maybeCrash() }
        for i in nodes.indices { processReady(i) }
        if faultsOn {
            byzantineActs()
            maybeIsolateLoneBackup()
            maybePartition()
            maybeRestart()
        }
        checkAfterStep()
    }

    func deliver(_ e: PBFTEnvelope) {
        foldIntoDigest(e)
        switch e.to {
        case let .replica(id):
            let k = Int(id.rawValue) - 1
            guard nodes.indices.contains(k), nodes[k].core != nil else { return }
            if nodes[k].byzantine == .replayOldMessages { remember(e, at: k) }
            nodes[k].core!.step(e)
        case let .client(id):
            guard let c = clientIndex(id) else { return }
            clientReceived(c, e)
        }
    }

    func foldIntoDigest(_ e: PBFTEnvelope) {
        var w: UInt64 = 0
        switch e.from { case let .replica(id): w = id.rawValue; case let .client(id): w = 0x100 | id.rawValue }
        switch e.to { case let .replica(id): w = w << 16 | id.rawValue; case let .client(id): w = w << 16 | 0x100 | id.rawValue }
        digest.add(word: w)
        digest.add(e.message.kind)
        digest.add(word: UInt64(e.mac.first ?? 0))
    }

    func send(_ e: PBFTEnvelope) { network.send(e, now: now, faults: faults, random: &random) }
}
