import CLMDB
import SynodCore

extension LMDBStore: CheckpointStore {
    public func saveCheckpoint(_ checkpoint: Checkpoint) throws(StoreError) {
        try LogWriteValidation.checkCheckpoint(checkpoint)
        try writeTxn { txn in
            try txn.put(checkpointsDB, IndexKey.encode(checkpoint.position.index.rawValue), checkpoint.encode())
        }
    }

    public func latestCheckpoint() throws(StoreError) -> Checkpoint? {
        try readTxn { txn in
            try txn.withCursor(checkpointsDB) { c in
                guard let rec = try c.move(MDB_LAST) else { return nil }
                return try Checkpoint.decode(Array(rec.value))
            }
        }
    }

    public func checkpoint(at index: LogIndex) throws(StoreError) -> Checkpoint? {
        try readTxn { txn in
            try txn.get(checkpointsDB, IndexKey.encode(index.rawValue)).map { try Checkpoint.decode($0) }
        }
    }

    public func checkpointIndexes() throws(StoreError) -> [LogIndex] {
        try readTxn { txn in
            try txn.withCursor(checkpointsDB) { c in
                var out: [LogIndex] = []
                var r = try c.move(MDB_FIRST)
                while let rec = r {
                    out.append(LogIndex(try IndexKey.decode(rec.key)))
                    r = try c.move(MDB_NEXT)
                }
                return out
            }
        }
    }

    public func deleteCheckpoints(below index: LogIndex) throws(StoreError) {
        try writeTxn { txn in
            try txn.withCursor(checkpointsDB) { c in
                var r = try c.move(MDB_FIRST)
                while let rec = r, try IndexKey.decode(rec.key) < index.rawValue {
                    try c.deleteCurrent()
                    r = try c.move(MDB_NEXT) // returns the record after the deleted one
                }
            }
        }
    }
}

extension LMDBStore {
    /// Saves a checkpoint and the snapshot bytes it describes in one transaction.
    public func saveSnapshot(_ checkpoint: Checkpoint, data: [UInt8]) throws(StoreError) {
        try LogWriteValidation.checkCheckpoint(checkpoint)
        try writeTxn { txn in
            let key = IndexKey.encode(checkpoint.position.index.rawValue)
            try txn.put(checkpointsDB, key, checkpoint.encode())
            try txn.put(snapshotsDB, key, data)
        }
    }

    /// The snapshot bytes saved with the checkpoint at `index`, if any.
    public func snapshotData(at index: LogIndex) throws(StoreError) -> [UInt8]? {
        try readTxn { txn in try txn.get(snapshotsDB, IndexKey.encode(index.rawValue)) }
    }

    /// Deletes snapshot bytes and checkpoints with index < `index`.
    public func deleteSnapshots(below index: LogIndex) throws(StoreError) {
        try writeTxn { txn in
            for db in [snapshotsDB, checkpointsDB] {
                try txn.withCursor(db) { c in
                    var r = try c.move(MDB_FIRST)
                    while let rec = r, try IndexKey.decode(rec.key) < index.rawValue {
                        try c.deleteCurrent()
                        r = try c.move(MDB_NEXT)
                    }
                }
            }
        }
    }
}

extension LMDBStore {
    /// Installs a snapshot received from a leader in ONE transaction: the log is emptied and
    /// marked compacted at `checkpoint.position`, every state table is replaced by the snapshot's
    /// records, the applied index becomes the snapshot's, and the checkpoint's metadata is kept.
    /// A crash leaves either the old node or the new one, never a log reset without its state.
    public func installSnapshot(_ checkpoint: Checkpoint, chunks: [SnapshotChunk]) throws {
        try LogWriteValidation.checkCheckpoint(checkpoint)
        try writePassingErrors { txn in
            try txn.clear(log)
            try txn.put(meta, MetaKey.compacted, Codec.position(checkpoint.position))
            for db in stateDBs { try txn.clear(db) }
            try SnapshotChunker.replay(chunks, tableCount: tables.count) { ordinal, k, v in
                try StateValidation.check(key: k, value: v)
                try txn.put(stateDBs[ordinal], k, v)
            }
            try txn.put(meta, MetaKey.applied, Codec.u64(checkpoint.position.index.rawValue))
            try txn.put(checkpointsDB, IndexKey.encode(checkpoint.position.index.rawValue), checkpoint.encode())
        }
    }
}
