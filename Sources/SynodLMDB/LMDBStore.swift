import CLMDB
import Glibc
import SynodCore

/// Synod's durable store: one LMDB environment per node directory holding the log, hard state,
/// checkpoints and the state machine's tables (DESIGN.md §4).
///
/// Layout (named databases; index keys are 8-byte big-endian so byte order is numeric order):
/// - `meta`: `format` (u32), `hardstate`, `membership`, `compacted` (index, term), `applied` (u64)
/// - `log`: index → entry value (`Entry.encodeValue`)
/// - `checkpoints`: index → `Checkpoint.encode()`
/// - `snapshots`: index → the snapshot bytes a checkpoint describes (what a leader sends)
/// - `state.<table>`: the state machine's tables
///
/// One instance per directory per process (LMDB's rule). Methods may be called from any thread;
/// writes serialise on LMDB's writer lock.
public final class LMDBStore: @unchecked Sendable {
    /// The on-disk format this build writes and reads. Bump on any incompatible layout change.
    public static let formatVersion: UInt32 = 1

    public let environment: LMDBEnvironment
    public let tables: [StateTable]
    let meta: Database
    let log: Database
    let checkpointsDB: Database
    let snapshotsDB: Database
    let stateDBs: [Database] // parallel to `tables`

    enum MetaKey {
        static let format = Array("format".utf8)
        static let hardState = Array("hardstate".utf8)
        static let membership = Array("membership".utf8)
        static let compacted = Array("compacted".utf8)
        static let applied = Array("applied".utf8)
    }

    /// Opens the store in `directory`, creating the directory and an empty store if needed.
    ///
    /// Throws `.notADirectory`, `.readOnly`, `.notASynodStore` (foreign or corrupt files),
    /// `.incompatibleFormat`, or `.system` — never traps on bad files.
    /// With `create: false` a missing store is `.noStore` instead of a new empty one (for inspection).
    public init(directory: String, tables: [StateTable] = [], options: LMDBOptions = LMDBOptions(), create: Bool = true) throws(StoreError) {
        let sortedTables = Array(Set(tables)).sorted()
        guard sortedTables.count <= StateLimits.tablesMax else {
            throw .invalidArgument("\(sortedTables.count) state tables exceed \(StateLimits.tablesMax)")
        }
        if !create {
            var st = stat()
            guard stat(directory + "/data.mdb", &st) == 0 else {
                var dirStat = stat()
                if stat(directory, &dirStat) == 0 && (dirStat.st_mode & S_IFMT) != S_IFDIR { throw .notADirectory(path: directory) }
                throw .noStore(path: directory)
            }
        }
        try Self.prepareDirectory(directory)
        let env: LMDBEnvironment
        do { env = try LMDBEnvironment(directory: directory, options: options) } catch {
            throw Self.openError(error, path: directory)
        }
        var opened: (Database, Database, Database, Database, [Database]) = (Database(dbi: 0), Database(dbi: 0), Database(dbi: 0), Database(dbi: 0), [])
        do {
            opened = try env.write { txn in try Self.openLayout(env, txn, tables: sortedTables, path: directory) }
        } catch let e as StoreError { throw e } catch let e as LMDBError { throw Self.openError(e, path: directory) } catch {
            throw .corrupt("\(error)")
        }
        self.environment = env
        self.tables = sortedTables
        (meta, log, checkpointsDB, snapshotsDB, stateDBs) = opened
    }

