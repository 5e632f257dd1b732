import SynodCore

/// Why a mesh command was refused (it changed nothing). Returned as `KVError.meshRefused`.
struct MeshRefusal: Error {
    let why: String
    init(_ why: String) { self.why = why }
}

/// The mesh in memory while one command applies: loaded from the store, changed by the command's
/// decision, written back record by record. Pure and deterministic: lookups go through
/// dictionaries, but every walk is over sorted names, so hash order never reaches a decision.
///
/// Invariants (`violations()` checks them; the tests run it after every command):
/// - a task's agent exists and has not failed (a task of a failed or departed agent is pending);
/// - an agent never lists itself, or the same observer twice, among those suspecting it;
/// - at most `MeshLimits.agentsMax` agents and `MeshLimits.tasksMax` tasks.
struct MeshState {
    var agents: [String: MeshAgent]
    var tasks: [String: MeshTask]
    var nextSequence: UInt64
    /// For each failed agent, the revision its record last changed (about when it was declared
    /// failed): a join into a full mesh evicts the one failed longest ago (`loadMesh` fills it).
    var failedSince: [String: Int64] = [:]
    /// Sum of task costs per agent (derived from `tasks`, kept in step by `assign`).
    private(set) var assignedCost: [String: Int] = [:]
    /// Test-only: a failure verdict leaves the failed agent's tasks where they are (the bug
    /// `MeshTests` shows the invariant check catches).
    var testingKeepTasksOfFailed = false
    /// Test-only: pending tasks are auctioned in hash order, not submission order (the bug the
    /// cross-process digest of `synod sim --mode mesh` exists to catch).
    var testingHashOrder = false

    var moves: [MeshMove] = []
    var failed: [String] = []

