// Checks shared by every store implementation so they refuse exactly the same inputs.

public enum LogWriteValidation {
    /// Entries must be contiguous and continue the log right after `last`.
    public static func checkContiguous(_ entries: [Entry], after last: LogIndex) throws(StoreError) {
        var expected = last.next
        for e in entries {
            guard e.index == expected else { throw .nonContiguous(expected: expected, got: e.index) }
            guard e.payload.count <= Limits.entryPayloadBytesMax else {
                throw .invalidArgument("entry \(e.index.rawValue) payload of \(e.payload.count) bytes exceeds \(Limits.entryPayloadBytesMax)")
            }
            expected = expected.next
        }
    }

    public static func checkCheckpoint(_ c: Checkpoint) throws(StoreError) {
        guard c.stateDigest.count <= Limits.stateDigestBytesMax else {
            throw .invalidArgument("state digest of \(c.stateDigest.count) bytes exceeds \(Limits.stateDigestBytesMax)")
        }
        guard c.proof.count <= Limits.checkpointProofBytesMax else {
            throw .invalidArgument("checkpoint proof of \(c.proof.count) bytes exceeds \(Limits.checkpointProofBytesMax)")
        }
    }
}

public enum StateValidation {
    public static func check(key: [UInt8], value: [UInt8]) throws(StoreError) {
        guard !key.isEmpty, key.count <= StateLimits.keyBytesMax else {
            throw .invalidArgument("state key of \(key.count) bytes (must be 1...\(StateLimits.keyBytesMax))")
        }
        guard value.count <= StateLimits.valueBytesMax else {
            throw .invalidArgument("state value of \(value.count) bytes exceeds \(StateLimits.valueBytesMax)")
        }
    }
}

/// Cuts snapshot records into chunks, and replays chunks into records, identically for every store.
public struct SnapshotChunker {
    private let chunkBytesMax: Int
    private var writer = ByteWriter()
    private var sequence: UInt32 = 0
    private var records = 0

    public init(chunkBytesMax: Int) {
        precondition(chunkBytesMax > 0, "chunkBytesMax must be positive")
        self.chunkBytesMax = chunkBytesMax
    }

    /// Adds a record; returns a full chunk to send when one is ready.
    public mutating func add(table: UInt8, key: [UInt8], value: [UInt8]) -> SnapshotChunk? {
        SnapshotRecords.append(table: table, key: key, value: value, to: &writer)
        records += 1
        guard writer.bytes.count >= chunkBytesMax else { return nil }
        defer { sequence += 1; writer = ByteWriter() }
        return SnapshotChunk(sequence: sequence, records: writer.bytes, isLast: false)
    }

    /// The last chunk (possibly empty), with the record and chunk totals.
    public mutating func finish() -> (last: SnapshotChunk, records: Int, chunks: Int) {
        (SnapshotChunk(sequence: sequence, records: writer.bytes, isLast: true), records, Int(sequence) + 1)
    }

    /// Decodes chunks in order, checking sequence numbers and that the last one arrived.
    public static func replay(_ chunks: some Sequence<SnapshotChunk>, tableCount: Int, _ visit: (Int, [UInt8], [UInt8]) throws -> Void) throws {
        var expected: UInt32 = 0
        var sawLast = false
        for chunk in chunks {
            guard !sawLast else { throw StoreError.corrupt("snapshot chunk after the last one") }
            guard chunk.sequence == expected else {
                throw StoreError.corrupt("snapshot chunk \(chunk.sequence) arrived, expected \(expected)")
            }
            do { try SnapshotRecords.decode(chunk, tableCount: tableCount, visit) } catch let e as DecodeError {
                throw StoreError.corrupt("snapshot chunk \(chunk.sequence): \(e)")
            }
            expected += 1
            sawLast = chunk.isLast
        }
        guard sawLast else { throw StoreError.corrupt("snapshot ended without its last chunk") }
    }
}
