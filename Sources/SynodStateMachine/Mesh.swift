import SynodCore

// Mesh coordination (DESIGN.md §5): the decisions a mesh of worker agents needs — who is a
// member, who has failed, which agent runs which task, who steals and what moves when load is
// uneven — made by the state machine when a command commits, so every replica reaches the same
// decision. Agents observe and propose; `apply` decides. The state lives in the KV store under
// `MeshKeys.prefix`, so it is replicated, snapshotted, revisioned and watchable like any key
// (an agent watches `__synod/mesh/tasks/` to learn its assignments).
//
// Fractions (load, resources, performance, cost) are integers in per mille (0...1000): integer
// arithmetic is the same on every replica, and scores compare exactly.

/// Named bounds of the mesh state (STYLE.md: a limit on everything).
public enum MeshLimits {
    /// Longest agent name, task id or capability, in bytes.
    public static let nameBytesMax = 64
    /// Most capabilities an agent offers, or a task requires.
    public static let capabilitiesMax = 16
    /// Most agents in the mesh (each mesh command reads them all).
    public static let agentsMax = 256
    /// Most tasks, assigned or pending (each mesh command reads them all).
    public static let tasksMax = 1_024
    /// Longest name a proposal may carry on the wire (longer ones are malformed; those between
    /// `nameBytesMax` and this are refused with a reason).
    public static let proposalNameBytesMax = 1_024
    /// Most capabilities a proposal may carry on the wire (see `proposalNameBytesMax`).
    public static let proposalNamesMax = 1_024
    /// Most tasks one `rebalance` moves.
    public static let rebalanceMovesMax = 64
}

/// The decision rules, with the weights and thresholds of DESIGN.md §5.
public enum MeshRules {
    /// 1.0 in the per-mille fixed point all mesh fractions use.
    public static let one = 1_000
    /// An agent may run a task when it offers at least this share of the task's capabilities.
    public static let matchThreshold = 700
    /// Load balancing moves work away from agents above this load...
    public static let overloaded = 800
    /// ...to agents below this one; and only an agent below it may steal.
    public static let underloaded = 300
    /// Past performance of a newly joined agent.
    public static let initialPerformance = 500

    /// The share of `requires` that `capabilities` offers, per mille (all of it when nothing is required).
    public static func match(requires: [String], capabilities: [String]) -> Int {
        guard !requires.isEmpty else { return one }
        let offered = requires.filter { capabilities.contains($0) }.count
        return offered * one / requires.count
    }

    /// An auction bid: capability match 0.4, spare load 0.3, past performance 0.2, free resources
    /// 0.1 (DESIGN.md §5), in per mille times ten.
    public static func score(match: Int, load: Int, performance: Int, resources: Int) -> Int {
        4 * match + 3 * (one - load) + 2 * performance + 1 * resources
    }
}

/// Where the mesh state lives in the key space. Plain puts under `prefix` are refused: only mesh
/// commands write there, so the records always decode and agree with each other.
public enum MeshKeys {
    public static let prefix: [UInt8] = Array("__synod/mesh/".utf8)
    public static let agentsPrefix: [UInt8] = prefix + Array("agents/".utf8)
    public static let tasksPrefix: [UInt8] = prefix + Array("tasks/".utf8)
    /// The mesh's own record; its mod revision is the mesh version.
    public static let state: [UInt8] = prefix + Array("state".utf8)
    public static func agent(_ name: String) -> [UInt8] { agentsPrefix + Array(name.utf8) }
    public static func task(_ id: String) -> [UInt8] { tasksPrefix + Array(id.utf8) }
}

/// One member of the mesh, as the state machine records it.
public struct MeshAgent: Hashable, Sendable {
    public var name: String
    /// What it can run; sorted, no duplicates.
    public var capabilities: [String]
    /// Free resources it last announced, per mille.
    public var resources: Int
    /// The load it last reported apart from its mesh tasks, per mille.
    public var baseLoad: Int
    /// Past performance, per mille: rises toward 1.0 with each completed task, halves on a failure verdict.
    public var performance: Int
    /// A quorum of observers declared it failed; it holds no tasks until it joins again.
    public var failed: Bool
    /// Agents that suspect it has failed since it last reported; sorted.
    public var suspectedBy: [String]
    /// Joins and reports so far: observers that see it stop changing suspect the agent.
    public var beats: UInt64

    public init(name: String, capabilities: [String], resources: Int, baseLoad: Int = 0, performance: Int = MeshRules.initialPerformance,
                failed: Bool = false, suspectedBy: [String] = [], beats: UInt64 = 0) {
        self.name = name
        self.capabilities = capabilities
        self.resources = resources
        self.baseLoad = baseLoad
        self.performance = performance
        self.failed = failed
        self.suspectedBy = suspectedBy
        self.beats = beats
    }
}

/// One task: assigned to an agent, or pending until one can run it.
public struct MeshTask: Hashable, Sendable {
    public var id: String
    /// Capabilities it needs; sorted, no duplicates.
    public var requires: [String]
    /// Load it adds to the agent that runs it, per mille.
    public var cost: Int
    /// Submission order (pending tasks are assigned oldest first).
    public var sequence: UInt64
    /// The agent running it; nil while pending.
    public var agent: String?

