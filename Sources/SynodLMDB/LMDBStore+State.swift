import CLMDB
import SynodCore

extension LMDBStore: StateStore {
    public func appliedIndex() throws(StoreError) -> LogIndex {
        try readTxn { txn in try applied(txn) }
    }

    public func read<T>(_ body: (any StateReader) throws -> T) throws -> T {
        try readPassingErrors { txn in try body(LMDBStateAccess(store: self, txn: txn)) }
    }

    /// One write transaction: the tables and the applied index together, so a crash never
    /// applies an entry twice or half. `body` may run again if the map grows (see `LMDBEnvironment.write`).
    public func apply(through index: LogIndex, _ body: (any StateWriter) throws -> Void) throws {
        try writePassingErrors { txn in
            let current = try applied(txn)
            guard index > current else {
                throw StoreError.invalidArgument("apply through \(index.rawValue) but already applied \(current.rawValue)")
            }
            try body(LMDBStateAccess(store: self, txn: txn))
            try txn.put(meta, MetaKey.applied, Codec.u64(index.rawValue))
        }
    }

    /// Streams every table out of one read transaction: a consistent snapshot while writes go on
    /// (LMDB's MVCC keeps the read view's pages alive until the transaction ends).
    public func streamSnapshot(chunkBytesMax: Int, _ sink: (SnapshotChunk) throws -> Void) throws -> SnapshotManifest {
        try readPassingErrors { txn in
            var chunker = SnapshotChunker(chunkBytesMax: chunkBytesMax)
            for (ordinal, db) in stateDBs.enumerated() {
                try txn.withCursor(db) { c in
                    var r = try c.move(MDB_FIRST)
                    while let rec = r {
                        if let full = chunker.add(table: UInt8(ordinal), key: Array(rec.key), value: Array(rec.value)) { try sink(full) }
                        r = try c.move(MDB_NEXT)
                    }
                }
            }
            let (last, records, chunks) = chunker.finish()
            try sink(last)
            return SnapshotManifest(appliedIndex: try applied(txn), tables: tables, recordCount: records, chunkCount: chunks)
        }
    }

    /// Replaces every table in one write transaction; a bad chunk aborts it and changes nothing.
    public func installSnapshot(appliedIndex: LogIndex, chunks: some Sequence<SnapshotChunk>) throws {
        let all = Array(chunks) // re-iterable, because a map growth re-runs the transaction
        try writePassingErrors { txn in
            for db in stateDBs { try txn.clear(db) }
            try SnapshotChunker.replay(all, tableCount: tables.count) { ordinal, k, v in
                try StateValidation.check(key: k, value: v)
                try txn.put(stateDBs[ordinal], k, v)
            }
            try txn.put(meta, MetaKey.applied, Codec.u64(appliedIndex.rawValue))
        }
    }

    func applied(_ txn: Transaction) throws -> LogIndex {
        guard let raw = try txn.get(meta, MetaKey.applied) else { return .zero }
        guard raw.count == 8 else { throw StoreError.corrupt("applied index of \(raw.count) bytes") }
        return LogIndex(Codec.readU64(raw))
    }

    func database(for table: StateTable) throws(StoreError) -> Database {
        guard let i = tables.firstIndex(of: table) else { throw .invalidArgument("unknown table \(table.name)") }
        return stateDBs[i]
    }
}

/// Reads and writes tables inside one LMDB transaction.
struct LMDBStateAccess: StateWriter {
    let store: LMDBStore
    let txn: Transaction

    func get(_ table: StateTable, _ key: [UInt8]) throws(StoreError) -> [UInt8]? {
        let db = try store.database(for: table)
        do { return try txn.get(db, key) } catch { throw StoreError(error) }
    }

    func scan(_ table: StateTable, from: [UInt8], limit: Int, _ visit: ([UInt8], [UInt8]) -> Bool) throws(StoreError) {
        let db = try store.database(for: table)
        do {
            try txn.withCursor(db) { c in
                var r = from.isEmpty ? try c.move(MDB_FIRST) : try c.seek(from, exact: false)
                var n = 0
                while let rec = r, n < limit {
                    if !visit(Array(rec.key), Array(rec.value)) { return }
                    n += 1
                    r = try c.move(MDB_NEXT)
                }
            }
        } catch { throw LMDBStore.storeError(error) }
    }

    func put(_ table: StateTable, _ key: [UInt8], _ value: [UInt8]) throws(StoreError) {
        try StateValidation.check(key: key, value: value)
        let db = try store.database(for: table)
        do { try txn.put(db, key, value) } catch { throw StoreError(error) }
    }

    func delete(_ table: StateTable, _ key: [UInt8]) throws(StoreError) {
        let db = try store.database(for: table)
        do { try txn.delete(db, key) } catch { throw StoreError(error) }
    }
}
