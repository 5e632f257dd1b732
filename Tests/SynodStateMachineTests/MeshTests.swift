import SynodCore
import SynodSimulation
@testable import SynodStateMachine
import Testing

extension Harness {
    /// Applies a mesh command; returns its result, or fails the test with the refusal.
    @discardableResult
    func mesh(_ command: MeshCommand, ifVersion: Int64? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> MeshResult {
        let response = try run(.mesh(command, ifVersion: ifVersion)).response
        guard case let .mesh(r) = response else {
            Issue.record("not a mesh result: \(String(describing: response))", sourceLocation: sourceLocation)
            return MeshResult(revision: 0, version: 0, moves: [], failed: [])
        }
        return r
    }

    /// The refusal a mesh command gets (nil if it applied).
    func meshError(_ command: MeshCommand, ifVersion: Int64? = nil) throws -> KVError? {
        try run(.mesh(command, ifVersion: ifVersion)).response?.error
    }

    func meshView() throws -> MeshView { try MeshView.decode(try rangeResult(RangeRequest.prefix(MeshKeys.prefix)).kvs) }

    func meshLoad(_ name: String) throws -> Int {
        let view = try meshView()
        return view.load(of: try #require(view.agents.first { $0.name == name }))
    }

    func holder(_ task: String) throws -> String? { try meshView().tasks.first { $0.id == task }?.agent }
}

@Suite("Mesh coordination: decisions made when a command commits")
struct MeshTests {
    @Test("the auction weighs capability, spare load, performance and resources; ties go to the smallest name", arguments: StoreKind.allCases)
    func auction(kind: StoreKind) throws {
        let h = try Harness(kind)
        try h.mesh(.join(agent: "b", capabilities: ["gpu"], resources: 500))
        try h.mesh(.join(agent: "a", capabilities: ["gpu"], resources: 500))
        try h.mesh(.join(agent: "c", capabilities: ["gpu", "ssd"], resources: 500))
        // Equal bids among a, b, c for a gpu task: the smallest name wins.
        #expect(try h.mesh(.submit(task: "t1", requires: ["gpu"], cost: 100)).moves == [MeshMove(task: "t1", from: nil, to: "a")])
        // a now carries 0.1 load: b and c bid higher; b wins the tie between them.
        #expect(try h.holder(h.mesh(.submit(task: "t2", requires: ["gpu"], cost: 100)).moves[0].task) == "b")
        // Only c offers 70 % of {gpu, ssd} (a and b offer 50 %).
        #expect(try h.mesh(.submit(task: "t3", requires: ["gpu", "ssd"], cost: 100)).moves[0].to == "c")
        // More free resources outbid equal load: resources weigh 0.1.
        try h.mesh(.join(agent: "d", capabilities: ["gpu"], resources: 1000))
        #expect(try h.mesh(.submit(task: "t4", requires: ["gpu"], cost: 100)).moves[0].to == "d")
        // Spare load outweighs resources: a reports 0.6 load, so it loses to b even with more resources.
        try h.mesh(.report(agent: "a", load: 600, resources: 1000))
        try h.mesh(.report(agent: "b", load: 0, resources: 0))
        try h.mesh(.report(agent: "c", load: 900, resources: 0))
        try h.mesh(.report(agent: "d", load: 900, resources: 0))
        #expect(try h.mesh(.submit(task: "t5", requires: ["gpu"], cost: 50)).moves[0].to == "b")
        #expect(try h.meshLoad("b") == 100 + 50)
        // Weights: 0.4 of spare load outbids all the resources an agent can have.
        #expect(MeshRules.score(match: 1000, load: 0, performance: 500, resources: 0) > MeshRules.score(match: 1000, load: 400, performance: 500, resources: 1000))
    }

    @Test("a task no agent can run waits, and goes to the first that can (on join, report or complete)", arguments: StoreKind.allCases)
    func pending(kind: StoreKind) throws {
        let h = try Harness(kind)
        try h.mesh(.join(agent: "a", capabilities: ["x", "y"], resources: 500))
        // 2 of 3 capabilities is 66.7 %, under the 70 % threshold.
        #expect(try h.mesh(.submit(task: "t", requires: ["x", "y", "z"], cost: 100)).moves == [MeshMove(task: "t", from: nil, to: nil)])
        #expect(try h.holder("t") == nil)
        // Too costly for an agent's spare load: pending until it reports less load.
        #expect(try h.mesh(.submit(task: "big", requires: [], cost: 800)).moves[0].to == "a")
        #expect(try h.mesh(.submit(task: "big2", requires: [], cost: 300)).moves[0].to == nil)
        #expect(try h.mesh(.complete(task: "big", agent: "a")).moves == [MeshMove(task: "big2", from: nil, to: "a")])
        #expect(try h.mesh(.join(agent: "b", capabilities: ["x", "y", "z"], resources: 500)).moves == [MeshMove(task: "t", from: nil, to: "b")])
        #expect(try h.meshView().tasks.allSatisfy { $0.agent != nil })
    }

    @Test("a majority of the other live agents suspecting one is a failure verdict; its tasks are auctioned again", arguments: StoreKind.allCases)
    func failureVerdict(kind: StoreKind) throws {
        let h = try Harness(kind)
        for name in ["a", "b", "c", "d"] { try h.mesh(.join(agent: name, capabilities: ["w"], resources: 500)) }
        try h.mesh(.submit(task: "t1", requires: ["w"], cost: 200))
        try h.mesh(.submit(task: "t2", requires: ["w"], cost: 200))
        try h.mesh(.report(agent: "b", load: 900, resources: nil))
        #expect(try h.holder("t1") == "a")
        // One vote of three others is not a verdict; a report clears it.
        #expect(try h.mesh(.suspect(agent: "a", observer: "b")).failed.isEmpty)
        try h.mesh(.report(agent: "a", load: 0, resources: nil))
        #expect(try h.meshView().agents.first { $0.name == "a" }?.suspectedBy == [])
        #expect(try h.mesh(.suspect(agent: "a", observer: "c")).failed.isEmpty)
        // A failed or unknown observer does not count; c and d (2 of 3) do.
        #expect(try h.meshError(.suspect(agent: "a", observer: "zz")) == .meshRefused("agent zz is not in the mesh; join first"))
        let verdict = try h.mesh(.suspect(agent: "a", observer: "d"))
        #expect(verdict.failed == ["a"])
        // a's task goes to the best remaining bidder (b is loaded: c or d, c by name).
        #expect(verdict.moves == [MeshMove(task: "t1", from: "a", to: "c")])
        #expect(try h.meshView().violations() == [])
        #expect(try h.meshError(.report(agent: "a", load: 0, resources: nil)) == .meshRefused("agent a was declared failed; join again"))
        #expect(try h.meshError(.complete(task: "t1", agent: "a")) == .meshRefused("task t1 is assigned to c, not assigned to a"))
        // Rejoining clears the verdict; performance was halved.
        try h.mesh(.join(agent: "a", capabilities: ["w"], resources: 500))
        let a = try #require(try h.meshView().agents.first { $0.name == "a" })
        #expect(!a.failed && a.performance == MeshRules.initialPerformance / 2)
    }

    @Test("work stealing: an idle agent takes the busiest agent's newest task it can run", arguments: StoreKind.allCases)
    func stealing(kind: StoreKind) throws {
        let h = try Harness(kind)
        try h.mesh(.join(agent: "busy", capabilities: ["w"], resources: 500))
        for i in 1...4 { try h.mesh(.submit(task: "t\(i)", requires: ["w"], cost: 200)) }
        try h.mesh(.join(agent: "idle", capabilities: ["w"], resources: 500))
        try h.mesh(.join(agent: "other", capabilities: ["v"], resources: 500))
        #expect(try h.meshLoad("busy") == 800)
        #expect(try h.mesh(.steal(agent: "idle")).moves == [MeshMove(task: "t4", from: "busy", to: "idle")])
        // Now busy 0.6, idle 0.2: another steal would leave busy no busier than idle (0.4 each); nothing moves.
        let version = try h.meshView().version
        let none = try h.mesh(.steal(agent: "idle"))
        #expect(none.moves.isEmpty && none.version == version, "a steal that moves nothing changes nothing")
        // An agent that cannot run the tasks steals nothing.
        #expect(try h.mesh(.steal(agent: "other")).moves.isEmpty)
    }

    @Test("load balancing moves tasks from agents above 0.8 load to agents below 0.3", arguments: StoreKind.allCases)
    func rebalance(kind: StoreKind) throws {
        let h = try Harness(kind)
        try h.mesh(.join(agent: "hot", capabilities: ["w"], resources: 500))
        for i in 1...5 { try h.mesh(.submit(task: "t\(i)", requires: ["w"], cost: 100)) }
        try h.mesh(.report(agent: "hot", load: 450, resources: nil))
        try h.mesh(.join(agent: "cold", capabilities: ["w"], resources: 500))
        try h.mesh(.report(agent: "cold", load: 100, resources: nil))
        #expect(try h.meshLoad("hot") == 950)
        let r = try h.mesh(.rebalance)
        // hot 0.95 → 0.85 → 0.75 (stop: not above 0.8); cold 0.1 → 0.2 → 0.3.
        #expect(r.moves == [MeshMove(task: "t5", from: "hot", to: "cold"), MeshMove(task: "t4", from: "hot", to: "cold")])
        #expect(try h.mesh(.rebalance).moves.isEmpty)
    }

    @Test("load balancing never bounces a task: a move must leave the target below the source", arguments: StoreKind.allCases)
    func rebalanceNoBounce(kind: StoreKind) throws {
        let h = try Harness(kind)
        try h.mesh(.join(agent: "a", capabilities: [], resources: 500))
        try h.mesh(.submit(task: "big", requires: [], cost: 600))
        try h.mesh(.report(agent: "a", load: 250, resources: nil))
        try h.mesh(.join(agent: "b", capabilities: [], resources: 500))
        try h.mesh(.report(agent: "b", load: 250, resources: nil))
        // a at 0.85, b at 0.25: moving the 0.6 task would only swap them.
        #expect(try h.mesh(.rebalance).moves.isEmpty)
    }

    @Test("verdicts settle: a departure can turn an earlier suspicion into a majority; a rejoin with fewer capabilities gives tasks up", arguments: StoreKind.allCases)
    func verdictsSettle(kind: StoreKind) throws {
        let h = try Harness(kind)
        for name in ["a", "b", "c"] { try h.mesh(.join(agent: name, capabilities: ["w"], resources: 500)) }
        try h.mesh(.submit(task: "t", requires: ["w"], cost: 100))
        #expect(try h.holder("t") == "a")
        // b suspects a: 1 of {b, c} is no majority. Then c leaves: 1 of {b} is.
        #expect(try h.mesh(.suspect(agent: "a", observer: "b")).failed.isEmpty)
        let r = try h.mesh(.leave(agent: "c"))
        #expect(r.failed == ["a"] && r.moves == [MeshMove(task: "t", from: "a", to: "b")])
        // b rejoins without the capability: its task has nowhere to go and waits.
        #expect(try h.mesh(.join(agent: "b", capabilities: ["v"], resources: 500)).moves == [MeshMove(task: "t", from: "b", to: nil)])
        #expect(try h.meshView().violations() == [])
    }

    @Test("a join into a full mesh evicts the agent declared failed longest ago; with none failed it is refused")
    func fullMeshEvictsTheLongestFailed() throws {
        var agents = (0..<MeshLimits.agentsMax).map { MeshAgent(name: "a\(1000 + $0)", capabilities: ["x"], resources: 1000) }
        agents[10].failed = true
        agents[20].failed = true
        agents[20].suspectedBy = []
        agents[30].suspectedBy = ["a1010"]
        var state = MeshState(agents: agents, tasks: [], nextSequence: 0)
        state.failedSince = ["a1010": 50, "a1020": 40]
        try state.execute(.join(agent: "new-1", capabilities: ["x"], resources: 1000))
        #expect(state.agents["a1020"] == nil, "failed at revision 40: evicted first")
        #expect(state.agents["a1010"] != nil && state.agents["new-1"] != nil && state.agents.count == MeshLimits.agentsMax)
        try state.execute(.join(agent: "new-2", capabilities: ["x"], resources: 1000))
        #expect(state.agents["a1010"] == nil && state.agents["a1030"]!.suspectedBy.isEmpty, "its suspicions go with it")
        #expect(state.violations().isEmpty)
        #expect(throws: MeshRefusal.self) { try state.execute(.join(agent: "new-3", capabilities: ["x"], resources: 1000)) }
    }

    @Test("hand-deleted records are mended on the next command; an undecodable record is a refusal, not a crash", arguments: StoreKind.allCases)
    func handEdits(kind: StoreKind) throws {
        let h = try Harness(kind)
        for name in ["a", "b", "c"] { try h.mesh(.join(agent: name, capabilities: [], resources: 500)) }
        try h.mesh(.submit(task: "t", requires: [], cost: 100))
        try h.mesh(.suspect(agent: "b", observer: "a"))
        #expect(try h.holder("t") == "a")
        try h.run(.delete(key: MeshKeys.agent("a"), prevKV: false))
        #expect(try h.meshView().violations() == ["task t is held by a, which is not in the mesh"])
        // The next command, whatever it is, mends the mesh: t goes back to auction, and the
        // deleted agent's suspicion of b is dropped.
        let r = try h.mesh(.steal(agent: "c"))
        #expect(r.moves == [MeshMove(task: "t", from: "a", to: nil), MeshMove(task: "t", from: nil, to: "b")])
        #expect(try h.meshView().violations() == [])
        #expect(try h.meshView().agents.first { $0.name == "b" }?.suspectedBy == [])
        // A record nobody can decode, as an older build's plain put under the prefix left it
        // (format-1 kv record: metadata, then the value inline).
        let index = h.entry(.compact(revision: 0)).index // an index for the raw write, not applied
        try h.sm.store.apply(through: index) { w in
            var rec = ByteWriter()
            rec.u8(1)
            for v in [Int64(2), 2] { rec.u64(UInt64(v)) }
            rec.u32(0)
            rec.u64(1)
            rec.u64(0)
            rec.raw([9, 9])
            try w.put(Tables.kv, MeshKeys.agent("junk"), rec.bytes)
        }
        guard case let .meshRefused(why)? = try h.meshError(.rebalance) else { Issue.record("an undecodable record was not refused"); return }
        #expect(why.contains("__synod/mesh/agents/junk") && why.contains("delete it"))
    }

    @Test("a proposal computed against an old mesh version is refused, and changes nothing", arguments: StoreKind.allCases)
    func staleVersion(kind: StoreKind) throws {
        let h = try Harness(kind)
        let v1 = try h.mesh(.join(agent: "a", capabilities: [], resources: 500)).version
        #expect(v1 == h.sm.revision)
        let v2 = try h.mesh(.join(agent: "b", capabilities: [], resources: 500), ifVersion: v1).version
        #expect(try h.meshError(.submit(task: "t", requires: [], cost: 100), ifVersion: v1) == .meshVersionStale(expected: v1, current: v2))
        #expect(try h.meshView().tasks.isEmpty)
        // A heartbeat is not a decision: it leaves the version alone.
        #expect(try h.mesh(.report(agent: "a", load: 300, resources: 100), ifVersion: v2).version == v2)
        #expect(try h.mesh(.submit(task: "t", requires: [], cost: 100), ifVersion: v2).moves.count == 1)
    }

    @Test("bad proposals are typed refusals; plain writes cannot touch the mesh's keys", arguments: StoreKind.allCases)
    func refusals(kind: StoreKind) throws {
        let h = try Harness(kind)
        for bad: MeshCommand in [.join(agent: "", capabilities: [], resources: 0), .join(agent: "a/b", capabilities: [], resources: 0),
                                 .join(agent: "a", capabilities: ["y", "x"], resources: 0), .join(agent: "a", capabilities: [], resources: 1001),
                                 .submit(task: String(repeating: "t", count: 65), requires: [], cost: 0)] {
            guard case .invalidRequest = try h.meshError(bad) else { Issue.record("\(bad) was not refused as invalid"); continue }
        }
        try h.mesh(.join(agent: "a", capabilities: [], resources: 0))
        #expect(try h.meshError(.join(agent: "a", capabilities: [], resources: 0)) == nil, "rejoining is allowed")
        try h.mesh(.submit(task: "t", requires: [], cost: 0))
        #expect(try h.meshError(.submit(task: "t", requires: [], cost: 0)) == .meshRefused("task t already exists"))
        #expect(try h.meshError(.suspect(agent: "a", observer: "a")) == .meshRefused("agent a cannot suspect itself"))
        #expect(try h.meshError(.leave(agent: "nobody")) == .meshRefused("agent nobody is not in the mesh"))
        guard case .invalidRequest = try h.put("__synod/mesh/agents/a", "forged").error else { Issue.record("a plain put under the mesh prefix applied"); return }
        let txn = Txn(compares: [], success: [.put(key: b("__synod/mesh/state"), value: b("x"), lease: nil, prevKV: false)])
        guard case .invalidRequest = try h.run(.txn(txn)).response?.error else { Issue.record("a txn put under the mesh prefix applied"); return }
        #expect(try h.meshView().agents.map(\.name) == ["a"])
    }

    @Test("random proposals, hand deletes and versioned proposals: both stores decide alike, and every invariant holds after every command")
    func randomProposals() throws {
        let problems = try Self.randomRun(seeds: 1...20)
        #expect(problems.isEmpty, "\(problems.prefix(5))")
    }

    @Test("the invariant check catches an injected bug: a failure verdict that leaves the failed agent's tasks in place")
    func injectedBugCaught() throws {
        #expect(try Self.randomRun(seeds: 1...20, keepTasksOfFailed: true).contains { $0.contains("declared failed") })
    }

    /// Drives both stores with the same random commands (mesh proposals, some carrying the
    /// current or an old version, and plain deletes of mesh records); returns the problems seen:
    /// disagreements between the stores, broken invariants, a task moved twice by one rebalance.
    static func randomRun(seeds: ClosedRange<UInt64>, keepTasksOfFailed: Bool = false) throws -> [String] {
        var problems: [String] = []
        for seed in seeds {
            let memory = try Harness(.memory), lmdb = try Harness(.lmdb)
            for h in [memory, lmdb] { h.sm.testingMeshKeepsTasksOfFailed = keepTasksOfFailed }
            // One store takes every heartbeat's full path: the fast path must decide the same.
            memory.sm.testingMeshSlowHeartbeats = true
            var rng = SeededRandom(seed: seed)
            for step in 0..<200 {
                let command = MeshWorkload.step(&rng, version: try memory.meshView().version, calm: seed % 2 == 1)
                let (x, y) = (try memory.run(command), try lmdb.run(command))
                let at = "seed \(seed) step \(step) \(command)"
                if x.response != y.response || x.events != y.events { problems.append("\(at): stores disagree") }
                if case let .mesh(r)? = x.response, case .mesh(.rebalance, _) = command,
                   case let moved = r.moves.filter({ $0.from != nil && $0.to != nil }), Set(moved.map(\.task)).count != moved.count {
                    problems.append("\(at): a task moved twice: \(r.moves)")
                }
                // The invariants are what an applied mesh command leaves (a hand delete may break
                // them until the next one mends the mesh).
                guard case .mesh? = x.response else { continue }
                let violations = try memory.meshView().violations()
                if !violations.isEmpty { problems.append("\(at): \(violations)"); break }
            }
            if try memory.meshView() != lmdb.meshView() { problems.append("seed \(seed): final views differ") }
        }
        return problems
    }
}
