/// An in-memory store with the same contract as the LMDB store: the simulator's "disk".
///
/// Everything passed to `write`, `apply` and friends counts as durable the moment the call
/// returns; the simulator models lost unsynced state by not calling them for what a crashed node
/// had only in its `Ready`. Not thread-safe: one owner at a time (the simulator is single-threaded).
public final class MemoryStore: LogStore, CheckpointStore, StateStore {
    // Invariant: log[i].index == compacted.index + 1 + i (contiguous from the compacted position).
    private var log: [Entry] = []
    private var compacted = LogPosition.zero
    private var hard = HardState.initial
    private var members = Membership.empty
    private var checkpoints: [LogIndex: Checkpoint] = [:]
    private var applied = LogIndex.zero
    private var data: [StateTable: SortedTable] = [:]
    public let tables: [StateTable]

    public init(tables: [StateTable] = []) {
        self.tables = Array(Set(tables)).sorted()
        for t in self.tables { data[t] = SortedTable() }
    }

    // MARK: LogStore

    public func firstIndex() throws(StoreError) -> LogIndex { compacted.index.next }
    public func lastIndex() throws(StoreError) -> LogIndex { log.last?.index ?? compacted.index }
    public func compactedPosition() throws(StoreError) -> LogPosition { compacted }
    public func hardState() throws(StoreError) -> HardState { hard }
    public func membership() throws(StoreError) -> Membership { members }

    public func term(at index: LogIndex) throws(StoreError) -> Term {
        if index == compacted.index { return compacted.term }
        if index < compacted.index { throw .compacted(requested: index, firstAvailable: compacted.index.next) }
        let last = try lastIndex()
        guard index <= last else { throw .unavailable(requested: index, lastIndex: last) }
        return log[offset(index)].term
    }

    public func entries(from: LogIndex, upTo: LogIndex, maxBytes: Int) throws(StoreError) -> [Entry] {
        guard from < upTo else { return [] }
        if from <= compacted.index { throw .compacted(requested: from, firstAvailable: compacted.index.next) }
        let last = try lastIndex()
        guard upTo.previous <= last else { throw .unavailable(requested: upTo.previous, lastIndex: last) }
        var out: [Entry] = []
        var bytes = 0
        for i in offset(from)..<offset(upTo) {
            let e = log[i]
            if !out.isEmpty && bytes + e.sizeBytes > maxBytes { break }
            bytes += e.sizeBytes
            out.append(e)
        }
        return out
    }

    public func write(_ batch: LogWrite) throws(StoreError) {
        // Validate everything first so a refused batch changes nothing (atomicity).
        var last = try lastIndex()
        if let t = batch.truncateFrom {
            guard t > compacted.index else { throw .compacted(requested: t, firstAvailable: compacted.index.next) }
            if t <= last { last = t.previous }
        }
        try LogWriteValidation.checkContiguous(batch.entries, after: last)
        if let t = batch.truncateFrom, t <= (log.last?.index ?? compacted.index) {
            log.removeSubrange(offset(t)...)
        }
        log.append(contentsOf: batch.entries)
        if let hs = batch.hardState { hard = hs }
        if let m = batch.membership { members = m }
    }

    public func deletePrefix(through index: LogIndex) throws(StoreError) {
        if index <= compacted.index { return }
        let last = try lastIndex()
        guard index <= last else { throw .unavailable(requested: index, lastIndex: last) }
        let position = LogPosition(index: index, term: log[offset(index)].term)
        log.removeSubrange(0...offset(index))
        compacted = position
    }

    public func reset(to position: LogPosition) throws(StoreError) {
        log.removeAll()
        compacted = position
    }

    private func offset(_ index: LogIndex) -> Int { Int(index.rawValue - compacted.index.rawValue - 1) }

    // MARK: CheckpointStore

    public func saveCheckpoint(_ checkpoint: Checkpoint) throws(StoreError) {
        try LogWriteValidation.checkCheckpoint(checkpoint)
        checkpoints[checkpoint.position.index] = checkpoint
    }
    public func latestCheckpoint() throws(StoreError) -> Checkpoint? { checkpoints.keys.max().flatMap { checkpoints[$0] } }
    public func checkpoint(at index: LogIndex) throws(StoreError) -> Checkpoint? { checkpoints[index] }
    public func checkpointIndexes() throws(StoreError) -> [LogIndex] { checkpoints.keys.sorted() }
    public func deleteCheckpoints(below index: LogIndex) throws(StoreError) {
        for k in checkpoints.keys.sorted() where k < index { checkpoints[k] = nil }
    }

    // MARK: StateStore

