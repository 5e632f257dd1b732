import CLMDB
import SynodCore

/// A `StateStore` over an `LMDBStore` that can be bound to a write transaction the caller opened,
/// so a node persists a Ready's log batch and applies its committed entries in ONE transaction
/// (one commit, one pair of syncs, instead of two). Unbound, it behaves like the store itself.
///
/// Safety: applying in the same transaction as the log write is allowed because committed
/// entries are durable in the log already (or become durable in this very commit); a crash
/// loses both or neither, and the applied index commits with the tables.
public final class LMDBCombinedStateStore: StateStore, @unchecked Sendable {
    public let base: LMDBStore
    /// The transaction state calls run in (the node loop's thread only): the one `write(_:binding:...)` is
    /// running, else the write transaction held open by an apply-only write, else none.
    var bound: Transaction? { running ?? base.environment.heldTransaction }
    var running: Transaction?

    public init(_ base: LMDBStore) { self.base = base }

    public var tables: [StateTable] { base.tables }

    public func appliedIndex() throws(StoreError) -> LogIndex {
        guard let txn = bound else { return try base.appliedIndex() }
        do { return try base.applied(txn) } catch { throw LMDBStore.storeError(error) }
    }

    public func read<T>(_ body: (any StateReader) throws -> T) throws -> T {
        guard let txn = bound else { return try base.read(body) }
        return try body(LMDBStateAccess(store: base, txn: txn))
    }

    public func apply(through index: LogIndex, _ body: (any StateWriter) throws -> Void) throws {
        guard let txn = bound else { return try base.apply(through: index, body) }
        let current = try base.applied(txn)
        guard index > current else { throw StoreError.invalidArgument("apply through \(index.rawValue) but already applied \(current.rawValue)") }
        try body(LMDBStateAccess(store: base, txn: txn))
        try txn.put(base.meta, LMDBStore.MetaKey.applied, Codec.u64(index.rawValue))
    }

    /// Bytes of the pages the state tables use, as this thread's state reads see them (through a
    /// bound or held transaction, if any): what a space quota measures. Free pages — those a
    /// compaction or delete released, which LMDB reuses — are not counted.
    public func stateBytesUsed() throws(StoreError) -> Int64 {
        func sum(_ txn: Transaction) throws(LMDBError) -> Int64 {
            var total: Int64 = 0
            for db in base.stateDBs { total += try txn.pagesBytes(db) }
            return total
        }
        if let txn = bound {
            do { return try sum(txn) } catch { throw StoreError(error) }
        }
        return try base.readTxn { txn in try sum(txn) }
    }

    public func streamSnapshot(chunkBytesMax: Int, _ sink: (SnapshotChunk) throws -> Void) throws -> SnapshotManifest {
        precondition(bound == nil, "snapshots are streamed outside a bound transaction")
        return try base.streamSnapshot(chunkBytesMax: chunkBytesMax, sink)
    }

    public func installSnapshot(appliedIndex: LogIndex, chunks: some Sequence<SnapshotChunk>) throws {
        precondition(bound == nil, "snapshots are installed outside a bound transaction")
        try base.installSnapshot(appliedIndex: appliedIndex, chunks: chunks)
    }
}

extension LMDBStore {
    /// Writes `batch` and runs `body` with `state` bound to the same write transaction; commits
    /// once. `body` receives `true` when it runs again after a map growth (state cached outside
    /// the store must then be reloaded, and work done in a held transaction redone).
    ///
    /// `hold: true` (only with a `batch` that promises nothing: see `LogWrite.onlyAdvancesCommit`)
    /// leaves the transaction open: the state changes
    /// commit with the next write — typically the next log batch, so applying committed entries
    /// costs no commit of its own — or with `environment.commitHeld`. Until then `state` reads
    /// through the held transaction.
    public func write<T>(_ batch: LogWrite, binding state: LMDBCombinedStateStore, hold: Bool = false, _ body: (_ isRetry: Bool) throws -> T) throws -> T {
        precondition(state.base === self, "state store belongs to another LMDBStore")
        precondition(!hold || (batch.entries.isEmpty && batch.truncateFrom == nil && batch.membership == nil),
                     "a log write must commit: acknowledgements depend on it")
        do {
            return try environment.write(hold: hold) { txn, isRetry in
                if !batch.isEmpty { try writeBatch(txn, batch) }
                state.running = txn
                defer { state.running = nil }
                return try body(isRetry)
            }
        } catch let e as LMDBError {
            throw StoreError(e)
        }
    }
}
