import SynodCore

/// Snapshot bytes: the store's chunks, each `u32 sequence, u8 last, u32 length, records`.
public enum SnapshotCodec {
    /// Largest chunk accepted when decoding.
    public static let chunkBytesMax = 64 << 20

    public static func encode(_ chunks: [SnapshotChunk]) -> [UInt8] {
        var w = ByteWriter(capacity: chunks.reduce(0) { $0 + $1.records.count + 9 })
        for c in chunks {
            w.u32(c.sequence)
            w.u8(c.isLast ? 1 : 0)
            w.lengthPrefixed(c.records)
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> [SnapshotChunk] {
        var r = ByteReader(bytes)
        var out: [SnapshotChunk] = []
        while !r.isAtEnd {
            let seq = try r.u32("snapshot chunk sequence")
            let last = try r.u8("snapshot chunk last flag")
            let records = try r.lengthPrefixed("snapshot chunk", limit: chunkBytesMax)
            out.append(SnapshotChunk(sequence: seq, records: records, isLast: last == 1))
        }
        return out
    }
}

/// A snapshot saved by `synod snapshot save`: a header, then `SnapshotCodec` chunks.
///
/// ```
/// "SYNODSNP", u32 format (1), u64 applied index, i64 revision, chunks...
/// ```
public struct SnapshotFile: Sendable {
    public static let magic = Array("SYNODSNP".utf8)
    public static let format: UInt32 = 1
    public var appliedIndex: LogIndex
    public var revision: Int64
    public var chunks: [SnapshotChunk]

    public init(appliedIndex: LogIndex, revision: Int64, chunks: [SnapshotChunk]) {
        self.appliedIndex = appliedIndex
        self.revision = revision
        self.chunks = chunks
    }

    public func encode() -> [UInt8] {
        var w = ByteWriter()
        w.raw(Self.magic)
        w.u32(Self.format)
        w.u64(appliedIndex.rawValue)
        w.u64(UInt64(bitPattern: revision))
        return w.bytes + SnapshotCodec.encode(chunks)
    }

    /// Decodes and checks a file: magic, format, chunk order, and that every record decodes.
    public static func decode(_ bytes: [UInt8], tableCount: Int) throws -> (file: SnapshotFile, records: Int) {
        guard bytes.count >= 28, Array(bytes.prefix(8)) == magic else { throw DecodeError.invalid("not a Synod snapshot file (bad magic)") }
        var r = ByteReader(Array(bytes[8..<28]))
        let format = try r.u32("snapshot format")
        guard format == Self.format else { throw DecodeError.unknownValue(what: "snapshot format", value: UInt64(format)) }
        let applied = LogIndex(try r.u64("applied index"))
        let revision = Int64(bitPattern: try r.u64("revision"))
        let chunks = try SnapshotCodec.decode(Array(bytes[28...]))
        var records = 0
        try SnapshotChunker.replay(chunks, tableCount: tableCount) { _, _, _ in records += 1 }
        return (SnapshotFile(appliedIndex: applied, revision: revision, chunks: chunks), records)
    }
}
