import Foundation
import SynodCore
import SynodLMDB
@testable import SynodNode
import SynodStateMachine
import Testing

/// The node's side of the cluster version that needs no processes: a snapshot from a cluster
/// past this build's rules is refused after install, as the entry that moved it would be.
@Suite("Cluster version: snapshots")
struct NodeClusterVersionTests {
    static func directory() -> String { NSTemporaryDirectory() + "synod-cv-\(getpid())-\(UInt64.random(in: 0...UInt64.max))" }

    @Test("installing a snapshot of a cluster at a version above this build's stops the node; a build that supports it installs it")
    func snapshotPastTheBuild() throws {
        let (dirA, dirB) = (Self.directory(), Self.directory())
        defer { for d in [dirA, dirB] { try? FileManager.default.removeItem(atPath: d) } }
        let newer = try KVNodeStateMachine(store: try LMDBStore(directory: dirA, tables: KVNodeStateMachine.tables))
        newer.kv.supportedClusterVersion = KVStateMachine.clusterVersionSupported + 1
        let entries = [Entry(index: LogIndex(1), term: Term(1), kind: .command,
                             payload: CommandEnvelope(command: .clusterVersion(KVStateMachine.clusterVersionSupported + 1)).encode()),
                       Entry(index: LogIndex(2), term: Term(1), kind: .command,
                             payload: CommandEnvelope(command: .put(key: Array("k".utf8), value: Array("v".utf8), lease: nil, prevKV: false)).encode())]
        _ = try newer.apply(entries)
        let snapshot = try KVNodeStateMachine.buildSnapshot(newer.store)
        let older = try KVNodeStateMachine(store: try LMDBStore(directory: dirB, tables: KVNodeStateMachine.tables))
        #expect(throws: ClusterVersionUnsupported(clusterVersion: KVStateMachine.clusterVersionSupported + 1, supported: KVStateMachine.clusterVersionSupported)) {
            try older.install(snapshot.data, at: snapshot.index)
        }
        older.kv.supportedClusterVersion = KVStateMachine.clusterVersionSupported + 1
        try older.install(snapshot.data, at: snapshot.index)
        #expect(older.kv.clusterVersion == KVStateMachine.clusterVersionSupported + 1)
        #expect(try older.kv.get(Array("k".utf8))?.value == Array("v".utf8))
    }
}
