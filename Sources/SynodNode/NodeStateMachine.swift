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