    public func appliedIndex() throws(StoreError) -> LogIndex { applied }

    public func read<T>(_ body: (any StateReader) throws -> T) throws -> T {
        try body(MemoryStateAccess(store: self, staged: nil))
    }

    public func apply(through index: LogIndex, _ body: (any StateWriter) throws -> Void) throws {
        guard index > applied else { throw StoreError.invalidArgument("apply through \(index.rawValue) but already applied \(applied.rawValue)") }
        // Stage on a copy so a throwing body leaves the tables untouched (atomic apply).
        let staged = MemoryStateAccess(store: self, staged: data)
        try body(staged)
        data = staged.staged!
        applied = index
    }

    public func streamSnapshot(chunkBytesMax: Int, _ sink: (SnapshotChunk) throws -> Void) throws -> SnapshotManifest {
        var chunker = SnapshotChunker(chunkBytesMax: chunkBytesMax)
        for (ordinal, table) in tables.enumerated() {
            for (k, v) in data[table]!.all() {
                if let full = chunker.add(table: UInt8(ordinal), key: k, value: v) { try sink(full) }
            }
        }
        let (last, records, chunks) = chunker.finish()
        try sink(last)
        return SnapshotManifest(appliedIndex: applied, tables: tables, recordCount: records, chunkCount: chunks)
    }

    public func installSnapshot(appliedIndex: LogIndex, chunks: some Sequence<SnapshotChunk>) throws {
        var fresh: [StateTable: SortedTable] = [:]
        for t in tables { fresh[t] = SortedTable() }
        try SnapshotChunker.replay(chunks, tableCount: tables.count) { ordinal, k, v in
            fresh[tables[ordinal]]!.put(k, v)
        }
        data = fresh
        applied = appliedIndex
    }

    fileprivate func table(_ t: StateTable, in staged: [StateTable: SortedTable]?) throws(StoreError) -> SortedTable {
        guard let table = (staged ?? data)[t] else { throw .invalidArgument("unknown table \(t.name)") }
        return table
    }
}

/// Reader/writer over a MemoryStore, writing into a staged copy of the tables.
private final class MemoryStateAccess: StateWriter {
    let store: MemoryStore
    var staged: [StateTable: SortedTable]?
    init(store: MemoryStore, staged: [StateTable: SortedTable]?) { self.store = store; self.staged = staged }

    func get(_ table: StateTable, _ key: [UInt8]) throws(StoreError) -> [UInt8]? { try store.table(table, in: staged).get(key) }

    func scan(_ table: StateTable, from: [UInt8], limit: Int, _ visit: ([UInt8], [UInt8]) -> Bool) throws(StoreError) {
        try store.table(table, in: staged).scan(from: from, limit: limit, visit)
    }

    func put(_ table: StateTable, _ key: [UInt8], _ value: [UInt8]) throws(StoreError) {
        try StateValidation.check(key: key, value: value)
        var t = try store.table(table, in: staged)
        t.put(key, value)
        staged![table] = t
    }

    func delete(_ table: StateTable, _ key: [UInt8]) throws(StoreError) {
        var t = try store.table(table, in: staged)
        t.delete(key)
        staged![table] = t
    }
}

/// A byte-ordered map: sorted keys with binary search. Small and simple; the simulator's tables are small.
struct SortedTable {
    private var keys: [[UInt8]] = []
    private var values: [[UInt8]] = []

    private func position(_ key: [UInt8]) -> (Int, Bool) {
        var lo = 0, hi = keys.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if keys[mid].lexicographicallyPrecedes(key) { lo = mid + 1 } else { hi = mid }
        }
        return (lo, lo < keys.count && keys[lo] == key)
    }

    func get(_ key: [UInt8]) -> [UInt8]? {
        let (i, found) = position(key)
        return found ? values[i] : nil
    }

    mutating func put(_ key: [UInt8], _ value: [UInt8]) {
        let (i, found) = position(key)
        if found { values[i] = value } else { keys.insert(key, at: i); values.insert(value, at: i) }
    }

    mutating func delete(_ key: [UInt8]) {
        let (i, found) = position(key)
        if found { keys.remove(at: i); values.remove(at: i) }
    }

    func scan(from: [UInt8], limit: Int, _ visit: ([UInt8], [UInt8]) -> Bool) {
        var (i, _) = position(from)
        var n = 0
        while i < keys.count && n < limit {
            if !visit(keys[i], values[i]) { return }
            i += 1
            n += 1
        }
    }

    func all() -> Zip2Sequence<[[UInt8]], [[UInt8]]> { zip(keys, values) }
}
