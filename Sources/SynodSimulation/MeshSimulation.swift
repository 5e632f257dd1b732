import SynodCore
import SynodStateMachine

/// Random mesh workloads (docs/MESH.md), shared by `synod sim --mode mesh` and the tests: mesh
/// proposals over a small name space (so agents, tasks and suspicions collide often), some
/// carrying the current or an old mesh version, and hand deletes of mesh records.
public enum MeshWorkload {
    static let agents = ["a", "b", "c", "d", "e"]

    /// One mesh proposal. A calm run has identical agents (every capability, full resources, no
    /// reported load) and cheap tasks anyone can run: little is pending, so heartbeats take their
    /// fast path, and auctions tie often, so the tie-break decides. Otherwise crowded.
    public static func proposal(_ rng: inout SeededRandom, calm: Bool) -> MeshCommand {
        let caps = ["x", "y", "z"]
        func agent() -> String { agents[Int(rng.next() % 5)] }
        func set() -> [String] { caps.filter { _ in rng.next() % 2 == 0 } }
        func permille() -> Int { Int(rng.next() % 1001) }
        switch rng.next() % 10 {
        case 0: return .join(agent: agent(), capabilities: calm ? caps : set(), resources: calm ? 1000 : permille())
        case 1, 2: return .report(agent: agent(), load: calm ? 0 : permille(), resources: !calm && rng.next() % 2 == 0 ? permille() : nil)
        case 3, 4: return .suspect(agent: agent(), observer: agent())
        case 5: return calm ? .join(agent: agent(), capabilities: caps, resources: 1000) : .leave(agent: agent())
        case 6, 7: return .submit(task: "t\(rng.next() % 12)", requires: calm ? [] : set(), cost: calm ? permille() / 10 : permille() * 7 / 10)
        case 8: return .complete(task: "t\(rng.next() % 12)", agent: agent())
        default: return rng.next() % 2 == 0 ? .steal(agent: agent()) : .rebalance
        }
    }

    /// One step: mostly a proposal (a quarter carrying the current version, a quarter an old
    /// one), sometimes a plain delete of an agent's record or of the mesh's own record.
    public static func step(_ rng: inout SeededRandom, version: Int64, calm: Bool) -> Command {
        switch rng.next() % 20 {
        case 0: return .delete(key: MeshKeys.agent(agents[Int(rng.next() % 5)]), prevKV: false)
        case 1: return .delete(key: MeshKeys.state, prevKV: false)
        default: return .mesh(proposal(&rng, calm: calm), ifVersion: [nil, nil, version, version - 1][Int(rng.next() % 4)])
        }
    }
}

/// What one mesh simulation run saw.
public struct MeshSimulationResult: Sendable {
    public var seed: UInt64
    /// FNV-1a over every response and the final mesh records: two runs of one seed must agree,
    /// in any process (Swift seeds its hashing per process, so this catches hash order reaching
    /// a decision).
    public var digest: String
    /// Broken mesh invariants after an applied mesh command (empty when all held).
    public var violations: [String]
}

/// Runs a mesh workload through the real state machine over the in-memory store, checking the
/// mesh invariants (`MeshView.violations()`) after every applied mesh command.
public enum MeshSimulation {
    /// `hashOrderBug` injects the bug the digest exists to catch (`KVStateMachine.testingMeshHashOrder`).
    public static func run(seed: UInt64, steps: Int, hashOrderBug: Bool = false) throws -> MeshSimulationResult {
        let sm = try SynodStateMachine.KVStateMachine(store: MemoryStore(tables: SynodStateMachine.KVStateMachine.tables))
        sm.testingMeshHashOrder = hashOrderBug
        var rng = SeededRandom(seed: seed)
        var digest = FNV1a64()
        var violations: [String] = []
        for i in 1...steps {
            let command = MeshWorkload.step(&rng, version: try view(sm).version, calm: seed % 2 == 1)
            let entry = Entry(index: LogIndex(UInt64(i)), term: Term(1), kind: .command, payload: CommandEnvelope(command: command).encode())
            guard let response = try sm.apply([entry]).first?.response else { continue }
            for b in response.encode() { digest.add(byte: b) }
            if case .mesh = response {
                let broken = try view(sm).violations()
                if !broken.isEmpty { violations.append("seed \(seed) step \(i) \(command): \(broken)") }
            }
        }
        for kv in try range(sm) { for b in kv.key + kv.value { digest.add(byte: b) } }
        return MeshSimulationResult(seed: seed, digest: digest.hex, violations: violations)
    }

    static func range(_ sm: SynodStateMachine.KVStateMachine) throws -> [KeyValue] {
        guard case let .range(r) = try sm.range(RangeRequest.prefix(MeshKeys.prefix)) else { return [] }
        return r.kvs
    }

    static func view(_ sm: SynodStateMachine.KVStateMachine) throws -> MeshView { try MeshView.decode(try range(sm)) }
}
