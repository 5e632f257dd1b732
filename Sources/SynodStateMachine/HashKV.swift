import SynodCore

/// Where a KV hash was taken (etcd's `hashkv`): the revision it covers and the compaction point
/// of the replica that took it. Hashes of two replicas compare only at equal compaction points.
public struct KVHashPoint: Hashable, Sendable {
    public var revision: Int64
    public var compactedRevision: Int64
    public init(revision: Int64, compactedRevision: Int64) {
        self.revision = revision
        self.compactedRevision = compactedRevision
    }
}

extension KVStateMachine {
    /// Feeds `visit` every `revisions` record (key, value bytes) at or below `revision` (0: the
    /// current revision), in key order, all from one read of `store`, and says where that was.
    ///
    /// Records at or below a revision never change once applied, except by compaction, which
    /// every replica applies at the same log index: so two replicas at the same compaction point
    /// feed the same bytes for any revision both have applied, even while writes go on. Values
    /// live only in `revisions` (the `kv` table is an index over it), so this covers every key,
    /// value and its history; leases and sessions are not covered.
    /// Throws `KVError.compacted` below the compaction point and `.futureRevision` above the
    /// current revision.
    public static func hashInput(_ store: any StateStore, revision: Int64, _ visit: ([UInt8], [UInt8]) -> Void) throws -> KVHashPoint {
        try store.read { r throws -> KVHashPoint in
            func counter(_ key: [UInt8], _ absent: Int64) throws -> Int64 {
                guard let bytes = try r.get(Tables.meta, key) else { return absent }
                do throws(DecodeError) { return Int64(bitPattern: try IndexKey.decode(bytes)) } catch { throw corrupt(Tables.meta, error) }
            }
            let current = try counter(MetaKey.revision, 1), compacted = try counter(MetaKey.compacted, 0)
            let target = revision == 0 ? current : revision
            if target > current { throw KVError.futureRevision(requested: target, current: current) }
            if target < compacted { throw KVError.compacted(requested: target, oldestAvailable: compacted) }
            var failure: DecodeError?
            try r.scan(Tables.revisions, from: [], limit: Int.max) { k, v in
                do throws(DecodeError) {
                    guard try RevisionKey(k).main <= target else { return false }
                } catch {
                    failure = error
                    return false
                }
                visit(k, v)
                return true
            }
            if let failure { throw corrupt(Tables.revisions, failure) }
            return KVHashPoint(revision: target, compactedRevision: compacted)
        }
    }
}
