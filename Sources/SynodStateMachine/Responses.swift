import SynodCore

/// Why a command or read failed. Deterministic failures are answers, not exceptions: the command
/// still consumed its log index on every replica.
public enum KVError: Error, Hashable, Sendable, CustomStringConvertible {
    case emptyKey
    case keyTooLarge(bytes: Int, limit: Int)
    case valueTooLarge(bytes: Int, limit: Int)
    case tooManyOps(count: Int, limit: Int)
    case leaseNotFound(LeaseID)
    case leaseExists(LeaseID)
    /// Lease id 0, or a TTL that is not positive.
    case invalidLease(LeaseID, ttlMillis: Int64)
    /// The revision was compacted; `oldestAvailable` is the compaction revision.
    case compacted(requested: Int64, oldestAvailable: Int64)
    case futureRevision(requested: Int64, current: Int64)
    /// The client already applied a later command (this one's response is gone).
    case staleSession(clientID: UInt64, sequence: UInt64, lastApplied: UInt64)
    /// The retried command applied once, but its response was too large to cache.
    case responseNotCached(clientID: UInt64, sequence: UInt64)
    /// A past-revision read would scan more history than `KVLimits.historyScanRecordsMax`.
    case historyTooLarge(limit: Int)
    /// The request is well-formed bytes but not a valid request (explained in the text).
    case invalidRequest(String)
    /// The entry's payload did not decode as a `CommandEnvelope`.
    case malformedCommand(String)
    /// A mesh proposal computed against mesh version `expected`; the mesh is at `current` now.
    case meshVersionStale(expected: Int64, current: Int64)
    /// The mesh refused the command (explained in the text: an unknown agent, a duplicate task...).
    case meshRefused(String)
    /// The NOSPACE alarm is raised (the state went over its quota): commands that add data are
    /// refused until space is freed and the alarm disarmed (`AlarmKind.noSpace`).
    case noSpace
    /// The CORRUPT alarm is raised (replicas' histories differ): every write is refused until an
    /// operator replaces the odd replica and disarms it (`AlarmKind.corrupt`).
    case corruptCluster
    /// The sender may not do this under the cluster's auth state (`AuthState.denial`): not
    /// authenticated, a stale credential, or a missing permission.
    case permissionDenied(String)

    public var description: String {
        switch self {
        case .emptyKey: return "key must not be empty"
        case let .keyTooLarge(b, l): return "key of \(b) bytes exceeds \(l)"
        case let .valueTooLarge(b, l): return "value of \(b) bytes exceeds \(l)"
        case let .tooManyOps(c, l): return "\(c) operations exceed \(l)"
        case let .leaseNotFound(id): return "lease \(id.rawValue) not found"
        case let .leaseExists(id): return "lease \(id.rawValue) already exists"
        case let .invalidLease(id, ttl): return "invalid lease \(id.rawValue) with ttl \(ttl) ms (id must be non-zero, ttl positive)"
        case let .compacted(req, oldest): return "revision \(req) was compacted; the oldest available revision is \(oldest)"
        case let .futureRevision(req, cur): return "revision \(req) is after the current revision \(cur)"
        case let .staleSession(c, s, last): return "client \(c) sequence \(s) is older than its last applied sequence \(last)"
        case let .responseNotCached(c, s): return "client \(c) sequence \(s) applied, but its response was too large to keep"
        case let .historyTooLarge(l): return "past-revision read would scan more than \(l) history records"
        case let .invalidRequest(why): return "invalid request: \(why)"
        case let .malformedCommand(why): return "malformed command: \(why)"
        case let .meshVersionStale(expected, current): return "the mesh is at version \(current), not \(expected): read it again and re-propose"
        case let .meshRefused(why): return "mesh: \(why)"
        case .noSpace:
            return "database space exceeded (alarm NOSPACE): compact history or delete keys, then `synod alarm disarm` (or raise --quota-bytes)"
        case .corruptCluster:
            return "corrupt cluster (alarm CORRUPT): the replicas' histories differ; writes are refused until the odd replica is replaced and `synod alarm disarm` runs (see `synod hashkv`)"
        case let .permissionDenied(why): return "permission denied: \(why)"
        }
    }
}

