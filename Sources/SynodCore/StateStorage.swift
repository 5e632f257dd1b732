// The state machine's tables: named ordered byte maps written together with the apply index.

/// A named table of the state machine (`kv`, `revisions`, `leases`, `sessions`, `mesh.*`).
/// Names are at most `nameBytesMax` bytes of ASCII.
public struct StateTable: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let name: String
    public static let nameBytesMax = 32
    public init(_ name: String) {
        precondition(!name.isEmpty && name.utf8.count <= StateTable.nameBytesMax, "bad table name \(name)")
        self.name = name
    }
    public static func < (a: StateTable, b: StateTable) -> Bool { a.name < b.name }
    public var description: String { name }
}

/// Limits on state records.
public enum StateLimits {
    /// LMDB's default key limit is 511 bytes; keep every backend to it.
    public static let keyBytesMax = 511
    public static let valueBytesMax = 1 << 20
    /// Largest tables count in one store.
    public static let tablesMax = 32
}

/// Read access to the tables inside one consistent read (one LMDB read transaction).
public protocol StateReader {
    func get(_ table: StateTable, _ key: [UInt8]) throws(StoreError) -> [UInt8]?
    /// Visits records with key >= `from` in ascending byte order until `visit` returns false or
    /// `limit` records were visited.
    func scan(_ table: StateTable, from: [UInt8], limit: Int, _ visit: ([UInt8], [UInt8]) -> Bool) throws(StoreError)
}

/// Write access inside one atomic apply.
public protocol StateWriter: StateReader {
    func put(_ table: StateTable, _ key: [UInt8], _ value: [UInt8]) throws(StoreError)
    func delete(_ table: StateTable, _ key: [UInt8]) throws(StoreError)
}

/// One piece of a streamed snapshot. `records` holds `(table ordinal u8, key, value)` tuples,
/// each length-prefixed; the ordinal indexes `SnapshotManifest.tables`.
public struct SnapshotChunk: Hashable, Sendable {
    public var sequence: UInt32
    public var records: [UInt8]
    public var isLast: Bool
    public init(sequence: UInt32, records: [UInt8], isLast: Bool) {
        self.sequence = sequence
        self.records = records
        self.isLast = isLast
    }
}

/// What a streamed snapshot contained.
public struct SnapshotManifest: Hashable, Sendable {
    public var appliedIndex: LogIndex
    public var tables: [StateTable]
    public var recordCount: Int
    public var chunkCount: Int
    public init(appliedIndex: LogIndex, tables: [StateTable], recordCount: Int, chunkCount: Int) {
        self.appliedIndex = appliedIndex
        self.tables = tables
        self.recordCount = recordCount
        self.chunkCount = chunkCount
    }
}

/// The state machine's durable tables.
///
/// Promises: `apply` writes the tables and the applied index in one atomic step, so a crash never
/// applies an entry twice or half; `streamSnapshot` reads from one consistent view even while
/// applies continue; `installSnapshot` discards all previous state.
public protocol StateStore: AnyObject {
    /// Tables this store holds, sorted by name.
    var tables: [StateTable] { get }
    /// Highest log index whose effects are in the tables.
    func appliedIndex() throws(StoreError) -> LogIndex
    func read<T>(_ body: (any StateReader) throws -> T) throws -> T
    /// Runs `body` and records `index` as applied, atomically. Precondition: `index` > applied.
    func apply(through index: LogIndex, _ body: (any StateWriter) throws -> Void) throws
    /// Streams every table from one consistent read, in chunks of at most about `chunkBytesMax`.
    func streamSnapshot(chunkBytesMax: Int, _ sink: (SnapshotChunk) throws -> Void) throws -> SnapshotManifest
    /// Replaces all tables with the snapshot's records and sets the applied index, atomically.
    /// Chunks must arrive in sequence; a gap, a bad record or a missing last chunk changes nothing.
    func installSnapshot(appliedIndex: LogIndex, chunks: some Sequence<SnapshotChunk>) throws
}

/// Encodes and decodes snapshot records; shared by every StateStore so their streams are identical.
public enum SnapshotRecords {
    public static func append(table ordinal: UInt8, key: [UInt8], value: [UInt8], to w: inout ByteWriter) {
        w.u8(ordinal)
        w.lengthPrefixed(key)
        w.lengthPrefixed(value)
    }

    /// Decodes a chunk's records, checking every length before allocating.
    public static func decode(_ chunk: SnapshotChunk, tableCount: Int, _ visit: (Int, [UInt8], [UInt8]) throws -> Void) throws {
        var r = ByteReader(chunk.records)
        while !r.isAtEnd {
            let ordinal = Int(try r.u8("snapshot table ordinal"))
            guard ordinal < tableCount else { throw DecodeError.unknownValue(what: "snapshot table", value: UInt64(ordinal)) }
            let key = try r.lengthPrefixed("snapshot key", limit: StateLimits.keyBytesMax)
            let value = try r.lengthPrefixed("snapshot value", limit: StateLimits.valueBytesMax)
            try visit(ordinal, key, value)
        }
    }
}
