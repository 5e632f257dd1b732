import SynodCore

/// What the node needs from the replicated state machine. `KVStateMachineAdapter` provides it
/// for Synod's key-value store; tests may plug in others.
///
/// All methods are called on the node thread only.
public protocol NodeStateMachine: AnyObject {
    /// Applies committed entries in one atomic step (tables and applied index together) and
    /// returns an encoded response for each command entry, by index. Must be deterministic.
    func apply(_ entries: [Entry]) throws -> [(index: LogIndex, response: [UInt8])]
    /// Answers an encoded query from the current applied state (a serializable read).
    func query(_ request: [UInt8]) -> [UInt8]
    /// The response bytes for a request the node refuses before it reaches the log.
    var appliedIndex: LogIndex { get }
    /// The store revision, for status.
    var revision: Int64 { get }
    /// Serialises the current state (consistent), for a snapshot at `appliedIndex`.
    func snapshot() throws -> [UInt8]
    /// Replaces all state with a snapshot taken at `index`. Must discard all previous state.
    func install(_ data: [UInt8], at index: LogIndex) throws
}

/// Snapshot bytes: the store's chunks, each `u32 sequence, u8 last, u32 length, records`.
public enum SnapshotCodec {
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
            let records = try r.lengthPrefixed("snapshot chunk", limit: 64 << 20)
            out.append(SnapshotChunk(sequence: seq, records: records, isLast: last == 1))
        }
        return out
    }
}