/// The answer to a put.
public struct PutResult: Hashable, Sendable {
    /// The store revision after the put.
    public var revision: Int64
    public var prevKV: KeyValue?
    public init(revision: Int64, prevKV: KeyValue?) { self.revision = revision; self.prevKV = prevKV }
}

/// The answer to a delete or delete-range.
public struct DeleteResult: Hashable, Sendable {
    public var revision: Int64
    public var deleted: Int64
    /// The deleted key-values, when prevKV was asked for.
    public var prevKVs: [KeyValue]
    public init(revision: Int64, deleted: Int64, prevKVs: [KeyValue]) { self.revision = revision; self.deleted = deleted; self.prevKVs = prevKVs }
}

/// The answer to a range read.
public struct RangeResult: Hashable, Sendable {
    /// The revision the read was served at.
    public var revision: Int64
    public var kvs: [KeyValue]
    /// Keys in the range (all of them, not only those returned).
    public var count: Int64
    /// More keys matched than were returned.
    public var more: Bool
    public init(revision: Int64, kvs: [KeyValue], count: Int64, more: Bool) { self.revision = revision; self.kvs = kvs; self.count = count; self.more = more }
}

/// The result of one op inside a transaction.
public enum TxnOpResult: Hashable, Sendable {
    case put(PutResult)
    case delete(DeleteResult)
    case range(RangeResult)
}

/// The answer to a transaction.
public struct TxnResult: Hashable, Sendable {
    public var revision: Int64
    /// Whether every compare held (and `success` ran).
    public var succeeded: Bool
    /// One result per op of the branch that ran, in order.
    public var results: [TxnOpResult]
    public init(revision: Int64, succeeded: Bool, results: [TxnOpResult]) { self.revision = revision; self.succeeded = succeeded; self.results = results }
}

/// The answer to a lease grant.
public struct LeaseGrantResult: Hashable, Sendable {
    public var revision: Int64
    public var id: LeaseID
    public var ttlMillis: Int64
    public init(revision: Int64, id: LeaseID, ttlMillis: Int64) { self.revision = revision; self.id = id; self.ttlMillis = ttlMillis }
}

/// The answer to a lease revoke or expire.
public struct LeaseRevokeResult: Hashable, Sendable {
    public var revision: Int64
    /// Leases actually removed (for `leaseExpire`, ids already gone are left out), ascending.
    public var leases: [LeaseID]
    /// Keys deleted with them.
    public var deletedKeys: Int64
    public init(revision: Int64, leases: [LeaseID], deletedKeys: Int64) { self.revision = revision; self.leases = leases; self.deletedKeys = deletedKeys }
}

/// The answer to a compaction.
public struct CompactResult: Hashable, Sendable {
    public var revision: Int64
    /// The compaction revision now in force (the oldest revision still readable).
    public var compactedRevision: Int64
    public init(revision: Int64, compactedRevision: Int64) { self.revision = revision; self.compactedRevision = compactedRevision }
}

/// The answer to a command or read.
public enum Response: Hashable, Sendable {
    case put(PutResult)
    case delete(DeleteResult)
    case range(RangeResult)
    case txn(TxnResult)
    case leaseGrant(LeaseGrantResult)
    case leaseRevoke(LeaseRevokeResult)
    case leaseExpire(LeaseRevokeResult)
    case compact(CompactResult)
    case mesh(MeshResult)
    case alarm(AlarmResult)
    case clusterVersion(ClusterVersionResult)
    /// The answer to an auth command: the auth revision after it.
    case auth(AuthResult)
    case failure(KVError)

    /// The store revision the response carries (nil for a failure).
    public var revision: Int64? {
        switch self {
        case let .put(p): return p.revision
        case let .delete(d): return d.revision
        case let .range(r): return r.revision
        case let .txn(t): return t.revision
        case let .leaseGrant(g): return g.revision
        case let .leaseRevoke(l), let .leaseExpire(l): return l.revision
        case let .compact(c): return c.revision
        case let .mesh(m): return m.revision
        case let .alarm(a): return a.revision
        case let .clusterVersion(c): return c.revision
        case let .auth(a): return a.revision
        case .failure: return nil
        }
    }

    /// The error, if this is a failure.
    public var error: KVError? {
        if case let .failure(e) = self { return e }
        return nil
    }
}
