import SynodCore

// Leases and compaction. Lease expiry is a command the leader proposes from its own clock; the
// state machine never reads a clock, so every replica deletes the same keys at the same index.

extension ApplyContext {
    func applyLeaseGrant(_ id: LeaseID, ttlMillis: Int64) throws -> Response {
        guard id.rawValue != 0, ttlMillis > 0 else { return .failure(.invalidLease(id, ttlMillis: ttlMillis)) }
        if try leaseExists(id) { return .failure(.leaseExists(id)) }
        try w.put(Tables.leases, LayoutKeys.leaseKey(id), StoredLease(ttlMillis: ttlMillis).encode())
        return .leaseGrant(LeaseGrantResult(revision: revision, id: id, ttlMillis: ttlMillis))
    }

    func applyLeaseRevoke(_ id: LeaseID) throws -> Response {
        guard try leaseExists(id) else { return .failure(.leaseNotFound(id)) }
        let deleted = try removeLease(id)
        return .leaseRevoke(LeaseRevokeResult(revision: revisionAfterCommand, leases: [id], deletedKeys: deleted))
    }

    /// Removes every listed lease that still exists, and their keys, as one revision.
    func applyLeaseExpire(_ ids: [LeaseID]) throws -> Response {
        guard ids.count <= KVLimits.leaseExpireIDsMax else { return .failure(.tooManyOps(count: ids.count, limit: KVLimits.leaseExpireIDsMax)) }
        var removed: [LeaseID] = []
        var deleted: Int64 = 0
        for id in ids where try leaseExists(id) {
            deleted += try removeLease(id)
            removed.append(id)
        }
        return .leaseExpire(LeaseRevokeResult(revision: revisionAfterCommand, leases: removed.sorted(), deletedKeys: deleted))
    }

    /// Deletes the lease's keys (each a change of the current revision) and the lease.
    private func removeLease(_ id: LeaseID) throws -> Int64 {
        var n: Int64 = 0
        for key in try attachedKeys(id, in: w, limit: Int.max) where try delete(key, wantPrevious: false) != nil { n += 1 }
        try w.delete(Tables.leases, LayoutKeys.leaseKey(id))
        return n
    }

    // MARK: Compaction

    /// Drops history below `target`, keeping for every key its latest change below `target`
    /// unless that change is a delete or the key changed again at `target` itself (as etcd
    /// does), so reads at any revision >= `target` still answer exactly. (Compacting at the
    /// revision of a range delete thus frees the deleted values: what an operator does to get
    /// out of NOSPACE.)
    ///
    /// Only the history since the last compaction point is scanned: below it, every key holds
    /// at most one record (its latest change before that point), and the first change of a key
    /// after the point names that record (`StoredEvent.previous`), which then goes. So the cost
    /// follows the changes since the last compaction, not the number of live keys — what lets
    /// the leader compact by itself every step (`--auto-compact-revisions`) without stalling
    /// every replica for a scan of the whole keyspace.
    func applyCompact(_ target: Int64) throws -> Response {
        if target <= compacted { return .failure(.compacted(requested: target, oldestAvailable: compacted)) }
        if target > revision { return .failure(.futureRevision(requested: target, current: revision)) }
        var latest: [[UInt8]: ([UInt8], EventType)] = [:]
        var drop: [[UInt8]] = []
        var failure: DecodeError?
        try w.scan(Tables.revisions, from: RevisionKey(main: compacted, sub: 0).bytes, limit: Int.max) { k, v in
            do throws(DecodeError) {
                let main = try RevisionKey(k).main
                guard main <= target else { return false }
                let e = try StoredEvent.decode(v)
                if let older = latest[e.kv.key] {
                    drop.append(older.0)
                } else if e.previous.main > 0 && e.previous.main < compacted {
                    // The record this key kept below the last compaction (already gone when that
                    // compaction saw this change at its own target; deleting it again is a no-op).
                    drop.append(e.previous.bytes)
                }
                // A change at `target` itself stays, and answers reads at `target` alone.
                latest[e.kv.key] = main < target ? (k, e.type) : nil
            } catch {
                failure = error
                return false
            }
            return true
        }
        if let failure { throw corrupt(Tables.revisions, failure) }
        for (k, type) in latest.values where type == .delete { drop.append(k) }
        // Sorted so Dictionary order never reaches the store.
        for k in drop.sorted(by: { $0.lexicographicallyPrecedes($1) }) { try w.delete(Tables.revisions, k) }
        compacted = target
        return .compact(CompactResult(revision: revision, compactedRevision: target))
    }
}

/// Keys attached to `id`, ascending, at most `limit`.
func attachedKeys(_ id: LeaseID, in reader: any StateReader, limit: Int) throws -> [[UInt8]] {
    let prefix = LayoutKeys.leaseKey(id)
    var keys: [[UInt8]] = []
    try reader.scan(Tables.leaseKeys, from: prefix, limit: limit) { k, _ in
        guard k.count > prefix.count, k.starts(with: prefix) else { return false }
        keys.append(Array(k[prefix.count...]))
        return true
    }
    return keys
}
