import CLMDB
import Glibc
import SynodCore

/// Options for opening an LMDB environment.
public struct LMDBOptions: Sendable {
    /// Initial map size. The map grows (doubling) when LMDB reports `MDB_MAP_FULL`.
    public var mapSizeBytes: Int = 256 << 20
    /// Upper bound for map growth; a write fails with `MDB_MAP_FULL` only past this.
    public var mapSizeBytesMax: Int = 1 << 40
    /// Named databases this environment may hold.
    public var databasesMax: UInt32 = 64
    /// Concurrent read transactions.
    public var readersMax: UInt32 = 126
    /// UNSAFE: skip fsync on commit. A crash of the machine (not just the process) can lose or
    /// corrupt acknowledged writes. Exists for benchmarks that measure everything but the disk.
    public var unsafeNoSync: Bool = false

    public init() {}
}

/// A named database handle, valid for the environment's lifetime.
public struct Database: Hashable, Sendable {
    let dbi: MDB_dbi
}

/// One LMDB environment (a directory holding `data.mdb` and `lock.mdb`).
///
/// Threading: opened with `MDB_NOTLS`, so a read transaction is not tied to an OS thread.
/// Single-writer discipline: LMDB itself serialises write transactions (a second writer blocks
/// in `mdb_txn_begin`); every transaction also holds `resizeLock` shared, and map growth takes it
/// exclusively. Handles never leave the closures that use them, which is what makes the
/// `@unchecked Sendable` sound.
public final class LMDBEnvironment: @unchecked Sendable {
    /// Replaced only by `reopen(after:)`, under `resizeLock` held exclusively; every other use is
    /// on the writing thread or inside a transaction (which holds the lock shared).
    private(set) var env: OpaquePointer
    public let path: String
    public let options: LMDBOptions
    private let resizeLock = RWLock()
    /// Times the map has grown since open (observable by tests and `synod storage check`).
    public private(set) var mapGrowthCount = 0
    /// See `write(hold:_:)`. Touched only by the writing thread.
    private var held: Transaction?
    static let growAttemptsMax = 40
    /// Every named database opened, in order, with its handle: `reopen(after:)` opens them again
    /// in the same order (LMDB numbers handles by opening order) and checks the numbers match.
    private var openedDatabases: [(name: String?, dbi: MDB_dbi)] = []

    /// Opens (creating files if needed) the environment in the existing directory `path`.
    public init(directory path: String, options: LMDBOptions) throws(LMDBError) {
        self.env = try Self.openEnvironment(path, options, mapSizeBytes: options.mapSizeBytes)
        self.path = path
        self.options = options
    }

    private static func openEnvironment(_ path: String, _ options: LMDBOptions, mapSizeBytes: Int) throws(LMDBError) -> OpaquePointer {
        var handle: OpaquePointer?
        try LMDBError.check(mdb_env_create(&handle), "mdb_env_create")
        guard let handle else { throw LMDBError(code: ENOMEM, operation: "mdb_env_create") }
        do {
            try LMDBError.check(mdb_env_set_maxdbs(handle, options.databasesMax), "mdb_env_set_maxdbs")
            try LMDBError.check(mdb_env_set_maxreaders(handle, options.readersMax), "mdb_env_set_maxreaders")
            try LMDBError.check(mdb_env_set_mapsize(handle, mapSizeBytes), "mdb_env_set_mapsize")
            var flags = UInt32(MDB_NOTLS) | UInt32(MDB_NORDAHEAD)
            if options.unsafeNoSync { flags |= UInt32(MDB_NOSYNC) }
            try LMDBError.check(mdb_env_open(handle, path, flags, 0o644), "mdb_env_open \(path)")
        } catch {
            mdb_env_close(handle)
            throw error
        }
        return handle
    }

    /// Closes the environment, runs `replace` (which may put another `data.mdb` in its place —
    /// a compacted copy of this one, `synod defrag`), and opens it again with the same map size
    /// and the same database handles, all while no transaction of this process runs (the resize
    /// lock held exclusively: readers on other threads finish first, new ones wait). If `replace`
    /// throws, the file it left is opened again and the error rethrown.
    ///
    /// The new file must hold every named database this environment opened (a compacted copy
    /// does). No other process may have the environment open meanwhile: LMDB rebuilds its lock
    /// file only when it is the only user, and a copy restarts the transaction ids.
    public func reopen(after replace: () throws -> Void) throws {
        try commitHeld()
        try resizeLock.withExclusive { () throws in
            let mapSize = mapSizeBytes
            mdb_env_close(env)
            var failure: (any Error)?
            do { try replace() } catch { failure = error }
            // The old handle is gone: without a new one every later use would touch freed memory.
            // The caller checked the new file opens (StorageCompaction.verify) before replacing.
            do { env = try Self.openEnvironment(path, options, mapSizeBytes: mapSize) } catch {
                preconditionFailure("LMDB environment \(path) could not be opened again after its file was replaced: \(error); restart the node")
            }
            try reopenDatabases()
            if let failure { throw failure }
        }
    }

