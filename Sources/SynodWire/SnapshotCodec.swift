import Crypto
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
/// "SYNODSNP", u32 format (2), u64 applied index, i64 revision, 32-byte SHA-256, chunks...
/// ```
///
/// The SHA-256 (`SnapshotFile.Digest`) covers the applied index, the revision and the chunks'
/// bytes. The node that builds a snapshot sends the same digest in its stream's header, so
/// `synod snapshot save` checks the copy end to end before writing it, and `status` and `restore`
/// check the file (as etcd's `snapshot restore` checks its hash). Format 1 files (no digest,
/// written before 2026-11-22) still decode; `checksummed` is false for them.
public struct SnapshotFile: Sendable {
    public static let magic = Array("SYNODSNP".utf8)
    public static let format: UInt32 = 2
    public var appliedIndex: LogIndex
    public var revision: Int64
    public var chunks: [SnapshotChunk]
    /// False for a format-1 file, which carries no digest to check.
    public var checksummed = true

    public init(appliedIndex: LogIndex, revision: Int64, chunks: [SnapshotChunk]) {
        self.appliedIndex = appliedIndex
        self.revision = revision
        self.chunks = chunks
    }

    /// SHA-256 over a snapshot's applied index, revision and encoded chunks, fed chunk by chunk.
    public struct Digest {
        var hasher = SHA256()
        public init(appliedIndex: LogIndex, revision: Int64) {
            var w = ByteWriter()
            w.u64(appliedIndex.rawValue)
            w.u64(UInt64(bitPattern: revision))
            hasher.update(data: w.bytes)
        }
        /// `encoded`: `SnapshotCodec.encode` of the next chunks, in order.
        public mutating func update(_ encoded: [UInt8]) { hasher.update(data: encoded) }
        public func finalize() -> [UInt8] { Array(hasher.finalize()) }
    }

    /// The digest of this snapshot (what format 2 stores and a node's snapshot stream announces).
    public var digest: [UInt8] {
        var d = Digest(appliedIndex: appliedIndex, revision: revision)
        d.update(SnapshotCodec.encode(chunks))
        return d.finalize()
    }

    public func encode() -> [UInt8] {
        let body = SnapshotCodec.encode(chunks)
        var d = Digest(appliedIndex: appliedIndex, revision: revision)
        d.update(body)
        var w = ByteWriter()
        w.raw(Self.magic)
        w.u32(Self.format)
        w.u64(appliedIndex.rawValue)
        w.u64(UInt64(bitPattern: revision))
        w.raw(d.finalize())
        return w.bytes + body
    }

    /// Decodes and checks a file: magic, format, the SHA-256 (format 2), chunk order, and that
    /// every record decodes. A damaged file is `SnapshotFileError.checksumMismatch`.
    public static func decode(_ bytes: [UInt8], tableCount: Int) throws -> (file: SnapshotFile, records: Int) {
        guard bytes.count >= 28, Array(bytes.prefix(8)) == magic else { throw DecodeError.invalid("not a Synod snapshot file (bad magic)") }
        var r = ByteReader(Array(bytes[8..<28]))
        let format = try r.u32("snapshot format")
        guard format == 1 || format == 2 else { throw DecodeError.unknownValue(what: "snapshot format", value: UInt64(format)) }
        let applied = LogIndex(try r.u64("applied index"))
        let revision = Int64(bitPattern: try r.u64("revision"))
        var body = 28
        if format == 2 {
            guard bytes.count >= 60 else { throw DecodeError.invalid("snapshot file cut short in its header") }
            body = 60
            var d = Digest(appliedIndex: applied, revision: revision)
            d.update(Array(bytes[body...]))
            let stored = Array(bytes[28..<60]), computed = d.finalize()
            guard stored == computed else { throw SnapshotFileError.checksumMismatch(stored: hex(stored), computed: hex(computed)) }
        }
        let chunks = try SnapshotCodec.decode(Array(bytes[body...]))
        var records = 0
        try SnapshotChunker.replay(chunks, tableCount: tableCount) { _, _, _ in records += 1 }
        var file = SnapshotFile(appliedIndex: applied, revision: revision, chunks: chunks)
        file.checksummed = format == 2
        return (file, records)
    }

    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
    }
}

/// A snapshot whose bytes are not the ones its maker hashed.
public enum SnapshotFileError: Error, Equatable, CustomStringConvertible {
    /// A file's stored SHA-256 differs from its contents'.
    case checksumMismatch(stored: String, computed: String)
    /// A node's snapshot stream arrived with other bytes than the node hashed.
    case streamMismatch(announced: String, received: String)

    public var description: String {
        switch self {
        case let .checksumMismatch(stored, computed): return "snapshot checksum mismatch: the file says sha256 \(stored), its contents hash to \(computed) (the file is damaged)"
        case let .streamMismatch(announced, received): return "snapshot stream damaged: the node announced sha256 \(announced), the bytes received hash to \(received)"
        }
    }
}

/// Raft snapshot bytes as a leader sends them: `"SYNSEAL1"`, the SHA-256 of the body, the body
/// (`SnapshotCodec` chunks). The follower's core checks the seal before the snapshot replaces
/// anything (`RaftCore.snapshotCheck`) and asks for a damaged one again. Bytes without the magic
/// (snapshots stored by builds before the seal, BFT checkpoint state) pass through unchecked:
/// a body begins with chunk sequence 0, four zero bytes, never with the magic.
public enum SnapshotSeal {
    static let magic = Array("SYNSEAL1".utf8)

    public static func seal(_ body: [UInt8]) -> [UInt8] {
        var out = magic
        out.reserveCapacity(40 + body.count)
        out += Array(SHA256.hash(data: body))
        out += body
        return out
    }

    /// The body, or nil when the bytes are sealed and do not match their digest.
    public static func open(_ data: [UInt8]) -> [UInt8]? {
        guard data.count >= 8, data[0..<8].elementsEqual(magic) else { return data }
        guard data.count >= 40 else { return nil }
        let body = Array(data[40...])
        return Array(SHA256.hash(data: body)).elementsEqual(data[8..<40]) ? body : nil
    }

    /// Whether the bytes are fit to install: sealed ones must match their digest; unsealed ones
    /// (an older leader's) must at least decode as chunks — so a flipped bit in the magic cannot
    /// pass a sealed snapshot off as an unsealed one.
    public static func isIntact(_ data: [UInt8]) -> Bool {
        guard let body = open(data) else { return false }
        return body.count != data.count || (try? SnapshotCodec.decode(body)) != nil
    }
}