    init(agents: [MeshAgent], tasks: [MeshTask], nextSequence: UInt64) {
        self.agents = Dictionary(agents.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        self.tasks = Dictionary(tasks.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        // Past every task's sequence even if the mesh's own record was deleted by hand.
        self.nextSequence = max(nextSequence, tasks.map { $0.sequence &+ 1 }.max() ?? 0)
        for id in self.tasks.keys.sorted() {
            if let a = self.tasks[id]!.agent, isLive(a) { assignedCost[a, default: 0] += self.tasks[id]!.cost }
        }
    }

    /// Takes `name` out of the mesh (a leave, or an eviction): its tasks are auctioned among the
    /// others, its suspicions of others dropped, and verdicts settle with one agent fewer.
    mutating func remove(_ name: String) {
        release(name)
        agents[name] = nil
        assignedCost[name] = nil
        failedSince[name] = nil
        for other in agentNames where agents[other]!.suspectedBy.contains(name) {
            agents[other]!.suspectedBy.removeAll { $0 == name }
        }
        settleVerdicts()
    }

    /// Mends what records deleted by hand (`synod del __synod/mesh/...`) can leave behind: a task
    /// held by an agent that is gone or failed goes back to pending, and suspicions by agents that
    /// are gone are dropped (so no list outgrows `MeshLimits.agentsMax`). Returns whether anything
    /// changed; the caller then auctions the pending tasks and writes the mended records.
    mutating func repair() -> Bool {
        var changed = false
        for id in tasks.keys.sorted() {
            if let a = tasks[id]!.agent, !isLive(a) {
                tasks[id]!.agent = nil
                moves.append(MeshMove(task: id, from: a, to: nil))
                changed = true
            }
        }
        for name in agentNames {
            let kept = Array(Set(agents[name]!.suspectedBy.filter { agents[$0] != nil && $0 != name })).sorted()
            if kept != agents[name]!.suspectedBy { agents[name]!.suspectedBy = kept; changed = true }
        }
        return changed
    }

    var agentNames: [String] { agents.keys.sorted() }

    func load(_ name: String) -> Int { min(MeshRules.one, (agents[name]?.baseLoad ?? 0) + assignedCost[name, default: 0]) }

    func isLive(_ name: String) -> Bool { agents[name].map { !$0.failed } ?? false }

    /// Tasks held by `agent`, newest first.
    func tasks(of agent: String) -> [MeshTask] {
        tasks.values.filter { $0.agent == agent }.sorted { ($0.sequence, $0.id) > ($1.sequence, $1.id) }
    }

    /// Moves `task` to `agent` (nil: pending), keeping costs and the move list in step.
    mutating func assign(_ id: String, to agent: String?) {
        guard var task = tasks[id], task.agent != agent else { return }
        if let from = task.agent { assignedCost[from, default: 0] -= task.cost }
        if let agent { assignedCost[agent, default: 0] += task.cost }
        moves.append(MeshMove(task: id, from: task.agent, to: agent))
        task.agent = agent
        tasks[id] = task
    }

    /// Whether `agent` may take `task` now: live, capable enough, with room for its cost.
    func canRun(_ agent: String, _ task: MeshTask) -> Bool {
        guard let a = agents[agent], !a.failed else { return false }
        return MeshRules.match(requires: task.requires, capabilities: a.capabilities) >= MeshRules.matchThreshold
            && load(agent) + task.cost <= MeshRules.one
    }

    /// The auction: the highest-scoring agent among `candidates` that can run `task`; ties go
    /// to the smallest name.
    func winner(_ task: MeshTask, among candidates: [String]) -> String? {
        var best: (score: Int, name: String)?
        for name in candidates where canRun(name, task) {
            let a = agents[name]!
            let s = MeshRules.score(match: MeshRules.match(requires: task.requires, capabilities: a.capabilities),
                                    load: load(name), performance: a.performance, resources: a.resources)
            if best == nil || s > best!.score { best = (s, name) }
        }
        return best?.name
    }

    /// Auctions every pending task, oldest first.
    mutating func assignPending() {
        let unsorted = tasks.values.filter { $0.agent == nil }
        let pending = testingHashOrder ? Array(unsorted) : unsorted.sorted { ($0.sequence, $0.id) < ($1.sequence, $1.id) }
        for task in pending {
            if let w = winner(task, among: agentNames) { assign(task.id, to: w) }
        }
    }

    /// Takes `agent`'s tasks away (oldest first) and auctions each among the others.
    mutating func release(_ agent: String) {
        let others = agentNames.filter { $0 != agent }
        for task in tasks(of: agent).reversed() { assign(task.id, to: winner(task, among: others)) }
    }

    // MARK: Commands

    mutating func execute(_ command: MeshCommand) throws(MeshRefusal) {
        switch command {
        case let .join(name, capabilities, resources):
            if var a = agents[name] {
                a.capabilities = capabilities
                a.resources = resources
                a.failed = false
                a.suspectedBy = []
                a.beats &+= 1
                agents[name] = a
                // Tasks it can no longer run (fewer capabilities) go to others, or back to pending.
                let others = agentNames.filter { $0 != name }
                for task in tasks(of: name).reversed() where MeshRules.match(requires: task.requires, capabilities: capabilities) < MeshRules.matchThreshold {
                    assign(task.id, to: winner(task, among: others))
                }
            } else {
                if agents.count >= MeshLimits.agentsMax {
                    // Full: make room by evicting the agent declared failed longest ago (it holds
                    // no tasks), as an expired session's ephemeral member goes in ZooKeeper.
                    let failedNames = agentNames.filter { agents[$0]!.failed }
                    guard let evict = failedNames.min(by: { (failedSince[$0] ?? 0, $0) < (failedSince[$1] ?? 0, $1) }) else {
                        throw MeshRefusal("the mesh already has \(MeshLimits.agentsMax) agents, none of them failed")
                    }
                    remove(evict)
                }
                agents[name] = MeshAgent(name: name, capabilities: capabilities, resources: resources, beats: 1)
            }
            assignPending()
        case let .report(name, load, resources):
            var a = try live(name)
            a.baseLoad = load
            if let resources { a.resources = resources }
            a.suspectedBy = []
            a.beats &+= 1
            agents[name] = a
            assignPending()
        case let .suspect(name, observer):
            guard name != observer else { throw MeshRefusal("agent \(name) cannot suspect itself") }
            _ = try live(observer)
            guard var a = agents[name] else { throw MeshRefusal("agent \(name) is not in the mesh") }
            guard !a.failed else { return }
            if !a.suspectedBy.contains(observer) { a.suspectedBy = (a.suspectedBy + [observer]).sorted() }
            agents[name] = a
            settleVerdicts()
        case let .leave(name):
            guard agents[name] != nil else { throw MeshRefusal("agent \(name) is not in the mesh") }
            remove(name)
        case let .submit(id, requires, cost):
            guard tasks[id] == nil else { throw MeshRefusal("task \(id) already exists") }
            guard tasks.count < MeshLimits.tasksMax else { throw MeshRefusal("the mesh already has \(MeshLimits.tasksMax) tasks") }
            let task = MeshTask(id: id, requires: requires, cost: cost, sequence: nextSequence, agent: nil)
            nextSequence += 1
            tasks[id] = task
            if let w = winner(task, among: agentNames) { assign(id, to: w) } else { moves.append(MeshMove(task: id, from: nil, to: nil)) }
        case let .complete(id, name):
            guard let task = tasks[id] else { throw MeshRefusal("task \(id) does not exist") }
            guard task.agent == name else { throw MeshRefusal("task \(id) is \(task.agent.map { "assigned to \($0)" } ?? "pending"), not assigned to \(name)") }
            assignedCost[name, default: 0] -= task.cost
            tasks[id] = nil
            agents[name]!.performance = (agents[name]!.performance * 9 + MeshRules.one) / 10
            assignPending()
        case let .steal(thief):
            _ = try live(thief)
            steal(thief)
        case .rebalance:
            rebalance()
        }
    }

    private func live(_ name: String) throws(MeshRefusal) -> MeshAgent {
        guard let a = agents[name] else { throw MeshRefusal("agent \(name) is not in the mesh; join first") }
        guard !a.failed else { throw MeshRefusal("agent \(name) was declared failed; join again") }
        return a
    }

    /// Whether a majority of the live agents other than `name` suspect it.
    func isCondemned(_ name: String) -> Bool {
        guard isLive(name), let a = agents[name], !a.suspectedBy.isEmpty else { return false }
        let liveOthers = agentNames.filter { $0 != name && isLive($0) }.count
        return a.suspectedBy.filter { isLive($0) }.count >= liveOthers / 2 + 1
    }

    /// Declares failed every agent a majority suspects, until none is left: fewer live agents
    /// make a smaller majority, so one verdict (or a departure) can settle another suspicion.
    /// Each pass fails one agent, so this ends within `agents.count` passes.
    private mutating func settleVerdicts() {
        while let name = agentNames.first(where: isCondemned) { declareFailed(name) }
    }

    private mutating func declareFailed(_ name: String) {
        agents[name]!.failed = true
        agents[name]!.suspectedBy = []
        agents[name]!.performance /= 2
        failed.append(name)
        if !testingKeepTasksOfFailed { release(name) }
    }

    /// One task from the most loaded agent holding one `thief` can run, if that leaves the
    /// victim still busier than the thief (no ping-pong).
    private mutating func steal(_ thief: String) {
        let thiefLoad = load(thief)
        guard thiefLoad < MeshRules.underloaded else { return }
        let victims = agentNames.filter { $0 != thief && isLive($0) && load($0) > thiefLoad }
            .sorted { (load($0), $1) > (load($1), $0) }
        for victim in victims {
            if let task = tasks(of: victim).first(where: { canRun(thief, $0) && load(victim) - $0.cost > thiefLoad + $0.cost }) {
                assign(task.id, to: thief)
                return
            }
        }
    }

    /// Moves the newest movable task of the most loaded overloaded agent to the best-scoring
    /// underloaded agent, until none can move or `rebalanceMovesMax` tasks moved.
    private mutating func rebalance() {
        for _ in 0..<MeshLimits.rebalanceMovesMax {
            let over = agentNames.filter { isLive($0) && load($0) > MeshRules.overloaded }.sorted { (load($0), $1) > (load($1), $0) }
            let under = agentNames.filter { isLive($0) && load($0) < MeshRules.underloaded }
            var moved = false
            search: for source in over {
                for task in tasks(of: source) {
                    // Only a move that leaves the target below the source's new load (no bouncing back).
                    let fitting = under.filter { load($0) + task.cost < load(source) - task.cost }
                    if let target = winner(task, among: fitting) {
                        assign(task.id, to: target)
                        moved = true
                        break search
                    }
                }
            }
            if !moved { return }
        }
    }

    /// Broken invariants (empty when all hold); see the type's documentation.
    func violations() -> [String] {
        MeshView(version: 0, agents: agentNames.map { agents[$0]! }, tasks: tasks.keys.sorted().map { tasks[$0]! }).violations()
    }
}
