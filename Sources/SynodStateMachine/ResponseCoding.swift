import SynodCore

// Versioned binary encoding of responses: version byte, tag, body. Tags are part of the wire and
// session formats: never reuse one.

extension Response {
    /// The first byte of the standalone encoding; bump on any incompatible change.
    public static let encodingVersion: UInt8 = 1

    /// The standalone versioned encoding.
    public func encode() -> [UInt8] {
        var w = ByteWriter()
        w.u8(Self.encodingVersion)
        encode(into: &w)
        return w.bytes
    }

    /// Decodes `encode()`'s output; bad input is a typed `DecodeError`, never a trap.
    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> Response {
        var r = ByteReader(bytes)
        try r.version("response version", expected: encodingVersion)
        let resp = try decode(from: &r)
        try r.expectEnd()
        return resp
    }

    /// Appends the unversioned body (for embedding in a larger message).
    public func encode(into w: inout ByteWriter) {
        switch self {
        case let .put(p): w.u8(1); p.encode(into: &w)
        case let .delete(d): w.u8(2); d.encode(into: &w)
        case let .range(g): w.u8(3); g.encode(into: &w)
        case let .txn(t):
            w.u8(4)
            w.i64(t.revision)
            w.bool(t.succeeded)
            w.count(t.results.count)
            for result in t.results {
                switch result {
                case let .put(p): w.u8(1); p.encode(into: &w)
                case let .delete(d): w.u8(2); d.encode(into: &w)
                case let .range(g): w.u8(3); g.encode(into: &w)
                }
            }
        case let .leaseGrant(g): w.u8(5); w.i64(g.revision); w.u64(g.id.rawValue); w.i64(g.ttlMillis)
        case let .leaseRevoke(l): w.u8(6); l.encode(into: &w)
        case let .leaseExpire(l): w.u8(7); l.encode(into: &w)
        case let .compact(c): w.u8(8); w.i64(c.revision); w.i64(c.compactedRevision)
        case let .failure(e): w.u8(9); e.encode(into: &w)
        case let .mesh(m): w.u8(10); m.encode(into: &w)
        case let .alarm(a): w.u8(11); w.i64(a.revision); w.lengthPrefixed(StoredAlarms.encode(a.alarms))
        case let .clusterVersion(c): w.u8(12); w.i64(c.revision); w.u16(c.version)
        case let .auth(a): w.u8(13); w.i64(a.revision); w.u64(a.authRevision)
        }
    }

    /// Reads what `encode(into:)` wrote, checking every length before allocating.
    public static func decode(from r: inout ByteReader) throws(DecodeError) -> Response {
        switch try r.u8("response tag") {
        case 1: return .put(try PutResult.decode(from: &r))
        case 2: return .delete(try DeleteResult.decode(from: &r))
        case 3: return .range(try RangeResult.decode(from: &r))
        case 4:
            let revision = try r.i64("txn revision")
            let succeeded = try r.bool("txn succeeded")
            let n = try r.count("txn result count", limit: KVLimits.txnOpsMax, minBytesEach: 9)
            var results: [TxnOpResult] = []
            for _ in 0..<n {
                switch try r.u8("txn result tag") {
                case 1: results.append(.put(try PutResult.decode(from: &r)))
                case 2: results.append(.delete(try DeleteResult.decode(from: &r)))
                case 3: results.append(.range(try RangeResult.decode(from: &r)))
                case let v: throw .unknownValue(what: "txn result tag", value: UInt64(v))
                }
            }
            return .txn(TxnResult(revision: revision, succeeded: succeeded, results: results))
        case 5:
            return .leaseGrant(LeaseGrantResult(revision: try r.i64("revision"), id: LeaseID(try r.u64("lease id")), ttlMillis: try r.i64("lease ttl")))
        case 6: return .leaseRevoke(try LeaseRevokeResult.decode(from: &r))
        case 7: return .leaseExpire(try LeaseRevokeResult.decode(from: &r))
        case 8: return .compact(CompactResult(revision: try r.i64("revision"), compactedRevision: try r.i64("compacted revision")))
        case 9: return .failure(try KVError.decode(from: &r))
        case 10: return .mesh(try MeshResult.decode(from: &r))
        case 11:
            let revision = try r.i64("revision")
            return .alarm(AlarmResult(revision: revision, alarms: try StoredAlarms.decode(try r.lengthPrefixed("alarms", limit: AlarmKind.allCases.count))))
        case 12: return .clusterVersion(ClusterVersionResult(revision: try r.i64("revision"), version: try r.u16("cluster version")))
        case 13: return .auth(AuthResult(revision: try r.i64("revision"), authRevision: try r.u64("auth revision")))
        case let v: throw .unknownValue(what: "response tag", value: UInt64(v))
        }
    }
}

extension PutResult {
    func encode(into w: inout ByteWriter) {
        w.i64(revision)
        if let p = prevKV { w.bool(true); p.encode(into: &w) } else { w.bool(false) }
    }

    static func decode(from r: inout ByteReader) throws(DecodeError) -> PutResult {
        let revision = try r.i64("put revision")
        let prev = try r.bool("put has prevKV") ? try KeyValue.decode(from: &r) : nil
        return PutResult(revision: revision, prevKV: prev)
    }
}

func encodeKVs(_ kvs: [KeyValue], into w: inout ByteWriter) {
    w.count(kvs.count)
    for kv in kvs { kv.encode(into: &w) }
}