    /// Opens `openedDatabases` again in order, in one write transaction; their handles must come
    /// out as before (values held by stores keep naming them).
    private func reopenDatabases() throws(LMDBError) {
        guard !openedDatabases.isEmpty else { return }
        let txn = try begin(readOnly: false)
        for (name, dbi) in openedDatabases {
            var again: MDB_dbi = 0
            let rc = mdb_dbi_open(txn.txn, name, 0, &again)
            guard rc == 0, again == dbi else {
                mdb_txn_abort(txn.txn)
                throw LMDBError(code: rc == 0 ? MDB_BAD_DBI : rc, operation: "mdb_dbi_open \(name ?? "<main>") after reopen (handle \(again), was \(dbi))")
            }
        }
        try LMDBError.check(mdb_txn_commit(txn.txn), "mdb_txn_commit (reopen)")
    }

    deinit {
        if let txn = held { mdb_txn_abort(txn.txn) }
        mdb_env_close(env)
    }

    /// Current map size in bytes.
    public var mapSizeBytes: Int {
        var info = MDB_envinfo()
        mdb_env_info(env, &info)
        return info.me_mapsize
    }

    /// Fraction of the map in use (last used page over map pages).
    var mapUsedFraction: Double {
        var info = MDB_envinfo()
        mdb_env_info(env, &info)
        var stat = MDB_stat()
        mdb_env_stat(env, &stat)
        let pages = Double(info.me_mapsize) / Double(stat.ms_psize)
        return Double(info.me_last_pgno + 1) / pages
    }

    /// Opens (or with `create`, creates) a named database. Call inside a write transaction.
    func openDatabase(_ name: String?, create: Bool, in txn: Transaction) throws(LMDBError) -> Database {
        var dbi: MDB_dbi = 0
        let flags = create ? UInt32(MDB_CREATE) : 0
        try LMDBError.check(mdb_dbi_open(txn.txn, name, flags, &dbi), "mdb_dbi_open \(name ?? "<main>")")
        if !openedDatabases.contains(where: { $0.dbi == dbi }) { openedDatabases.append((name, dbi)) }
        return Database(dbi: dbi)
    }

    /// Runs `body` in a read-only transaction (one consistent view of the data).
    public func read<T>(_ body: (Transaction) throws -> T) throws -> T {
        try resizeLock.withShared { () throws -> T in
            let txn = try begin(readOnly: true)
            defer { mdb_txn_abort(txn.txn) }
            return try body(txn)
        }
    }

    /// Runs `body` in a write transaction and commits it (durably, unless `unsafeNoSync`).
    ///
    /// If LMDB reports `MDB_MAP_FULL`, the transaction is aborted, the map doubles, and `body` runs
    /// again: it must only change state through `txn`, so a re-run is harmless.
    /// A held transaction (see `write(hold:_:)`) is committed first, on its own: `body` could not
    /// redo its work after a map growth.
    public func write<T>(_ body: (Transaction) throws -> T) throws -> T {
        try commitHeld()
        return try write(hold: false) { txn, _ in try body(txn) }
    }

    /// Redoes the holder's held work after it was lost: committing a held transaction can fail
    /// with `MDB_MAP_FULL` (LMDB may need fresh pages for its free list), and LMDB then drops the
    /// transaction. `commitHeld` — whoever calls it, the holder or this environment before another
    /// write or a growth — then grows the map and calls this, with no transaction open, so the
    /// holder can write its work again. Without it the failure is thrown.
    public var redoLostHeld: (() throws -> Void)?

    /// Test-only: this many held commits fail as if the map were full (the redo path is otherwise
    /// rare and timing-dependent).
    public var testingHeldCommitFailures = 0

    /// The write transaction a `write(hold: true)` left open, if any.
    public var heldTransaction: Transaction? { held }

    /// Runs `body` in a write transaction. With `hold: false` the transaction commits (durably);
    /// with `hold: true` it stays open and uncommitted, and the next `write` continues in it — so a
    /// held change becomes durable with the next commit, or with `commitHeld()`.
    ///
    /// Rules for holding (the node loop's apply batching is the one user): only one thread
    /// writes; held changes are visible only through `heldTransaction`, not to `read`; a crash
    /// loses them (the caller must be able to redo them — the node re-applies committed log
    /// entries). On `MDB_MAP_FULL` the transaction, held work included, is aborted, the map
    /// doubles and `body` runs again with `isRetry: true`: it must then redo the held work too.
    public func write<T>(hold: Bool, _ body: (Transaction, _ isRetry: Bool) throws -> T) throws -> T {
        if mapUsedFraction > 0.75 {
            try commitHeld()
            try grow()
        }
        var isRetry = false
        for _ in 0..<Self.growAttemptsMax {
            do {
                return try resizeLock.withShared { () throws -> T in
                    let txn = try held ?? begin(readOnly: false)
                    held = nil
                    var done = false
                    defer { if !done { mdb_txn_abort(txn.txn) } }
                    let result = try body(txn, isRetry)
                    done = true
                    if hold {
                        held = txn
                    } else {
                        // mdb_txn_commit frees the transaction whether or not it succeeds.
                        try LMDBError.check(mdb_txn_commit(txn.txn), "mdb_txn_commit")
                    }
                    return result
                }
            } catch let e as LMDBError where e.isMapFull {
                isRetry = true
                try grow()
            } catch let e as StoreError where e.isMapFull {
                isRetry = true
                try grow()
            }
        }
        throw LMDBError(code: MDB_MAP_FULL, operation: "write after \(Self.growAttemptsMax) map growths")
    }

