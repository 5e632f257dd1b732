import ArgumentParser
import Foundation
import SynodClient
import SynodStateMachine

/// Where mesh commands go: a Raft cluster (`synod mesh`, `GlobalOptions`) or a BFT one
/// (`synod bft mesh`, `BFTClientOptions`, answers accepted on f+1 matching replies).
protocol MeshTarget: ParsableArguments {
    var output: OutputFormat { get }
    /// Runs `body` with a client, closed afterwards; client errors become CLI failures.
    func withMeshClient<T>(_ body: (any MeshClient) async throws -> T) async throws -> T
    /// Where agents learn their tasks, for the help text.
    static var watchHint: String { get }
}

extension GlobalOptions: MeshTarget {
    func withMeshClient<T>(_ body: (any MeshClient) async throws -> T) async throws -> T { try await withClient(self, body) }
    static var watchHint: String { "Agents learn assignments by watching the prefix: synod watch __synod/mesh/tasks/ --prefix" }
}

extension BFTClientOptions: MeshTarget {
    func withMeshClient<T>(_ body: (any MeshClient) async throws -> T) async throws -> T { try await run(body) }
    static var watchHint: String { "BFT mode has no watches: agents learn assignments from `synod bft mesh show` (ordered reads)." }
}

/// `synod mesh ...` and `synod bft mesh ...`: mesh coordination decisions as committed commands
/// (DESIGN.md §5), the same commands in either consensus mode.
struct MeshCLI<Target: MeshTarget>: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "mesh", abstract: "Mesh coordination: agents, failure verdicts, task auctions, work stealing, load balancing.",
            discussion: """
                Agents propose; the cluster decides when the command commits. A task goes to the agent with the best \
                auction score (capability match 0.4, spare load 0.3, past performance 0.2, free resources 0.1) among \
                those offering at least 70% of its capabilities with room for its cost. A majority of the other live \
                agents suspecting an agent is a failure verdict: its tasks are auctioned again. Fractions are 0...1. \
                Every change takes --if-version V (the version `mesh show` prints): refused if the mesh moved on. \(Target.watchHint)
                """,
            subcommands: [Show.self, Route.self, Agent.self, Join.self, Report.self, Suspect.self, Leave.self, Submit.self, Complete.self, Steal.self, Rebalance.self])
    }

    struct Agent: AsyncParsableCommand {
        static var configuration: CommandConfiguration {
            CommandConfiguration(commandName: "agent", abstract: "Run a mesh agent until Ctrl-C: join, heartbeat, suspect silent agents, print assignments; leave on exit.")
        }
        @OptionGroup var globals: Target
        @Argument(help: "Agent name.") var agent: String
        @Option(name: .customLong("cap"), help: "A capability it offers (repeat).") var capabilities: [String] = []
        @Option(help: "Free resources, 0...1.") var resources: Double = 1
        @Option(help: "Load to report apart from mesh tasks, 0...1.") var load: Double = 0
        @Option(name: .customLong("heartbeat-ms"), help: "Heartbeat interval (50...60000 ms).") var heartbeatMillis: Int64 = 500
        @Option(name: .customLong("suspect-after-ms"), help: "Suspect an agent whose heartbeat stood still this long (at least 2 heartbeats).") var suspectAfterMillis: Int64 = 2_000

        func validate() throws {
            guard (50...60_000).contains(heartbeatMillis) else { throw ValidationError("--heartbeat-ms must be 50...60000") }
            guard suspectAfterMillis >= 2 * heartbeatMillis else { throw ValidationError("--suspect-after-ms must be at least twice --heartbeat-ms") }
            _ = try permille(resources, "--resources")
            _ = try permille(load, "--load")
        }

        func run() async throws {
            var options = MeshAgentOptions(name: agent, capabilities: capabilities, resources: try permille(resources, "--resources"))
            let reported = try permille(load, "--load")
            options.load = { reported }
            options.heartbeatMillis = heartbeatMillis
            options.suspectAfterMillis = suspectAfterMillis
            let name = agent
            let suspectAfter = suspectAfterMillis
            try await globals.withMeshClient { client in
                try await Self.run(MeshAgentRunner(client: client, options: options), name: name, suspectAfterMillis: suspectAfter)
            }
        }

        static func run(_ runner: MeshAgentRunner, name: String, suspectAfterMillis: Int64) async throws {
            // Whichever comes first ends the agent: a signal, or the loop failing (cluster unreachable).
            let (ended, ending) = AsyncStream<(any Error)?>.makeStream()
            Task {
                await Signals.waitForTermination()
                ending.yield(nil)
            }
            let loop = Task {
                var last: [String]?
                do {
                    try await runner.run { round in
                        if round.rejoined { say("\(name): was declared failed; joined again") }
                        for s in round.suspected { say("\(name): suspecting \(s) (no heartbeat for \(suspectAfterMillis) ms)") }
                        if round.tasks != last {
                            say("\(name): tasks [\(round.tasks.joined(separator: ","))]")
                            last = round.tasks
                        }
                        // Nobody reads the output any more (a closed pipe): leave, as on Ctrl-C.
                        if StandardOutput.isClosed.load(ordering: .relaxed) { ending.yield(nil) }
                    }
                } catch {
                    ending.yield(error)
                }
            }
            say("\(name): running; Ctrl-C leaves the mesh")
            if StandardOutput.isClosed.load(ordering: .relaxed) { ending.yield(nil) }
            var reason: (any Error)?
            for await r in ended {
                reason = r
                break
            }
            // Wait for the loop to stop, so no report of it can land after the goodbye.
            loop.cancel()
            _ = await loop.result
            if let reason { throw clientFailure("mesh agent \(name) stopped", reason) }
            do {
                try await runner.leave()
            } catch {
                throw clientFailure("mesh agent \(name) could not leave (its tasks stay until a failure verdict)", error)
            }
            say("\(name): left the mesh")
        }
    }

    struct Show: AsyncParsableCommand {
        static var configuration: CommandConfiguration { CommandConfiguration(commandName: "show", abstract: "Show the mesh's agents, tasks and version.") }
        @OptionGroup var globals: Target
        func run() async throws {
            let view = try await globals.withMeshClient { try await $0.meshView() }
            if globals.output == .json {
                let agents = view.agents.map { a in
                    JSON.object([("name", JSON.string(a.name)), ("capabilities", JSON.array(a.capabilities.map(JSON.string))),
                                 ("load", fraction(view.load(of: a))), ("reported_load", fraction(a.baseLoad)), ("resources", fraction(a.resources)),
                                 ("performance", fraction(a.performance)), ("failed", "\(a.failed)"), ("suspected_by", JSON.array(a.suspectedBy.map(JSON.string)))])
                }
                let tasks = view.tasks.map { t in
                    JSON.object([("id", JSON.string(t.id)), ("requires", JSON.array(t.requires.map(JSON.string))), ("cost", fraction(t.cost)),
                                 ("sequence", "\(t.sequence)"), ("agent", t.agent.map(JSON.string) ?? "null")])
                }
                print(JSON.object([("version", "\(view.version)"), ("agents", JSON.array(agents)), ("tasks", JSON.array(tasks))]))
                return
            }
            say("mesh version \(view.version): \(view.agents.count) agents, \(view.tasks.count) tasks")
            for a in view.agents {
                let state = a.failed ? "FAILED" : a.suspectedBy.isEmpty ? "alive" : "suspected by \(a.suspectedBy.joined(separator: ","))"
                say("agent \(a.name)  load \(fraction(view.load(of: a)))  resources \(fraction(a.resources))  performance \(fraction(a.performance))  [\(a.capabilities.joined(separator: ","))]  \(state)")
            }
            for t in view.tasks.sorted(by: { $0.sequence < $1.sequence }) {
                say("task \(t.id)  cost \(fraction(t.cost))  [\(t.requires.joined(separator: ","))]  \(t.agent.map { "on \($0)" } ?? "pending")")
            }
        }
    }

    struct Route: AsyncParsableCommand {
        static var configuration: CommandConfiguration {
            CommandConfiguration(commandName: "route", abstract: "Which live agents own KEY (consistent hashing with replication), in preference order.",
                                 discussion: "Computed from the mesh as read, so every reader at one mesh version routes alike; a join or departure moves only about 1/n of the keys.")
        }
        @OptionGroup var globals: Target
        @Argument(help: "The key to route (a shard, tenant, stream...).") var key: String
        @Option(help: "Owners wanted, 1...\(MeshRing.replicasMax).") var replicas: Int = 1
        func validate() throws {
            guard (1...MeshRing.replicasMax).contains(replicas) else { throw ValidationError("--replicas must be 1...\(MeshRing.replicasMax)") }
        }
        func run() async throws {
            let view = try await globals.withMeshClient { try await $0.meshView() }
            let owners = view.route(key, replicas: replicas)
            if globals.output == .json {
                print(JSON.object([("key", JSON.string(key)), ("version", "\(view.version)"), ("owners", JSON.array(owners.map(JSON.string)))]))
            }
            guard !owners.isEmpty else { throw fail("no live agent in the mesh to route \(key) to", status: ExitStatus.notFound) }
            guard globals.output != .json else { return }
            say("\(key) -> \(owners.joined(separator: ", ")) (mesh version \(view.version))")
        }
    }

    struct Join: AsyncParsableCommand {
        static var configuration: CommandConfiguration { CommandConfiguration(commandName: "join", abstract: "Join (or rejoin after a failure verdict).") }
        @OptionGroup var globals: Target
        @OptionGroup var change: ChangeOptions
        @Argument(help: "Agent name.") var agent: String
        @Option(name: .customLong("cap"), help: "A capability it offers (repeat).") var capabilities: [String] = []
        @Option(help: "Free resources, 0...1.") var resources: Double = 1
        func validate() throws { _ = try permille(resources, "--resources") }
        func run() async throws {
            try await change.propose(.join(agent: agent, capabilities: capabilities, resources: try permille(resources, "--resources")), globals)
        }
    }

    struct Report: AsyncParsableCommand {
        static var configuration: CommandConfiguration { CommandConfiguration(commandName: "report", abstract: "Heartbeat: the agent's load apart from its mesh tasks; clears suspicions.") }
        @OptionGroup var globals: Target
        @OptionGroup var change: ChangeOptions
        @Argument(help: "Agent name.") var agent: String
        @Option(help: "Load apart from mesh tasks, 0...1.") var load: Double
        @Option(help: "Free resources, 0...1 (unchanged if not given).") var resources: Double?
        func validate() throws {
            _ = try permille(load, "--load")
            _ = try resources.map { try permille($0, "--resources") }
        }
        func run() async throws {
            let r = try resources.map { try permille($0, "--resources") }
            try await change.propose(.report(agent: agent, load: try permille(load, "--load"), resources: r), globals)
        }
    }

    struct Suspect: AsyncParsableCommand {
        static var configuration: CommandConfiguration { CommandConfiguration(commandName: "suspect", abstract: "Report that AGENT seems to have failed, as observer --by.") }
        @OptionGroup var globals: Target
        @OptionGroup var change: ChangeOptions
        @Argument(help: "The suspected agent.") var agent: String
        @Option(help: "The observing agent.") var by: String
        func run() async throws { try await change.propose(.suspect(agent: agent, observer: by), globals) }
    }

    struct Leave: AsyncParsableCommand {
        static var configuration: CommandConfiguration { CommandConfiguration(commandName: "leave", abstract: "Leave the mesh; its tasks are auctioned again.") }
        @OptionGroup var globals: Target
        @OptionGroup var change: ChangeOptions
        @Argument(help: "Agent name.") var agent: String
        func run() async throws { try await change.propose(.leave(agent: agent), globals) }
    }

    struct Submit: AsyncParsableCommand {
        static var configuration: CommandConfiguration { CommandConfiguration(commandName: "submit", abstract: "Submit a task: assigned at once by auction, or pending.") }
        @OptionGroup var globals: Target
        @OptionGroup var change: ChangeOptions
        @Argument(help: "Task id.") var task: String
        @Option(name: .customLong("requires"), help: "A capability it needs (repeat).") var requires: [String] = []
        @Option(help: "Load it adds to its agent, 0...1.") var cost: Double = 0.1
        func validate() throws { _ = try permille(cost, "--cost") }
        func run() async throws {
            try await change.propose(.submit(task: task, requires: requires, cost: try permille(cost, "--cost")), globals)
        }
    }

    struct Complete: AsyncParsableCommand {
        static var configuration: CommandConfiguration { CommandConfiguration(commandName: "complete", abstract: "Mark a task done by the agent running it.") }
        @OptionGroup var globals: Target
        @OptionGroup var change: ChangeOptions
        @Argument(help: "Task id.") var task: String
        @Option(help: "The agent running it.") var agent: String
        func run() async throws { try await change.propose(.complete(task: task, agent: agent), globals) }
    }

    struct Steal: AsyncParsableCommand {
        static var configuration: CommandConfiguration { CommandConfiguration(commandName: "steal", abstract: "Work stealing: an idle agent (load < 0.3) takes one task from the busiest.") }
        @OptionGroup var globals: Target
        @OptionGroup var change: ChangeOptions
        @Argument(help: "The idle agent.") var agent: String
        func run() async throws { try await change.propose(.steal(agent: agent), globals) }
    }

    struct Rebalance: AsyncParsableCommand {
        static var configuration: CommandConfiguration { CommandConfiguration(commandName: "rebalance", abstract: "Move tasks from agents above 0.8 load to agents below 0.3.") }
        @OptionGroup var globals: Target
        @OptionGroup var change: ChangeOptions
        func run() async throws { try await change.propose(.rebalance, globals) }
    }
}

