import SynodCore
import SynodRaft

/// A deterministic cluster simulation (after TigerBeetle's VOPR): a safety phase with faults,
/// then a liveness phase with faults off in which the cluster must converge.
public final class Simulation {
    let options: SimulationOptions
    var random: SeededRandom
    var nodes: [SimNode]
    var network: SimNetwork<Message>
    var checker = SafetyChecker()
    var clients: [SimClient]
    var history: [HistoryOp] = []
    var faults: FaultRates
    var faultsOn = true
    var now = 0
    var eventClock = 0
    var digest = FNV1a64()
    var trace: [String] = []
    var violations: [String] = []
    var elections = 0
    var crashes = 0
    var snapshotsInstalled = 0
    var membershipChanges = 0
    var transfers = 0
    var meshCommandsCompleted = 0

    public init(options: SimulationOptions) {
        precondition(SimulationOptions.nodesRange.contains(options.nodes), "nodes must be 3...7")
        self.options = options
        random = SeededRandom(seed: options.seed)
        let ids = (1...options.nodes).map { NodeID(UInt64($0)) }
        let membership = try! Membership(voters: ids)
        let meshBugs = options.meshClients > 0 ? options.meshBugs : nil
        nodes = ids.map { SimNode(id: $0, membership: membership, keys: options.keys, meshBugs: meshBugs) }
        for s in 0..<options.spareNodes {
            nodes.append(SimNode(id: NodeID(UInt64(options.nodes + s + 1)), membership: .empty, keys: options.keys, meshBugs: meshBugs))
        }
        network = SimNetwork(nodeCount: nodes.count)
        clients = (1...(options.clients + options.meshClients)).map {
            SimClient(id: UInt64($0), target: ($0 - 1) % options.nodes, keys: options.keys, isMesh: $0 > options.clients)
        }
        faults = options.faults
    }

    /// Runs both phases and every end check.
    public static func run(_ options: SimulationOptions) -> SimulationResult {
        Simulation(options: options).run()
    }

    func config(for id: NodeID) -> RaftConfig {
        var c = RaftConfig(id: id)
        c.leaseReads = options.leaseReads
        c.leaseDriftMarginTicks = options.leaseDriftMarginTicks
        c.electionTimeoutTicks = options.electionTimeoutTicks
        c.bugs = options.bugs
        c.preVote = options.preVote
        c.checkQuorum = options.checkQuorum
        c.entriesPerMessageMax = options.entriesPerMessageMax
        c.appendNoopOnElection = options.appendNoopOnElection
        return c
    }

    public func run() -> SimulationResult {
        record("start seed=\(options.seed) nodes=\(options.nodes)")
        for i in nodes.indices { nodes[i].start(config: config(for: nodes[i].id), random: random.fork(), keys: options.keys) }
        while now < options.safetyTicks && allViolations.isEmpty { step() }
        var converged = false
        if allViolations.isEmpty {
            startLivenessPhase()
            let deadline = now + options.livenessTicksMax
            while now < deadline && allViolations.isEmpty {
                step()
                if isConverged { converged = true; break }
            }
            if !converged && allViolations.isEmpty {
                violations.append("liveness: no convergence within \(options.livenessTicksMax) ticks after faults stopped (\(livenessSummary))")
            }
        }
        var verdict: LinearizabilityVerdict?
        if converged && allViolations.isEmpty {
            checkSameState()
            let v = LinearizabilityChecker.check(history)
            verdict = v
            switch v {
            case .linearizable: break
            case let .notLinearizable(key): violations.append("linearizability: history of key k\(key) is not linearizable")
            case let .inconclusive(key): record("linearizability inconclusive for k\(key) (search bound hit)")
            }
        }
        for v in allViolations { record("VIOLATION \(v)") }
        record("end tick=\(now) commit=\(checker.highestCommitted.rawValue)")
        return SimulationResult(
            seed: options.seed, violations: allViolations, digest: digest.hex, trace: trace, ticks: now,
            operationsCompleted: history.filter { $0.complete != nil }.count,
            operationsUnknown: history.filter { $0.complete == nil }.count, meshCommandsCompleted: meshCommandsCompleted,
            commitIndex: checker.highestCommitted, elections: elections, crashes: crashes,
            snapshotsInstalled: snapshotsInstalled, membershipChanges: membershipChanges, transfers: transfers,
            linearizability: verdict)
    }

    var allViolations: [String] { checker.violations + violations }

    func record(_ line: String) {
        let text = "\(now) \(line)"
        digest.add(text)
        digest.add(byte: 10)
        if options.recordTrace { trace.append(text) }
    }

    /// One tick: deliver, tick, clients, crashes (losing unpersisted Ready), persist/send/apply,
    /// then partitions and restarts, then the safety checks.
    func step() {
        now += 1
        for m in network.due(now: now) {
            let k = Int(m.to.rawValue) - 1
            guard nodes[k].core != nil else { continue }
            if m.type == .timeoutNow { maybePauseTransferTarget(k, sender: m.from) }
            if nodes[k].isPaused {
                nodes[k].heldMessages.append(m)
                continue
            }
            foldIntoDigest(m)
            if options.recordTrace && options.traceMessages { trace.append("\(now)   \(m)") }
            nodes[k].core!.step(m)
        }
        let drift = options.clockDrift ?? options.leaseReads
        for i in nodes.indices where nodes[i].core != nil {
            if nodes[i].isPaused {
                nodes[i].pausedTicks += 1
                continue
            }
            nodes[i].core!.tick()
            nodes[i].ticksSinceExtra += 1
            if drift && nodes[i].ticksSinceExtra >= options.driftSpacingTicks && random.chance(1, in: 2) {
                nodes[i].core!.tick()   // this node's clock runs fast
                nodes[i].ticksSinceExtra = 0
            }
        }
        resumePaused()
        clientsAct()
        if faultsOn && options.membershipChanges { maybeChangeMembership() }
        if faultsOn { maybeCrash() }
        for i in nodes.indices { processReady(i) }
        if faultsOn { maybePartition(); maybeRestart(); maybePause() }
        checkAfterStep()
    }

    func foldIntoDigest(_ m: Message) {
        digest.add(word: UInt64(m.type.rawValue) << 56 | m.from.rawValue << 48 | m.to.rawValue << 40 | m.term.rawValue)
        digest.add(word: m.index.rawValue)
        digest.add(word: UInt64(m.entries.count) << 32 | m.commit.rawValue)
    }

    func checkAfterStep() {
        for i in nodes.indices {
            guard let core = nodes[i].core else { continue }
            if let v = core.invariantViolation { violations.append(v) }
            if core.role != nodes[i].lastRole {
                record("\(core.id) \(core.role) \(core.term)")
                nodes[i].lastRole = core.role
                if core.role == .leader {
                    elections += 1
                    checker.leaderElected(core.id, term: core.term, core: core)
                }
            }
            checker.committed(node: &nodes[i])
        }
    }
}
