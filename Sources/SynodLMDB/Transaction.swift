import CLMDB
import SynodCore

/// A transaction handle, valid only inside the `read`/`write` closure that received it.
/// Byte buffers it returns point into the map and are valid only until that closure returns.
public struct Transaction {
    let txn: OpaquePointer

    /// The value stored under `key`, or nil. The buffer is valid until the transaction ends.
    public func get(_ db: Database, _ key: UnsafeRawBufferPointer) throws(LMDBError) -> UnsafeRawBufferPointer? {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val()
        let rc = mdb_get(txn, db.dbi, &k, &v)
        if rc == MDB_NOTFOUND { return nil }
        try LMDBError.check(rc, "mdb_get")
        return UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size)
    }

    /// Bytes of the pages `db` uses in this transaction's view (branch, leaf and overflow pages;
    /// free pages are not counted).
    public func pagesBytes(_ db: Database) throws(LMDBError) -> Int64 {
        var st = MDB_stat()
        try LMDBError.check(mdb_stat(txn, db.dbi, &st), "mdb_stat")
        return Int64(st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages) * Int64(st.ms_psize)
    }

    /// A copy of the value stored under `key`, or nil.
    public func get(_ db: Database, _ key: [UInt8]) throws(LMDBError) -> [UInt8]? {
        let r = key.withUnsafeBytes { k in Result { () throws(LMDBError) in try get(db, k).map { Array($0) } } }
        return try r.get()
    }

    public func put(_ db: Database, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, flags: UInt32 = 0) throws(LMDBError) {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        try LMDBError.check(mdb_put(txn, db.dbi, &k, &v, flags), "mdb_put")
    }

    public func put(_ db: Database, _ key: [UInt8], _ value: [UInt8], flags: UInt32 = 0) throws(LMDBError) {
        let r = key.withUnsafeBytes { k in
            value.withUnsafeBytes { v in Result { () throws(LMDBError) in try put(db, k, v, flags: flags) } }
        }
        try r.get()
    }

    /// Reserves `count` bytes for `key` and lets `fill` write them in place (no intermediate copy).
    public func reserve(_ db: Database, _ key: UnsafeRawBufferPointer, count: Int, flags: UInt32 = 0,
                        _ fill: (UnsafeMutableRawBufferPointer) -> Void) throws(LMDBError) {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: count, mv_data: nil)
        try LMDBError.check(mdb_put(txn, db.dbi, &k, &v, flags | UInt32(MDB_RESERVE)), "mdb_put(reserve)")
        fill(UnsafeMutableRawBufferPointer(start: v.mv_data, count: count))
    }

    /// Deletes `key`; returns false when it was absent.
    @discardableResult
    public func delete(_ db: Database, _ key: [UInt8]) throws(LMDBError) -> Bool {
        let rc = key.withUnsafeBytes { k -> Int32 in
            var kv = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
            return mdb_del(txn, db.dbi, &kv, nil)
        }
        if rc == MDB_NOTFOUND { return false }
        try LMDBError.check(rc, "mdb_del")
        return true
    }

    /// Deletes every record of `db` (keeps the database).
    public func clear(_ db: Database) throws(LMDBError) {
        try LMDBError.check(mdb_drop(txn, db.dbi, 0), "mdb_drop(empty)")
    }

    /// Number of records in `db`.
    public func count(_ db: Database) throws(LMDBError) -> Int {
        var stat = MDB_stat()
        try LMDBError.check(mdb_stat(txn, db.dbi, &stat), "mdb_stat")
        return stat.ms_entries
    }

    /// Runs `body` with a cursor on `db`, closed afterwards.
    public func withCursor<T>(_ db: Database, _ body: (inout Cursor) throws -> T) throws -> T {
        var c: OpaquePointer?
        try LMDBError.check(mdb_cursor_open(txn, db.dbi, &c), "mdb_cursor_open")
        var cursor = Cursor(cursor: c!)
        defer { mdb_cursor_close(c) }
        return try body(&cursor)
    }
}

/// A cursor over one database; positions and returns (key, value) buffers valid until the
/// transaction ends.
public struct Cursor {
    let cursor: OpaquePointer
    public typealias Record = (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)

    /// Moves by `op` (MDB_FIRST, MDB_NEXT, MDB_LAST, ...); nil when there is no such record.
    public mutating func move(_ op: MDB_cursor_op) throws(LMDBError) -> Record? {
        var k = MDB_val()
        var v = MDB_val()
        let rc = mdb_cursor_get(cursor, &k, &v, op)
        if rc == MDB_NOTFOUND { return nil }
        try LMDBError.check(rc, "mdb_cursor_get")
        return (UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size), UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
    }

    /// Positions at `key` (MDB_SET_KEY) or the first key >= it (MDB_SET_RANGE).
    public mutating func seek(_ key: [UInt8], exact: Bool) throws(LMDBError) -> Record? {
        let r = key.withUnsafeBytes { kb in
            Result { () throws(LMDBError) -> Record? in
                var k = MDB_val(mv_size: kb.count, mv_data: UnsafeMutableRawPointer(mutating: kb.baseAddress))
                var v = MDB_val()
                let rc = mdb_cursor_get(cursor, &k, &v, exact ? MDB_SET_KEY : MDB_SET_RANGE)
                if rc == MDB_NOTFOUND { return nil }
                try LMDBError.check(rc, "mdb_cursor_get(seek)")
                return (UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size), UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
            }
        }
        return try r.get()
    }

    /// Deletes the record under the cursor. A following `move(MDB_NEXT)` returns the record that
    /// came after it (LMDB marks the cursor so the next step does not skip one).
    public mutating func deleteCurrent() throws(LMDBError) {
        try LMDBError.check(mdb_cursor_del(cursor, 0), "mdb_cursor_del")
    }

    /// Puts with the cursor (use `MDB_APPEND` for ascending keys: no B-tree search, pages filled).
    public mutating func reserve(_ key: UnsafeRawBufferPointer, count: Int, flags: UInt32,
                                 _ fill: (UnsafeMutableRawBufferPointer) -> Void) throws(LMDBError) {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: count, mv_data: nil)
        try LMDBError.check(mdb_cursor_put(cursor, &k, &v, flags | UInt32(MDB_RESERVE)), "mdb_cursor_put(reserve)")
        fill(UnsafeMutableRawBufferPointer(start: v.mv_data, count: count))
    }
}