    /// Checks the path: a directory we can write, created if absent.
    static func prepareDirectory(_ path: String) throws(StoreError) {
        var st = stat()
        if stat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFDIR else { throw .notADirectory(path: path) }
            // A directory without the owner's write bit is an operator's "read-only", even for root.
            if st.st_mode & S_IWUSR == 0 || access(path, W_OK) != 0 { throw .readOnly(path: path) }
            return
        }
        let err = errno
        guard err == ENOENT else { throw systemError("stat", path, err) }
        if mkdir(path, 0o755) != 0 {
            let e = errno
            if e == EACCES || e == EROFS { throw .readOnly(path: path) }
            if e == ENOENT {
                // Create parents like `mkdir -p`.
                let parent = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
                guard !parent.isEmpty, parent != path else { throw systemError("mkdir", path, e) }
                try prepareDirectory(parent)
                if mkdir(path, 0o755) != 0 { throw systemError("mkdir", path, errno) }
                return
            }
            throw systemError("mkdir", path, e)
        }
    }

    static func systemError(_ op: String, _ path: String, _ err: Int32) -> StoreError {
        .system(operation: op, path: path, errno: err, message: String(cString: strerror(err)))
    }

    static func openError(_ e: LMDBError, path: String) -> StoreError {
        switch e.code {
        case EACCES, EROFS, EPERM: return .readOnly(path: path)
        case MDB_INVALID: return .notASynodStore(path: path, reason: "data.mdb is not an LMDB file")
        case MDB_VERSION_MISMATCH: return .notASynodStore(path: path, reason: "written by an incompatible LMDB version")
        case MDB_CORRUPTED, MDB_PAGE_NOTFOUND: return .notASynodStore(path: path, reason: "LMDB file is corrupt: \(e.message)")
        case MDB_INCOMPATIBLE: return .notASynodStore(path: path, reason: "LMDB database with an unexpected layout")
        default: return StoreError(e)
        }
    }

    /// Opens or creates the named databases and checks the format version, in one write txn.
    private static func openLayout(_ env: LMDBEnvironment, _ txn: Transaction, tables: [StateTable], path: String) throws
        -> (Database, Database, Database, Database, [Database])
    {
        let main = try env.openDatabase(nil, create: false, in: txn)
        var names: [String] = []
        try txn.withCursor(main) { c in
            var r = try c.move(MDB_FIRST)
            while let rec = r, names.count < 1024 {
                names.append(String(decoding: rec.key, as: UTF8.self))
                r = try c.move(MDB_NEXT)
            }
        }
        let isNew = names.isEmpty
        if !isNew && !names.contains("meta") {
            throw StoreError.notASynodStore(path: path, reason: "an LMDB database without Synod's meta table")
        }
        let meta = try env.openDatabase("meta", create: isNew, in: txn)
        if isNew {
            try txn.put(meta, MetaKey.format, Codec.u32(formatVersion))
        } else {
            guard let raw = try txn.get(meta, MetaKey.format) else {
                throw StoreError.notASynodStore(path: path, reason: "meta table has no format version")
            }
            guard raw.count == 4 else { throw StoreError.corrupt("format version of \(raw.count) bytes") }
            let found = Codec.readU32(raw)
            guard found == formatVersion else {
                throw StoreError.incompatibleFormat(path: path, found: found, supported: formatVersion)
            }
        }
        let log = try env.openDatabase("log", create: true, in: txn)
        let checkpoints = try env.openDatabase("checkpoints", create: true, in: txn)
        let snapshots = try env.openDatabase("snapshots", create: true, in: txn)
        var state: [Database] = []
        for t in tables { state.append(try env.openDatabase("state.\(t.name)", create: true, in: txn)) }
        return (meta, log, checkpoints, snapshots, state)
    }

    /// Runs a write transaction, mapping LMDB errors to `StoreError`.
    func writeTxn<T>(_ body: (Transaction) throws -> T) throws(StoreError) -> T {
        do { return try environment.write(body) } catch { throw Self.storeError(error) }
    }

    /// Runs a read transaction, mapping LMDB errors to `StoreError`.
    func readTxn<T>(_ body: (Transaction) throws -> T) throws(StoreError) -> T {
        do { return try environment.read(body) } catch { throw Self.storeError(error) }
    }

    /// Runs `body` in a write transaction; LMDB errors become `StoreError`, the caller's own errors pass through.
    func writePassingErrors<T>(_ body: (Transaction) throws -> T) throws -> T {
        do { return try environment.write(body) } catch let e as LMDBError { throw StoreError(e) }
    }

    func readPassingErrors<T>(_ body: (Transaction) throws -> T) throws -> T {
        do { return try environment.read(body) } catch let e as LMDBError { throw StoreError(e) }
    }

    static func storeError(_ error: any Error) -> StoreError {
        switch error {
        case let e as StoreError: return e
        case let e as LMDBError: return StoreError(e)
        case let e as DecodeError: return .corrupt(e.description)
        default: return .corrupt("\(error)")
        }
    }
}

/// Small fixed-width encodings used in `meta`.
enum Codec {
    static func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }
    static func u64(_ v: UInt64) -> [UInt8] { IndexKey.encode(v) }
    static func readU32(_ b: [UInt8]) -> UInt32 { b.prefix(4).reduce(0) { ($0 << 8) | UInt32($1) } }
    static func readU64(_ b: some Collection<UInt8>) -> UInt64 { b.prefix(8).reduce(0) { ($0 << 8) | UInt64($1) } }

    static func position(_ p: LogPosition) -> [UInt8] { u64(p.index.rawValue) + u64(p.term.rawValue) }
    static func readPosition(_ b: [UInt8]) throws(StoreError) -> LogPosition {
        guard b.count == 16 else { throw .corrupt("compacted position of \(b.count) bytes") }
        return LogPosition(index: LogIndex(readU64(b.prefix(8))), term: Term(readU64(b.suffix(8))))
    }
}
