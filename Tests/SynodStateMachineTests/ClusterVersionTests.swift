import SynodCore
@testable import SynodStateMachine
import Testing

/// The cluster version: raised by a leader's command, never lowered, kept across restarts and in
/// snapshots; a client's is refused; one above what the replica supports stops the batch whole.
@Suite("Cluster version")
struct ClusterVersionTests {
    @Test("raised by the command, never lowered, and kept across a restart", arguments: StoreKind.allCases)
    func raisedAndKept(_ kind: StoreKind) throws {
        let h = try Harness(kind)
        #expect(h.sm.clusterVersion == 0, "a store that never saw a version entry")
        try h.put("a", "1")
        let revision = h.sm.revision
        #expect(try h.run(.clusterVersion(1)).response == .clusterVersion(ClusterVersionResult(revision: revision, version: 1)))
        #expect(h.sm.clusterVersion == 1)
        #expect(h.sm.revision == revision, "a version changes no key")
        #expect(try h.run(.clusterVersion(0)).response == .clusterVersion(ClusterVersionResult(revision: revision, version: 1)), "never lowered")
        try h.restart()
        #expect(h.sm.clusterVersion == 1)
    }

    @Test("a client's cluster-version command (one with a session) is refused and changes nothing")
    func clientsMayNot() throws {
        let h = try Harness(.memory)
        let r = try h.run(.clusterVersion(1), session: ClientSession(clientID: 3, sequence: 1)).response
        guard case .failure(.invalidRequest) = r else { Issue.record("accepted: \(String(describing: r))"); return }
        #expect(h.sm.clusterVersion == 0)
        let payload = CommandEnvelope(session: ClientSession(clientID: 3, sequence: 2), command: .clusterVersion(1)).encode()
        #expect(CommandEnvelope.movesClusterVersion(payload))
        #expect(CommandEnvelope.movesClusterVersion(CommandEnvelope(session: nil, command: .clusterVersion(1)).encode()))
        #expect(!CommandEnvelope.movesClusterVersion(CommandEnvelope(session: nil, command: .compact(revision: 1)).encode()))
    }

    @Test("a version above what the replica supports throws, and nothing of its batch is applied", arguments: StoreKind.allCases)
    func aboveSupportedStops(_ kind: StoreKind) throws {
        let h = try Harness(kind)
        try h.put("a", "1")
        let applied = try h.sm.appliedIndex()
        let batch = [h.entry(.put(key: b("b"), value: b("2"), lease: nil, prevKV: false)),
                     h.entry(.clusterVersion(KVStateMachine.clusterVersionSupported + 1))]
        #expect(throws: ClusterVersionUnsupported(clusterVersion: KVStateMachine.clusterVersionSupported + 1, supported: KVStateMachine.clusterVersionSupported)) {
            try h.sm.apply(batch)
        }
        #expect(try h.sm.appliedIndex() == applied)
        #expect(try h.get("b") == nil)
        #expect(h.sm.clusterVersion == 0)
        // A replica of a newer build (supporting one more) applies the same batch.
        h.sm.supportedClusterVersion = KVStateMachine.clusterVersionSupported + 1
        _ = try h.sm.apply(batch)
        #expect(h.sm.clusterVersion == KVStateMachine.clusterVersionSupported + 1)
        #expect(try h.get("b")?.value == b("2"))
    }

    @Test("the version travels in a snapshot")
    func inSnapshots() throws {
        let h = try Harness(.memory)
        try h.run(.clusterVersion(1))
        let (_, chunks) = try snapshotBytes(h.store)
        let other = try Harness(.memory)
        try other.store.installSnapshot(appliedIndex: try h.sm.appliedIndex(), chunks: chunks)
        try other.sm.reload()
        #expect(other.sm.clusterVersion == 1)
    }
}
