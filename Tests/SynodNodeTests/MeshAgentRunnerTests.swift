import Foundation
import NIOConcurrencyHelpers
import SynodClient
import SynodStateMachine
import Testing

/// `MeshAgentRunner` against a scripted cluster: agent "a" watches agent "b".
@Suite("Mesh agent observer rules")
struct MeshAgentRunnerTests {
    /// A cluster that answers at once, except that `a`'s reports may block (an outage); `b`'s
    /// heartbeat count moves at each look while `bAlive`, except during an outage and for 50 ms
    /// after it.
    final class ScriptedMesh: MeshClient, @unchecked Sendable {
        struct State {
            var bBeats: UInt64 = 1
            var bAlive = true
            var reportsBlockedUntil = 0.0
            var suspicions: [String] = []
        }
        let state = NIOLockedValueBox(State())

        func mesh(_ command: MeshCommand, ifVersion: Int64?) async throws -> MeshResult {
            if case .report = command {
                let until = state.withLockedValue { $0.reportsBlockedUntil }
                while ProcessInfo.processInfo.systemUptime < until { try await Task.sleep(for: .milliseconds(5)) }
            }
            if case let .suspect(agent, _) = command { state.withLockedValue { $0.suspicions.append(agent) } }
            return MeshResult(revision: 1, version: 1, moves: [], failed: [])
        }

        func meshView() async throws -> MeshView {
            let beats = state.withLockedValue { s -> UInt64 in
                // After an outage b's first report commits 50 ms late: a's first looks still see
                // the count from before it.
                if s.bAlive && ProcessInfo.processInfo.systemUptime >= s.reportsBlockedUntil + 0.05 { s.bBeats += 1 }
                return s.bBeats
            }
            return MeshView(version: 1, agents: [MeshAgent(name: "a", capabilities: [], resources: 0, beats: 1),
                                                 MeshAgent(name: "b", capabilities: [], resources: 0, beats: beats)], tasks: [])
        }

        func close() async {}
    }

    /// Runs agent "a" (heartbeat 20 ms, suspicion after 200 ms) until `until` holds or
    /// `seconds` pass; returns whom it suspected. (In a busy test process rounds can take far
    /// longer than a heartbeat; the rules must hold regardless.)
    static func run(_ mesh: ScriptedMesh, seconds: Double, until: @escaping @Sendable ([String]) -> Bool = { _ in false },
                    during: @escaping @Sendable (ScriptedMesh) async -> Void) async -> [String] {
        var o = MeshAgentOptions(name: "a", capabilities: [])
        o.heartbeatMillis = 20
        o.suspectAfterMillis = 200
        let runner = MeshAgentRunner(client: mesh, options: o)
        let task = Task { try await runner.run { _ in } }
        await during(mesh)
        let end = ProcessInfo.processInfo.systemUptime + seconds
        while ProcessInfo.processInfo.systemUptime < end && !until(mesh.state.withLockedValue { $0.suspicions }) {
            try? await Task.sleep(for: .milliseconds(20))
        }
        task.cancel()
        _ = await task.result
        return mesh.state.withLockedValue { $0.suspicions }
    }

    @Test("an agent whose heartbeats stop is suspected, however slowly the observer runs")
    func silentAgentIsSuspected() async {
        let suspicions = await Self.run(ScriptedMesh(), seconds: 30, until: { $0.contains("b") }) { $0.state.withLockedValue { $0.bAlive = false } }
        #expect(suspicions.contains("b"))
    }

    @Test("an outage that blocked the observer's own report is not counted as the others' silence")
    func outageIsNotSilence() async {
        // For 0.6 s (three suspicion periods) nobody's report commits; then b's count moves again,
        // but a's first look after the outage still sees the old count.
        let suspicions = await Self.run(ScriptedMesh(), seconds: 1.0) { mesh in
            try? await Task.sleep(for: .milliseconds(100))
            mesh.state.withLockedValue { $0.reportsBlockedUntil = ProcessInfo.processInfo.systemUptime + 0.6 }
        }
        #expect(suspicions.isEmpty, "suspected after an outage: \(suspicions)")
    }
}