    /// Grows the map now if more than `fraction` of it is used (committing a held transaction
    /// first). Call before starting a long read on another thread: growth must wait for every
    /// transaction of this process to end, so a growth forced while a long reader runs stalls
    /// the writer until the reader finishes.
    public func ensureHeadroom(usedFractionMax fraction: Double) throws {
        guard mapUsedFraction > fraction else { return }
        try commitHeld()
        try grow()
    }

    /// Commits the held transaction, if any. With `metaSync: false` it is synced once (data
    /// pages) instead of twice: the meta page reaches the disk with the next commit's sync, so a
    /// machine crash may roll back to the previous transaction — consistent, never corrupt
    /// (`MDB_NOMETASYNC`). Only for changes that can be redone, like re-applying the log. A commit
    /// that fails for want of map pages is redone through `redoLostHeld`.
    public func commitHeld(metaSync: Bool = true) throws {
        guard let txn = held else { return }
        held = nil
        do {
            if testingHeldCommitFailures > 0 {
                // Test-only: behave as a commit that ran out of map pages (LMDB frees the transaction).
                testingHeldCommitFailures -= 1
                mdb_txn_abort(txn.txn)
                throw LMDBError(code: MDB_MAP_FULL, operation: "mdb_txn_commit (held, injected)")
            }
            if !metaSync { mdb_env_set_flags(env, UInt32(MDB_NOMETASYNC), 1) }
            defer { if !metaSync { mdb_env_set_flags(env, UInt32(MDB_NOMETASYNC), 0) } }
            try LMDBError.check(mdb_txn_commit(txn.txn), "mdb_txn_commit (held)")
        } catch let e as LMDBError where e.isMapFull {
            guard let redo = redoLostHeld else { throw e }
            try grow()
            try redo()
        }
    }

    private func begin(readOnly: Bool) throws(LMDBError) -> Transaction {
        var txn: OpaquePointer?
        var rc = mdb_txn_begin(env, nil, readOnly ? UInt32(MDB_RDONLY) : 0, &txn)
        if rc == MDB_MAP_RESIZED {
            // Another process grew the map; adopt its size (allowed: we hold no transaction).
            mdb_env_set_mapsize(env, 0)
            rc = mdb_txn_begin(env, nil, readOnly ? UInt32(MDB_RDONLY) : 0, &txn)
        }
        try LMDBError.check(rc, readOnly ? "mdb_txn_begin(read)" : "mdb_txn_begin(write)")
        return Transaction(txn: txn!)
    }

    /// Doubles the map, under the exclusive lock so no transaction of ours is active.
    func grow() throws(LMDBError) {
        precondition(held == nil, "map growth with a held write transaction")
        try resizeLock.withExclusive { () throws(LMDBError) in
            let current = mapSizeBytes
            guard current < options.mapSizeBytesMax else {
                throw LMDBError(code: MDB_MAP_FULL, operation: "grow map beyond mapSizeBytesMax \(options.mapSizeBytesMax)")
            }
            let next = min(current * 2, options.mapSizeBytesMax)
            try LMDBError.check(mdb_env_set_mapsize(env, next), "mdb_env_set_mapsize \(next)")
            mapGrowthCount += 1
        }
    }

    /// Writes a compacted copy of the environment (free pages left out, the live ones packed in
    /// order: LMDB's `MDB_CP_COMPACT`) to the new file `path`, fsynced. Readers may run meanwhile;
    /// it is one consistent read view. The file must not exist.
    public func copyCompacted(toFile path: String) throws(LMDBError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LMDBError(code: errno, operation: "open \(path)") }
        defer { close(fd) }
        try LMDBError.check(mdb_env_copyfd2(env, fd, UInt32(MDB_CP_COMPACT)), "mdb_env_copyfd2 \(path)")
        guard fsync(fd) == 0 else { throw LMDBError(code: errno, operation: "fsync \(path)") }
    }

    /// Flushes to disk (meaningful only with `unsafeNoSync`).
    public func sync() throws(LMDBError) {
        try LMDBError.check(mdb_env_sync(env, 1), "mdb_env_sync")
    }
}