    public init(id: String, requires: [String], cost: Int, sequence: UInt64, agent: String?) {
        self.id = id
        self.requires = requires
        self.cost = cost
        self.sequence = sequence
        self.agent = agent
    }
}

/// A mesh proposal. Every one may carry the mesh version it was computed against
/// (`Command.mesh(_, ifVersion:)`); a stale one is refused, as Nomad's plan applier does.
public enum MeshCommand: Hashable, Sendable {
    /// Joins (or rejoins, clearing a failure verdict) with these capabilities and free resources.
    case join(agent: String, capabilities: [String], resources: Int)
    /// A heartbeat: the agent's load apart from its mesh tasks; clears suspicions of it.
    case report(agent: String, load: Int, resources: Int?)
    /// `observer` suspects `agent` has failed. A majority of the other live agents suspecting it
    /// is a failure verdict: its tasks go to other agents by auction, or back to pending.
    case suspect(agent: String, observer: String)
    /// Leaves the mesh; its tasks go to other agents by auction.
    case leave(agent: String)
    /// A new task, assigned at once by auction, or pending.
    case submit(task: String, requires: [String], cost: Int)
    /// `agent` finished `task`: the task is removed, the agent's performance rises.
    case complete(task: String, agent: String)
    /// Work stealing: an agent below the underloaded mark takes one task from the most loaded
    /// agent holding one it can run.
    case steal(agent: String)
    /// Load balancing: moves tasks from agents above the overloaded mark to agents below the
    /// underloaded one, at most `MeshLimits.rebalanceMovesMax`.
    case rebalance
}

/// A task changing hands: from nil is a new or pending task assigned; to nil is a task left pending.
public struct MeshMove: Hashable, Sendable {
    public var task: String
    public var from: String?
    public var to: String?
    public init(task: String, from: String?, to: String?) { self.task = task; self.from = from; self.to = to }
}

/// The answer to a mesh command.
public struct MeshResult: Hashable, Sendable {
    public var revision: Int64
    /// The mesh version after the command (unchanged if it changed nothing).
    public var version: Int64
    /// Tasks that changed hands, in the order the command moved them.
    public var moves: [MeshMove]
    /// Agents this command declared failed.
    public var failed: [String]
    public init(revision: Int64, version: Int64, moves: [MeshMove], failed: [String]) {
        self.revision = revision
        self.version = version
        self.moves = moves
        self.failed = failed
    }
}

/// The mesh as a reader sees it: decoded from a range over `MeshKeys.prefix`.
public struct MeshView: Hashable, Sendable {
    /// The mesh version (0 before the first mesh command).
    public var version: Int64
    /// Agents by name, each with its tasks' load included in `load(of:)`.
    public var agents: [MeshAgent]
    /// Tasks by id.
    public var tasks: [MeshTask]

    /// A view as given (tools and tests; replicas build theirs from the store).
    public init(version: Int64, agents: [MeshAgent], tasks: [MeshTask]) {
        self.version = version
        self.agents = agents
        self.tasks = tasks
    }

    /// An agent's load: what it reported plus its mesh tasks' costs, capped at 1.0.
    public func load(of agent: MeshAgent) -> Int {
        min(MeshRules.one, agent.baseLoad + tasks.filter { $0.agent == agent.name }.reduce(0) { $0 + $1.cost })
    }

    /// The mesh invariants this view breaks (empty when all hold): every task's agent exists and
    /// has not failed; no agent suspects itself or is suspected twice by one observer; at most
    /// `MeshLimits.agentsMax` agents and `MeshLimits.tasksMax` tasks.
    public func violations() -> [String] {
        var out: [String] = []
        if agents.count > MeshLimits.agentsMax { out.append("\(agents.count) agents") }
        if tasks.count > MeshLimits.tasksMax { out.append("\(tasks.count) tasks") }
        for t in tasks {
            guard let a = t.agent else { continue }
            if let agent = agents.first(where: { $0.name == a }) {
                if agent.failed { out.append("task \(t.id) is held by \(a), which was declared failed") }
            } else {
                out.append("task \(t.id) is held by \(a), which is not in the mesh")
            }
        }
        for a in agents where a.suspectedBy.contains(a.name) || Set(a.suspectedBy).count != a.suspectedBy.count {
            out.append("agent \(a.name) has suspicions \(a.suspectedBy)")
        }
        return out
    }

    /// Decodes the key-values of a range over `MeshKeys.prefix` (ascending by key).
    public static func decode(_ kvs: [KeyValue]) throws(DecodeError) -> MeshView {
        var view = MeshView(version: 0, agents: [], tasks: [])
        for kv in kvs {
            if kv.key == MeshKeys.state {
                view.version = kv.modRevision
            } else if kv.key.starts(with: MeshKeys.agentsPrefix) {
                view.agents.append(try MeshAgent.decode(kv.value))
            } else if kv.key.starts(with: MeshKeys.tasksPrefix) {
                view.tasks.append(try MeshTask.decode(kv.value))
            }
        }
        return view
    }
}