func decodeKVs(_ what: String, from r: inout ByteReader) throws(DecodeError) -> [KeyValue] {
    let n = try r.count(what, limit: KVLimits.eventsMax, minBytesEach: KeyValue.encodedBytesMin)
    var kvs: [KeyValue] = []
    kvs.reserveCapacity(n)
    for _ in 0..<n { kvs.append(try KeyValue.decode(from: &r)) }
    return kvs
}

extension DeleteResult {
    func encode(into w: inout ByteWriter) {
        w.i64(revision)
        w.i64(deleted)
        encodeKVs(prevKVs, into: &w)
    }

    static func decode(from r: inout ByteReader) throws(DecodeError) -> DeleteResult {
        DeleteResult(revision: try r.i64("delete revision"), deleted: try r.i64("deleted count"), prevKVs: try decodeKVs("delete prevKV count", from: &r))
    }
}

extension RangeResult {
    func encode(into w: inout ByteWriter) {
        w.i64(revision)
        w.i64(count)
        w.bool(more)
        encodeKVs(kvs, into: &w)
    }

    static func decode(from r: inout ByteReader) throws(DecodeError) -> RangeResult {
        let revision = try r.i64("range revision")
        let count = try r.i64("range count")
        let more = try r.bool("range more")
        return RangeResult(revision: revision, kvs: try decodeKVs("range kv count", from: &r), count: count, more: more)
    }
}

extension LeaseRevokeResult {
    func encode(into w: inout ByteWriter) {
        w.i64(revision)
        w.count(leases.count)
        for id in leases { w.u64(id.rawValue) }
        w.i64(deletedKeys)
    }

    static func decode(from r: inout ByteReader) throws(DecodeError) -> LeaseRevokeResult {
        let revision = try r.i64("revoke revision")
        let n = try r.count("revoked lease count", limit: KVLimits.leaseExpireIDsMax, minBytesEach: 8)
        var ids: [LeaseID] = []
        for _ in 0..<n { ids.append(LeaseID(try r.u64("lease id"))) }
        return LeaseRevokeResult(revision: revision, leases: ids, deletedKeys: try r.i64("deleted keys"))
    }
}

extension KVError {
    func encode(into w: inout ByteWriter) {
        switch self {
        case .emptyKey: w.u8(1)
        case let .keyTooLarge(b, l): w.u8(2); w.i64(Int64(b)); w.i64(Int64(l))
        case let .valueTooLarge(b, l): w.u8(3); w.i64(Int64(b)); w.i64(Int64(l))
        case let .tooManyOps(c, l): w.u8(4); w.i64(Int64(c)); w.i64(Int64(l))
        case let .leaseNotFound(id): w.u8(5); w.u64(id.rawValue)
        case let .leaseExists(id): w.u8(6); w.u64(id.rawValue)
        case let .invalidLease(id, ttl): w.u8(7); w.u64(id.rawValue); w.i64(ttl)
        case let .compacted(req, oldest): w.u8(8); w.i64(req); w.i64(oldest)
        case let .futureRevision(req, cur): w.u8(9); w.i64(req); w.i64(cur)
        case let .staleSession(c, s, last): w.u8(10); w.u64(c); w.u64(s); w.u64(last)
        case let .responseNotCached(c, s): w.u8(11); w.u64(c); w.u64(s)
        case let .historyTooLarge(l): w.u8(12); w.i64(Int64(l))
        case let .invalidRequest(why): w.u8(13); w.text(why)
        case let .malformedCommand(why): w.u8(14); w.text(why)
        case let .meshVersionStale(expected, current): w.u8(15); w.i64(expected); w.i64(current)
        case let .meshRefused(why): w.u8(16); w.text(why)
        case .noSpace: w.u8(17)
        case .corruptCluster: w.u8(18)
        case let .permissionDenied(why): w.u8(19); w.text(why)
        }
    }

    static func decode(from r: inout ByteReader) throws(DecodeError) -> KVError {
        // Sizes travel as Int64; clamp so a forged value cannot trap in Int conversion on 32-bit.
        func int(_ what: String, _ r: inout ByteReader) throws(DecodeError) -> Int { Int(clamping: try r.i64(what)) }
        switch try r.u8("error tag") {
        case 1: return .emptyKey
        case 2: return .keyTooLarge(bytes: try int("bytes", &r), limit: try int("limit", &r))
        case 3: return .valueTooLarge(bytes: try int("bytes", &r), limit: try int("limit", &r))
        case 4: return .tooManyOps(count: try int("count", &r), limit: try int("limit", &r))
        case 5: return .leaseNotFound(LeaseID(try r.u64("lease id")))
        case 6: return .leaseExists(LeaseID(try r.u64("lease id")))
        case 7: return .invalidLease(LeaseID(try r.u64("lease id")), ttlMillis: try r.i64("ttl"))
        case 8: return .compacted(requested: try r.i64("requested"), oldestAvailable: try r.i64("oldest"))
        case 9: return .futureRevision(requested: try r.i64("requested"), current: try r.i64("current"))
        case 10: return .staleSession(clientID: try r.u64("client"), sequence: try r.u64("sequence"), lastApplied: try r.u64("last"))
        case 11: return .responseNotCached(clientID: try r.u64("client"), sequence: try r.u64("sequence"))
        case 12: return .historyTooLarge(limit: try int("limit", &r))
        case 13: return .invalidRequest(try r.text("error text"))
        case 14: return .malformedCommand(try r.text("error text"))
        case 15: return .meshVersionStale(expected: try r.i64("expected"), current: try r.i64("current"))
        case 16: return .meshRefused(try r.text("error text"))
        case 17: return .noSpace
        case 18: return .corruptCluster
        case 19: return .permissionDenied(try r.text("error text"))
        case let v: throw .unknownValue(what: "error tag", value: UInt64(v))
        }
    }
}
