import SynodCore

/// A node's answer to `hashKV` (etcd's `hashkv`): a SHA-256 of every history record at or below
/// `revision`, and the node's compaction point. Two nodes' hashes at one revision must be equal
/// when their compaction points are; anything else means their states diverged.
public struct KVHash: Sendable, Hashable {
    public static let hashBytes = 32
    public var revision: Int64
    public var compactedRevision: Int64
    public var hash: [UInt8]

    public init(revision: Int64, compactedRevision: Int64, hash: [UInt8]) {
        self.revision = revision
        self.compactedRevision = compactedRevision
        self.hash = hash
    }

    /// Which of `hashes` (taken at one revision) disagree with their replicas: hashes compare
    /// only between members at one compaction point, and in each such group of two or more the
    /// hash most members hold is taken as the cluster's (ties: the lowest hash, so the verdict
    /// does not depend on order); the others are returned, in the order given. Used by
    /// `synod hashkv` and the leader's corruption check alike.
    public static func minority<Member>(_ hashes: [(Member, KVHash)]) -> [Member] {
        var odd: [Member] = []
        for compacted in Set(hashes.map(\.1.compactedRevision)).sorted() {
            let group = hashes.filter { $0.1.compactedRevision == compacted }
            guard group.count >= 2, Set(group.map(\.1.hash)).count > 1 else { continue }
            var counts: [[UInt8]: Int] = [:]
            for (_, h) in group { counts[h.hash, default: 0] += 1 }
            let majority = counts.max { a, b in a.value < b.value || (a.value == b.value && b.key.lexicographicallyPrecedes(a.key)) }!.key
            odd += group.filter { $0.1.hash != majority }.map(\.0)
        }
        return odd
    }

    /// The hash in lowercase hex.
    public var hex: String { hash.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() }

    public func encode() -> [UInt8] {
        var w = ByteWriter()
        w.u8(1)
        w.u64(UInt64(bitPattern: revision))
        w.u64(UInt64(bitPattern: compactedRevision))
        w.lengthPrefixed(hash)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> KVHash {
        var r = ByteReader(bytes)
        let version = try r.u8("kv hash version")
        guard version == 1 else { throw .unknownValue(what: "kv hash version", value: UInt64(version)) }
        let revision = Int64(bitPattern: try r.u64("hash revision"))
        let compacted = Int64(bitPattern: try r.u64("hash compacted revision"))
        let hash = try r.lengthPrefixed("hash", limit: hashBytes)
        try r.expectEnd()
        guard hash.count == hashBytes else { throw .invalid("a kv hash of \(hash.count) bytes") }
        return KVHash(revision: revision, compactedRevision: compacted, hash: hash)
    }
}