/// Options of every mesh change.
struct ChangeOptions: ParsableArguments {
    @Option(name: .customLong("if-version"), help: "Refuse unless the mesh is still at this version (optimistic concurrency).")
    var ifVersion: Int64?

    func propose(_ command: MeshCommand, _ globals: some MeshTarget) async throws {
        let r = try await globals.withMeshClient { try await $0.mesh(command, ifVersion: ifVersion) }
        if globals.output == .json {
            let moves = r.moves.map { JSON.object([("task", JSON.string($0.task)), ("from", $0.from.map(JSON.string) ?? "null"), ("to", $0.to.map(JSON.string) ?? "null")]) }
            print(JSON.object([("revision", "\(r.revision)"), ("version", "\(r.version)"), ("moves", JSON.array(moves)), ("failed", JSON.array(r.failed.map(JSON.string)))]))
            return
        }
        for a in r.failed { print("agent \(a) declared failed") }
        if r.moves.isEmpty, Self.onlyMoves(command) { print("no task moved") }
        for m in r.moves {
            switch (m.from, m.to) {
            case let (nil, to?): print("task \(m.task) -> \(to)")
            case let (from?, to?): print("task \(m.task) moved \(from) -> \(to)")
            case let (from?, nil): print("task \(m.task) taken from \(from), pending")
            case (nil, nil): print("task \(m.task) pending (no agent can run it now)")
            }
        }
        print("mesh version \(r.version)")
    }
}

extension ChangeOptions {
    /// Whether the command's whole point is moving tasks (so "nothing moved" is worth saying).
    static func onlyMoves(_ command: MeshCommand) -> Bool {
        switch command {
        case .steal, .rebalance: return true
        default: return false
        }
    }
}

/// A 0...1 fraction as the mesh's per mille, or a clear error.
func permille(_ v: Double, _ option: String) throws -> Int {
    guard v.isFinite, (0...1).contains(v) else { throw ValidationError("\(option) must be between 0 and 1, not \(v)") }
    return Int((v * Double(MeshRules.one)).rounded())
}

/// Per mille as a 0...1 decimal, e.g. 0.35.
func fraction(_ permille: Int) -> String {
    let whole = permille / MeshRules.one, rest = permille % MeshRules.one
    var digits = String(rest)
    while digits.count < 3 { digits = "0" + digits }
    while digits.count > 1 && digits.hasSuffix("0") { digits.removeLast() }
    return "\(whole).\(digits)"
}
