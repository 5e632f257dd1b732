import Foundation
import SynodCore
import SynodLMDB
import SynodStateMachine
import SynodWire

/// Why a snapshot could not be restored into a data directory.
public enum RestoreError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The directory already holds a store: restoring never overwrites a node.
    case directoryInUse(path: String)
    /// The snapshot holds no applied entry (saved from a cluster that never committed one).
    case emptySnapshot
    public var description: String {
        switch self {
        case let .directoryInUse(path): return "\(path) already holds a Synod store; restore into a new, empty directory"
        case .emptySnapshot: return "the snapshot has applied index 0: nothing to restore"
        }
    }
}

extension SynodNode {
    /// What `restore(_:into:voters:)` wrote.
    public struct Restored: Sendable {
        /// Records written into the state tables.
        public var records: Int
        /// Member-directory entries of the old cluster left out (see `restore`).
        public var droppedDirectoryEntries: Int
        /// Where the new cluster's log starts: the snapshot's applied index, at term 1.
        public var position: LogPosition
    }

    /// Creates a node's data directory from a snapshot saved by `synod snapshot save` — the
    /// restore half of a backup, for a new cluster (as `etcdctl snapshot restore` does): every
    /// member is restored from the same file with the same `voters`, then started with
    /// `synod serve`.
    ///
    /// Written, in one transaction and then one more: the state tables as saved — the key-value
    /// data, its revision and history, leases, client sessions — but without the old cluster's
    /// member directory (peer addresses replicated by `member add`; they would override the new
    /// `--peers` addresses at startup); the log empty and compacted at the snapshot's applied
    /// index A at term 1, with a checkpoint holding the new membership; hard state term 1,
    /// commit A. The first election then runs at term 2 and the log continues at A + 1.
    public static func restore(_ snapshot: SnapshotFile, into directory: String, voters: [NodeID], options: LMDBOptions = LMDBOptions()) throws -> Restored {
        let files = FileManager.default
        if files.fileExists(atPath: directory + "/data.mdb") { throw RestoreError.directoryInUse(path: directory) }
        guard snapshot.appliedIndex > .zero else { throw RestoreError.emptySnapshot }
        let membership = try Membership(voters: voters)
        let tables = KVNodeStateMachine.tables
        guard let kvOrdinal = tables.firstIndex(of: StateTable("kv")) else { throw StoreError.invalidArgument("state machine without a kv table") }
        var chunker = SnapshotChunker(chunkBytesMax: KVNodeStateMachine.snapshotChunkBytes)
        var chunks: [SnapshotChunk] = []
        var dropped = 0
        try SnapshotChunker.replay(snapshot.chunks, tableCount: tables.count) { ordinal, key, value in
            if ordinal == kvOrdinal && key.starts(with: MemberDirectory.prefix) {
                dropped += 1
                return
            }
            if let full = chunker.add(table: UInt8(ordinal), key: key, value: value) { chunks.append(full) }
        }
        let (last, records, _) = chunker.finish()
        chunks.append(last)
        let position = LogPosition(index: snapshot.appliedIndex, term: Term(1))
        // Built beside the target and renamed into place: a crash midway leaves no half-restored
        // directory that `serve` would start from or `restore` would refuse.
        let staging = directory + ".restoring"
        try? files.removeItem(atPath: staging)
        do {
            let store = try LMDBStore(directory: staging, tables: tables, options: options)
            try store.installSnapshot(Checkpoint(position: position, stateDigest: [], membership: membership), chunks: chunks)
            try store.write(LogWrite(hardState: HardState(term: Term(1), commit: position.index), membership: membership))
        }
        guard rename(staging, directory) == 0 else {
            let e = errno
            try? files.removeItem(atPath: staging)
            throw StoreError.system(operation: "rename", path: directory, errno: e, message: String(cString: strerror(e)))
        }
        return Restored(records: records, droppedDirectoryEntries: dropped, position: position)
    }
}
