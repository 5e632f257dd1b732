import Foundation
import SynodCore
import SynodStateMachine

/// How a mesh agent runs (`MeshAgentRunner`).
public struct MeshAgentOptions: Sendable {
    public var name: String
    public var capabilities: [String]
    /// Free resources to announce, per mille.
    public var resources: Int
    /// How often it reports (its heartbeat), in milliseconds.
    public var heartbeatMillis: Int64 = 500
    /// How long another agent's heartbeat count may stand still before this one suspects it.
    /// Several heartbeats, so one slow round is not a suspicion.
    public var suspectAfterMillis: Int64 = 2_000
    /// The load to report at each heartbeat (apart from mesh tasks), per mille.
    public var load: @Sendable () -> Int = { 0 }

    public init(name: String, capabilities: [String], resources: Int = MeshRules.one) {
        self.name = name
        self.capabilities = capabilities
        self.resources = resources
    }
}

/// What one agent round saw and did (for logs and callers).
public struct MeshAgentRound: Sendable, Equatable {
    /// Tasks assigned to this agent now, by id.
    public var tasks: [String]
    /// Agents this round proposed as suspected.
    public var suspected: [String]
    /// Whether the agent had been declared failed and joined again this round.
    public var rejoined: Bool
}

/// A mesh agent's loop (DESIGN.md §5's observer side): join, then every heartbeat report its load,
/// read the mesh, suspect every live agent whose heartbeat count has not moved for
/// `suspectAfterMillis` (by this process's clock: observers may use clocks, decisions may not),
/// and hand its current tasks to the caller. The state machine turns a majority of suspicions
/// into a failure verdict. An agent told it was declared failed while still running joins again
/// (SWIM's refutation, as a fresh join). Cancel the task running `run` to stop; `leave` to go.
public final class MeshAgentRunner: Sendable {
    let client: any MeshClient
    let options: MeshAgentOptions

    public init(client: any MeshClient, options: MeshAgentOptions) {
        self.client = client
        self.options = options
    }

    /// Runs until cancelled; `onRound` sees each round's outcome. Errors other than refusals
    /// (an unreachable cluster) are thrown after the client's own retries.
    public func run(onRound: (MeshAgentRound) -> Void) async throws {
        try await client.mesh(.join(agent: options.name, capabilities: options.capabilities, resources: options.resources), ifVersion: nil)
        // Per other agent: the heartbeat count last seen, and for how long this agent has
        // watched it stand still (reset when it proposes suspecting it: it proposes again each
        // period of silence, so a lost proposal, or a majority that only forms later, still ends
        // in a verdict).
        var observed: [String: (beats: UInt64, silentMillis: Double)] = [:]
        var lastLook = ProcessInfo.processInfo.systemUptime
        while !Task.isCancelled {
            var rejoined = false
            do {
                try await client.mesh(.report(agent: options.name, load: options.load(), resources: options.resources), ifVersion: nil)
            } catch ClientError.kv(.meshRefused) {
                // Declared failed (or removed) while running. Not when stopping: a report that
                // commits after the goodbye `leave` must not bring the agent back.
                if Task.isCancelled { return }
                try await client.mesh(.join(agent: options.name, capabilities: options.capabilities, resources: options.resources), ifVersion: nil)
                rejoined = true
            }
            let view = try await client.meshView()
            let now = ProcessInfo.processInfo.systemUptime
            let watched = Self.watchedMillis(sinceLastLook: (now - lastLook) * 1000, options)
            lastLook = now
            var suspected: [String] = []
            for agent in view.agents where agent.name != options.name && !agent.failed {
                guard let seen = observed[agent.name], seen.beats == agent.beats else {
                    observed[agent.name] = (agent.beats, 0)
                    continue
                }
                let silent = seen.silentMillis + watched
                observed[agent.name]!.silentMillis = silent
                guard silent >= Double(options.suspectAfterMillis) else { continue }
                do {
                    try await client.mesh(.suspect(agent: agent.name, observer: options.name), ifVersion: nil)
                    suspected.append(agent.name)
                } catch ClientError.kv(.meshRefused) {
                    // It moved on meanwhile (left, or was declared failed): nothing to do.
                } catch {
                    continue // not proposed (cluster busy or unreachable): try again next round
                }
                observed[agent.name]!.silentMillis = 0
            }
            let live = Set(view.agents.filter { !$0.failed }.map(\.name))
            observed = observed.filter { live.contains($0.key) }
            onRound(MeshAgentRound(tasks: view.tasks.filter { $0.agent == options.name }.map(\.id).sorted(), suspected: suspected, rejoined: rejoined))
            try? await Task.sleep(for: .milliseconds(options.heartbeatMillis))
        }
    }

    /// How much of the time since its last look at the mesh an agent counts as watching the
    /// others: all of it, up to two heartbeats. A longer round means its own report or read was
    /// blocked — the cluster unreachable, nobody's reports committing, its own included — so
    /// the others' counts standing still says nothing about them (Lifeguard's local-health idea,
    /// in its simplest form). An observer whose every round is slow still suspects, later.
    static func watchedMillis(sinceLastLook elapsed: Double, _ o: MeshAgentOptions) -> Double {
        min(elapsed, Double(2 * o.heartbeatMillis))
    }

    /// Leaves the mesh: its tasks are auctioned among the others.
    public func leave() async throws {
        try await client.mesh(.leave(agent: options.name), ifVersion: nil)
    }
}
