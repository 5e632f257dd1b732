import Foundation
import SynodCore
import SynodLMDB

/// Shrinks a node's `data.mdb`: etcd's defragment, offline (`synod storage compact`, `compact`)
/// or on a running node (`synod defrag`, `compactRunning`).
///
/// LMDB reuses the pages that deletes, history compaction and log compaction free, but never
/// gives them back to the filesystem: after a burst of data the file stays as large as it
/// grew. This writes a compacted copy (`LMDBEnvironment.copyCompacted`) beside it, fsyncs it,
/// checks it opens as a Synod store, renames it over `data.mdb` and fsyncs the directory — a
/// crash at any point leaves either the old file or the new one, and at worst a stale
/// `data.mdb.compact` that the next run removes.
///
/// Offline, the node must be stopped: `compact` takes the data directory's lock
/// (`DataDirectoryLock`) and fails with `DataDirectoryInUse` while a node holds it.
public enum StorageCompaction {
    public struct Result: Sendable {
        /// `data.mdb`'s size before and after, in bytes.
        public let bytesBefore: Int64
        public let bytesAfter: Int64
    }

    public static func compact(directory: String) throws -> Result {
        let data = directory + "/data.mdb"
        guard FileManager.default.fileExists(atPath: data) else { throw StoreError.noStore(path: directory) }
        // A BFT replica's store is a working copy its restart throws away (`BFTPromises`), and
        // its lock is another file: nothing to gain, and no lock of ours to keep it safe.
        guard !FileManager.default.fileExists(atPath: directory + "/" + BFTPromises.marker) else {
            throw StoreError.invalidArgument("\(directory) is a BFT replica's directory: its store is rebuilt by state transfer at every restart, so there is nothing to compact")
        }
        let lock = try DataDirectoryLock.acquire(directory)
        defer { lock.release() }
        let copy = data + ".compact"
        if FileManager.default.fileExists(atPath: copy) { try FileManager.default.removeItem(atPath: copy) }
        let before = try size(data)
        if let failure = writeCopy(of: directory, to: copy) {
            try? FileManager.default.removeItem(atPath: copy)
            throw StoreError(failure)
        }
        // The copy must open as a Synod store before it replaces anything.
        try verify(copy: copy, in: directory)
        guard rename(copy, data) == 0 else {
            throw DurableFile.failure("rename", copy)
        }
        try DurableFile.syncDirectory(directory)
        return Result(bytesBefore: before, bytesAfter: try size(data))
    }

    /// Compacts the store of a running node, from its writing thread (the node loop), which it
    /// blocks meanwhile — as etcd's defragment blocks its member. What the loop held is committed
    /// first; the copy is one read view of everything committed; the environment is closed,
    /// the copy renamed over `data.mdb` and the environment opened again with the same database
    /// handles (`LMDBEnvironment.reopen`), waiting for readers on other threads to finish.
    public static func compactRunning(_ store: LMDBStore) throws -> Result {
        let directory = store.environment.path
        let data = directory + "/data.mdb"
        let copy = data + ".compact"
        if FileManager.default.fileExists(atPath: copy) { try FileManager.default.removeItem(atPath: copy) }
        try store.environment.commitHeld()
        let before = try size(data)
        if let failure = copyCompacted(store.environment, to: copy) {
            try? FileManager.default.removeItem(atPath: copy)
            throw StoreError(failure)
        }
        try verify(copy: copy, in: directory)
        try store.environment.reopen {
            guard rename(copy, data) == 0 else { throw DurableFile.failure("rename", copy) }
            try DurableFile.syncDirectory(directory)
        }
        return Result(bytesBefore: before, bytesAfter: try size(data))
    }

    static func copyCompacted(_ environment: LMDBEnvironment, to copy: String) -> LMDBError? {
        do throws(LMDBError) {
            try environment.copyCompacted(toFile: copy)
            return nil
        } catch {
            return error
        }
    }

    /// The environment is opened, copied and closed here, before the rename (its map is the old file).
    static func writeCopy(of directory: String, to copy: String) -> LMDBError? {
        do throws(LMDBError) {
            return copyCompacted(try LMDBEnvironment(directory: directory, options: LMDBOptions()), to: copy)
        } catch {
            return error
        }
    }

    /// Opens the copy alone in a scratch directory (LMDB opens `data.mdb` by name) and reads its
    /// hard state, format and membership; removes the scratch directory either way.
    static func verify(copy: String, in directory: String) throws {
        let scratch = directory + "/compact-check"
        try? FileManager.default.removeItem(atPath: scratch)
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        guard link(copy, scratch + "/data.mdb") == 0 else {
            throw DurableFile.failure("link", copy)
        }
        do {
            let store = try LMDBStore(directory: scratch, tables: KVNodeStateMachine.tables, create: false)
            _ = try store.hardState()
            _ = try store.membership()
            _ = try store.lastIndex()
        } catch {
            try? FileManager.default.removeItem(atPath: copy)
            throw error
        }
    }

    static func size(_ path: String) throws -> Int64 {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return (attributes[.size] as? NSNumber)?.int64Value ?? 0
    }
}
