import CLMDB
import SynodCore

extension LMDBStore: LogStore {
    public func firstIndex() throws(StoreError) -> LogIndex { try compactedPosition().index.next }

    public func lastIndex() throws(StoreError) -> LogIndex {
        try readTxn { txn in try lastIndex(txn) }
    }

    public func compactedPosition() throws(StoreError) -> LogPosition {
        try readTxn { txn in try compacted(txn) }
    }

    public func hardState() throws(StoreError) -> HardState {
        try readTxn { txn in
            guard let raw = try txn.get(meta, MetaKey.hardState) else { return HardState.initial }
            return try HardState.decode(raw)
        }
    }

    public func membership() throws(StoreError) -> Membership {
        try readTxn { txn in
            guard let raw = try txn.get(meta, MetaKey.membership) else { return Membership.empty }
            return try Membership.decode(raw)
        }
    }

    public func term(at index: LogIndex) throws(StoreError) -> Term {
        try readTxn { txn in
            let c = try compacted(txn)
            if index == c.index { return c.term }
            if index < c.index { throw StoreError.compacted(requested: index, firstAvailable: c.index.next) }
            let value = try IndexKey.encode(index.rawValue).withUnsafeBytes { k in try txn.get(log, k).map { Array($0) } }
            guard let value else { throw StoreError.unavailable(requested: index, lastIndex: try lastIndex(txn)) }
            return try Entry.decodeValue(index: index, bytes: value).term
        }
    }

    public func entries(from: LogIndex, upTo: LogIndex, maxBytes: Int) throws(StoreError) -> [Entry] {
        guard from < upTo else { return [] }
        return try readTxn { txn in
            let c = try compacted(txn)
            if from <= c.index { throw StoreError.compacted(requested: from, firstAvailable: c.index.next) }
            let last = try lastIndex(txn)
            guard upTo.previous <= last else { throw StoreError.unavailable(requested: upTo.previous, lastIndex: last) }
            return try txn.withCursor(log) { cursor in
                var out: [Entry] = []
                out.reserveCapacity(Int(min(upTo.rawValue - from.rawValue, 4096)))
                var bytes = 0
                var record = try cursor.seek(IndexKey.encode(from.rawValue), exact: true)
                var expected = from
                while let rec = record, expected < upTo {
                    let index = LogIndex(try IndexKey.decode(rec.key))
                    guard index == expected else { throw StoreError.corrupt("log gap: found \(index.rawValue), expected \(expected.rawValue)") }
                    let size = rec.value.count
                    if !out.isEmpty && bytes + size > maxBytes { break }
                    out.append(try Entry.decodeValue(index: index, bytes: rec.value))
                    bytes += size
                    expected = expected.next
                    record = try cursor.move(MDB_NEXT)
                }
                if out.isEmpty { throw StoreError.corrupt("log entry \(from.rawValue) missing below last index \(last.rawValue)") }
                return out
            }
        }
    }

    public func write(_ batch: LogWrite) throws(StoreError) {
        if batch.isEmpty { return }
        try writeTxn { txn in try writeBatch(txn, batch) }
    }

    /// Carries out `batch` inside an open write transaction.
    func writeBatch(_ txn: Transaction, _ batch: LogWrite) throws {
        do {
            let c = try compacted(txn)
            var last = try lastIndex(txn)
            if let t = batch.truncateFrom {
                guard t > c.index else { throw StoreError.compacted(requested: t, firstAvailable: c.index.next) }
                if t <= last {
                    try deleteRange(txn, from: t, through: last)
                    last = t.previous
                }
            }
            try LogWriteValidation.checkContiguous(batch.entries, after: last)
            if !batch.entries.isEmpty { try appendEntries(txn, batch.entries) }
            if let hs = batch.hardState { try txn.put(meta, MetaKey.hardState, hs.encode()) }
            if let m = batch.membership { try txn.put(meta, MetaKey.membership, m.encode()) }
        }
    }

    public func deletePrefix(through index: LogIndex) throws(StoreError) {
        try writeTxn { txn in
            let c = try compacted(txn)
            if index <= c.index { return }
            let last = try lastIndex(txn)
            guard index <= last else { throw StoreError.unavailable(requested: index, lastIndex: last) }
            let value = try IndexKey.encode(index.rawValue).withUnsafeBytes { k in try txn.get(log, k).map { Array($0) } }
            guard let value else { throw StoreError.corrupt("log entry \(index.rawValue) missing") }
            let term = try Entry.decodeValue(index: index, bytes: value).term
            try deleteRange(txn, from: c.index.next, through: index)
            try txn.put(meta, MetaKey.compacted, Codec.position(LogPosition(index: index, term: term)))
        }
    }

    public func reset(to position: LogPosition) throws(StoreError) {
        try writeTxn { txn in
            try txn.clear(log)
            try txn.put(meta, MetaKey.compacted, Codec.position(position))
        }
    }

    // MARK: helpers inside one transaction

    func compacted(_ txn: Transaction) throws -> LogPosition {
        guard let raw = try txn.get(meta, MetaKey.compacted) else { return .zero }
        return try Codec.readPosition(raw)
    }

    func lastIndex(_ txn: Transaction) throws -> LogIndex {
        let last = try txn.withCursor(log) { c in try c.move(MDB_LAST).map { try IndexKey.decode($0.key) } }
        if let last { return LogIndex(last) }
        return try compacted(txn).index
    }

    /// Appends with `MDB_APPEND` (keys ascend: no search, full pages) encoding straight into the
    /// reserved space, so a batch costs one B-tree append per entry and no intermediate copies.
    private func appendEntries(_ txn: Transaction, _ entries: [Entry]) throws {
        try txn.withCursor(log) { cursor in
            var key = [UInt8](repeating: 0, count: 8)
            for e in entries {
                var be = e.index.rawValue.bigEndian
                withUnsafeBytes(of: &be) { b in key.withUnsafeMutableBytes { $0.copyMemory(from: b) } }
                try key.withUnsafeBytes { k in
                    try cursor.reserve(k, count: e.sizeBytes, flags: UInt32(MDB_APPEND)) { e.encodeValue(to: $0) }
                }
            }
        }
    }

    /// Deletes log keys in [from, through], seeking with MDB_SET_RANGE (never scanning from the start).
    private func deleteRange(_ txn: Transaction, from: LogIndex, through: LogIndex) throws {
        try txn.withCursor(log) { cursor in
            var record = try cursor.seek(IndexKey.encode(from.rawValue), exact: false)
            while let rec = record, try IndexKey.decode(rec.key) <= through.rawValue {
                try cursor.deleteCurrent()
                // After a delete LMDB marks the cursor, so MDB_NEXT returns the record that followed
                // the deleted one (not the one after it), or NOTFOUND at the end.
                record = try cursor.move(MDB_NEXT)
            }
        }
    }
}
