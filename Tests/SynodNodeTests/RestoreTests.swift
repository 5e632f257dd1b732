import Foundation
import SynodCore
import SynodLMDB
import SynodNode
import SynodStateMachine
import SynodWire
import Testing

/// `SynodNode.restore` without processes: what it keeps and what it leaves out.
@Suite("Snapshot restore")
struct RestoreTests {
    @Test("the old cluster's member directory is left out; user keys, the applied index and the new membership are in")
    func memberDirectoryDropped() throws {
        let base = NSTemporaryDirectory() + "synod-restore-unit-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: base) }
        let old = try LMDBStore(directory: base + "/old", tables: KVStateMachine.tables)
        let kv = try KVStateMachine(store: old)
        let commands: [Command] = [
            .put(key: MemberDirectory.key(NodeID(2)), value: Array("10.9.9.9:7102".utf8), lease: nil, prevKV: false),
            .put(key: Array("user/key".utf8), value: Array("v".utf8), lease: nil, prevKV: false),
        ]
        _ = try kv.apply(commands.enumerated().map { Entry(index: LogIndex(UInt64($0.offset + 1)), term: Term(3), payload: CommandEnvelope(command: $0.element).encode()) })
        var chunks: [SnapshotChunk] = []
        let manifest = try old.streamSnapshot(chunkBytesMax: 1 << 20) { chunks.append($0) }
        let file = SnapshotFile(appliedIndex: manifest.appliedIndex, revision: kv.revision, chunks: chunks)

        let voters = [NodeID(1), NodeID(2), NodeID(3)]
        let restored = try SynodNode.restore(file, into: base + "/new", voters: voters)
        #expect(restored.droppedDirectoryEntries == 1)
        #expect(restored.position == LogPosition(index: LogIndex(2), term: Term(1)))
        let store = try LMDBStore(directory: base + "/new", tables: KVStateMachine.tables)
        let state = try KVStateMachine(store: store)
        let all = try state.range(RangeRequest(key: [0], rangeEnd: [0xFF]))
        guard case let .range(result) = all else { Issue.record("range failed: \(all)"); return }
        #expect(result.kvs.map { String(decoding: $0.key, as: UTF8.self) } == ["user/key"])
        #expect(try store.appliedIndex() == LogIndex(2))
        #expect(try store.compactedPosition() == restored.position)
        #expect(try store.membership().voters == voters)
        #expect(try store.checkpoint(at: LogIndex(2))?.membership.voters == voters)
        #expect(throws: RestoreError.directoryInUse(path: base + "/new")) { _ = try SynodNode.restore(file, into: base + "/new", voters: voters) }
    }
}
