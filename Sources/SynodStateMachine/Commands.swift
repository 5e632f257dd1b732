import SynodCore

/// A range read. `rangeEnd` follows etcd: empty means the single key `key`; `[0]` means every key
/// >= `key`; otherwise the half-open interval [`key`, `rangeEnd`).
public struct RangeRequest: Hashable, Sendable {
    public var key: [UInt8]
    public var rangeEnd: [UInt8]
    /// Most key-values to return; 0 means `KVLimits.rangeLimitMax`, larger values are clamped.
    public var limit: Int
    /// Return keys and metadata without values.
    public var keysOnly: Bool
    /// Return only the count.
    public var countOnly: Bool
    /// Read the store as it was at this revision (nil or 0: current). Below the compaction point
    /// the answer is `KVError.compacted`; above the current revision `KVError.futureRevision`.
    public var revision: Int64?
    /// The order of the answer (etcd's `sort_order`; see `RangeOrder.swift` for the rules).
    public var sortOrder: RangeSortOrder = .none
    /// What the answer is sorted by (etcd's `sort_target`).
    public var sortTarget: RangeSortTarget = .key
    /// Only key-values last modified at or after this revision (0: no bound).
    public var minModRevision: Int64 = 0
    /// Only key-values last modified at or before this revision (0: no bound).
    public var maxModRevision: Int64 = 0
    /// Only key-values created at or after this revision (0: no bound).
    public var minCreateRevision: Int64 = 0
    /// Only key-values created at or before this revision (0: no bound).
    public var maxCreateRevision: Int64 = 0

    public init(key: [UInt8], rangeEnd: [UInt8] = [], limit: Int = 0, keysOnly: Bool = false, countOnly: Bool = false, revision: Int64? = nil,
                sortOrder: RangeSortOrder = .none, sortTarget: RangeSortTarget = .key) {
        self.key = key
        self.rangeEnd = rangeEnd
        self.limit = limit
        self.keysOnly = keysOnly
        self.countOnly = countOnly
        self.revision = revision
        self.sortOrder = sortOrder
        self.sortTarget = sortTarget
    }

    /// A request for every key starting with `prefix` (etcd's `--prefix`).
    public static func prefix(_ prefix: [UInt8], limit: Int = 0, keysOnly: Bool = false) -> RangeRequest {
        RangeRequest(key: prefix, rangeEnd: KeyRange.prefixEnd(prefix), limit: limit, keysOnly: keysOnly)
    }
}

/// What a compare looks at, with the operand.
public enum CompareTarget: Hashable, Sendable {
    case value([UInt8])
    case version(Int64)
    case createRevision(Int64)
    case modRevision(Int64)
    /// Whether the key exists (false < true for `less`/`greater`).
    case exists(Bool)
    /// The key's lease (etcd's LEASE target; nil: no lease, which a missing key has too), ordered
    /// by id. From cluster version 3.
    case lease(LeaseID?)
}

/// How a compare relates the key's current field to the operand.
public enum CompareOp: UInt8, Hashable, Sendable {
    case equal = 1
    case notEqual = 2
    case less = 3
    case greater = 4
}

/// One condition of a transaction: `key`'s target `op` operand. A missing key has version,
/// create revision and mod revision 0 (as in etcd); a value compare on a missing key is false.
public struct Compare: Hashable, Sendable {
    public var key: [UInt8]
    public var op: CompareOp
    public var target: CompareTarget
    public init(key: [UInt8], _ op: CompareOp, _ target: CompareTarget) {
        self.key = key
        self.op = op
        self.target = target
    }
}

/// An operation inside a transaction branch.
public enum TxnOp: Hashable, Sendable {
    case put(key: [UInt8], value: [UInt8], lease: LeaseID?, prevKV: Bool)
    case delete(key: [UInt8], prevKV: Bool)
    case deleteRange(from: [UInt8], to: [UInt8], prevKV: Bool)
    /// Reads the current state including this transaction's earlier writes; `revision` must be nil.
    case range(RangeRequest)
}

/// Compare-then-act, atomically: if every compare holds, `success` runs, else `failure`.
public struct Txn: Hashable, Sendable {
    public var compares: [Compare]
    public var success: [TxnOp]
    public var failure: [TxnOp]
    public init(compares: [Compare], success: [TxnOp], failure: [TxnOp] = []) {
        self.compares = compares
        self.success = success
        self.failure = failure
    }

    /// Whether a range in either branch is sorted or filtered (needs cluster version 3).
    public var hasOrderedRanges: Bool {
        (success + failure).contains { if case let .range(r) = $0 { return r.hasOrderOptions } else { return false } }
    }

    /// Whether anything in the transaction needs cluster version 3: a sorted or filtered range,
    /// or a compare on a key's lease.
    public var needsVersion3: Bool {
        hasOrderedRanges || compares.contains { if case .lease = $0.target { return true } else { return false } }
    }
}

extension Command {
    /// Whether the command uses what cluster version 3 introduced (`KVStateMachine.version3ClusterVersion`).
    public var needsVersion3: Bool {
        switch self {
        case .putIgnoring: return true
        case let .txn(t): return t.needsVersion3
        default: return false
        }
    }
}

/// A replicated KV command. Applying one is deterministic; one that fails still consumes its log
/// index and yields a `Response.failure`.
public enum Command: Hashable, Sendable {
    case put(key: [UInt8], value: [UInt8], lease: LeaseID?, prevKV: Bool)
    /// etcd's put with `ignore_value` and/or `ignore_lease`: writes an existing key again,
    /// keeping its current value (`value` must then be empty) and/or its current lease (`lease`
    /// must then be nil). A missing key is `invalidRequest`, as etcd's "key not found". From
    /// cluster version 3 (`KVStateMachine.version3ClusterVersion`).
    case putIgnoring(key: [UInt8], value: [UInt8], lease: LeaseID?, prevKV: Bool, ignoreValue: Bool, ignoreLease: Bool)
    case delete(key: [UInt8], prevKV: Bool)
    /// Deletes [from, to); an empty `to` means every key >= `from`.
    case deleteRange(from: [UInt8], to: [UInt8], prevKV: Bool)
    case txn(Txn)
    case leaseGrant(id: LeaseID, ttlMillis: Int64)
    case leaseRevoke(id: LeaseID)
    /// Proposed by the leader when its clock says these leases ran out; replicas never expire
    /// leases by their own clocks. Ids no longer present are skipped.
    case leaseExpire(ids: [LeaseID])
    /// Drops history below `revision`.
    case compact(revision: Int64)
    /// A mesh coordination proposal (`MeshCommand`), refused as stale unless the mesh version is
    /// still `ifVersion` (when given).
    case mesh(MeshCommand, ifVersion: Int64?)
    /// Raises or disarms a cluster alarm (`AlarmKind`). The leader raises `noSpace` when the
    /// state is over its quota; an operator disarms it (`synod alarm disarm`) after freeing space.
    case alarm(AlarmKind, raised: Bool)
    /// Moves the cluster to this version of the replicated rules (`ClusterVersion.swift`).
    /// Proposed by the leader only, once every member supports it; a client's (any command
    /// with a session) is refused.
    case clusterVersion(UInt16)
    /// Changes users, roles or the auth switch (`AuthCommand`; from cluster version 2).
    case auth(AuthCommand)
}

/// What a log entry's payload carries: the command, for exactly-once apply the client session,
/// and who sent it (`principal`, stamped by the leader; `Auth.swift`).
///
/// Encodings: version 1 has no principal (what clients send, and the leader's own commands);
/// version 2 puts the principal after the version byte. The leader writes version 2 only once
/// the cluster runs `KVStateMachine.authClusterVersion`, so every replica can read it.
public struct CommandEnvelope: Hashable, Sendable {
    /// The first byte of the standalone encoding without a principal; bump on any incompatible change.
    public static let encodingVersion: UInt8 = 1
    /// The first byte of the encoding with a principal.
    public static let stampedEncodingVersion: UInt8 = 2
    public var session: ClientSession?
    public var command: Command
    /// Who sent the command (nil: a command of the leader's own, or from before auth).
    public var principal: AuthPrincipal?

    public init(session: ClientSession? = nil, command: Command, principal: AuthPrincipal? = nil) {
        self.session = session
        self.command = command
        self.principal = principal
    }

    /// `payload` (a version-1 envelope, as clients send) stamped with `principal`: the same
    /// bytes behind a version-2 header, so the leader pays a copy, not a decode.
    public static func stamping(_ payload: [UInt8], with principal: AuthPrincipal) -> [UInt8] {
        var w = ByteWriter(capacity: payload.count + 16 + principal.user.utf8.count)
        w.u8(stampedEncodingVersion)
        principal.encode(into: &w)
        w.raw(payload.dropFirst())
        return w.bytes
    }

    /// The standalone versioned encoding.
    public func encode() -> [UInt8] {
        var w = ByteWriter()
        if let principal {
            w.u8(Self.stampedEncodingVersion)
            principal.encode(into: &w)
        } else {
            w.u8(Self.encodingVersion)
        }
        if let s = session {
            w.bool(true)
            w.u64(s.clientID)
            w.u64(s.sequence)
        } else {
            w.bool(false)
        }
        command.encode(into: &w)
        return w.bytes
    }

    /// Decodes `encode()`'s output; bad input is a typed `DecodeError`, never a trap.
    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> CommandEnvelope {
        var r = ByteReader(bytes)
        var principal: AuthPrincipal?
        switch try r.u8("command envelope version") {
        case encodingVersion: break
        case stampedEncodingVersion: principal = try AuthPrincipal.decode(from: &r)
        case let v: throw .unknownValue(what: "command envelope version", value: UInt64(v))
        }
        var session: ClientSession?
        if try r.bool("envelope has session") {
            session = ClientSession(clientID: try r.u64("session client id"), sequence: try r.u64("session sequence"))
        }
        let command = try Command.decode(from: &r)
        try r.expectEnd()
        return CommandEnvelope(session: session, command: command, principal: principal)
    }

    /// Whether `payload` is a `clusterVersion` command (its tag read only): clients may not send
    /// one (the leader proposes it once every member supports the version).
    public static func movesClusterVersion(_ payload: [UInt8]) -> Bool {
        guard payload.count >= 3, payload[0] == encodingVersion else { return false }
        let tagAt = payload[1] == 0 ? 2 : 18
        return payload.count > tagAt && payload[tagAt] == CommandTag.clusterVersion.rawValue
    }

    /// Whether `payload` is an auth command (its tag read only): the leader proposes one only
    /// once the cluster runs `KVStateMachine.authClusterVersion`.
    public static func isAuthCommand(_ payload: [UInt8]) -> Bool {
        guard payload.count >= 3, payload[0] == encodingVersion else { return false }
        let tagAt = payload[1] == 0 ? 2 : 18
        return payload.count > tagAt && payload[tagAt] == CommandTag.auth.rawValue
    }

    /// Whether `payload` holds what cluster version 3 introduced — a put that ignores its value
    /// or lease, or a transaction with a sorted or filtered range or a compare on a lease
    /// (decoded only when its tag says transaction): the leader proposes one only once the cluster runs
    /// `KVStateMachine.version3ClusterVersion`.
    public static func needsVersion3(_ payload: [UInt8]) -> Bool {
        guard payload.count >= 3, payload[0] == encodingVersion else { return false }
        let tagAt = payload[1] == 0 ? 2 : 18
        guard payload.count > tagAt else { return false }
        if payload[tagAt] == CommandTag.putIgnoring.rawValue { return true }
        guard payload[tagAt] == CommandTag.txn.rawValue, let envelope = try? decode(payload), case let .txn(t) = envelope.command else { return false }
        return t.needsVersion3
    }

    /// `payload` with a lease grant's TTL raised to `minimumMillis`, or `payload` itself when it
    /// is not a lease grant, its TTL is already long enough or not positive (apply refuses that),
    /// or it does not decode (apply answers that). Only the command's tag is read unless it is a
    /// grant, so the write path pays a few byte reads per proposal.
    ///
    /// Why a minimum: a new leader restarts every lease's TTL, but a client cannot renew while
    /// there is no leader. A lease shorter than an election would expire across a leader change
    /// however often its owner sent keep-alives (etcd raises TTLs below 1.5 election timeouts to
    /// that for the same reason). The leader raises the TTL before proposing, so the log carries
    /// the TTL every replica applies and the grant's answer reports.
    public static func raisingLeaseTTL(_ payload: [UInt8], toAtLeast minimumMillis: Int64) -> [UInt8] {
        // version, has-session flag, [client id, sequence], command tag
        guard payload.count >= 3, payload[0] == encodingVersion else { return payload }
        let tagAt = payload[1] == 0 ? 2 : 18
        guard payload.count > tagAt, payload[tagAt] == CommandTag.leaseGrant.rawValue,
              var envelope = try? decode(payload),
              case let .leaseGrant(id, ttl) = envelope.command, ttl > 0, ttl < minimumMillis else { return payload }
        envelope.command = .leaseGrant(id: id, ttlMillis: minimumMillis)
        return envelope.encode()
    }
}

/// Helpers for etcd-style key ranges.
public enum KeyRange {
    /// The smallest key greater than every key starting with `prefix` ([0] if there is none:
    /// "to the end").
    public static func prefixEnd(_ prefix: [UInt8]) -> [UInt8] {
        var end = prefix
        while let last = end.last {
            if last < 0xff {
                end[end.count - 1] = last + 1
                return end
            }
            end.removeLast()
        }
        return [0]
    }

    /// Whether `key` falls in the etcd range (`key`, `rangeEnd`).
    static func contains(_ k: [UInt8], key: [UInt8], rangeEnd: [UInt8]) -> Bool {
        if rangeEnd.isEmpty { return k == key }
        if k.lexicographicallyPrecedes(key) { return false }
        if rangeEnd == [0] { return true }
        return k.lexicographicallyPrecedes(rangeEnd)
    }
}

// MARK: - Encoding

enum CommandTag: UInt8 {
    case put = 1, delete, deleteRange, txn, leaseGrant, leaseRevoke, leaseExpire, compact, mesh, alarm, clusterVersion, auth, putIgnoring
}

enum TxnOpTag: UInt8 {
    case put = 1, delete, deleteRange, range
}

extension Command {
    func encode(into w: inout ByteWriter) {
        switch self {
        case let .put(key, value, lease, prevKV):
            w.u8(CommandTag.put.rawValue)
            encodePut(key, value, lease, prevKV, into: &w)
        case let .putIgnoring(key, value, lease, prevKV, ignoreValue, ignoreLease):
            w.u8(CommandTag.putIgnoring.rawValue)
            encodePut(key, value, lease, prevKV, into: &w)
            w.u8((ignoreValue ? 1 : 0) | (ignoreLease ? 2 : 0))
        case let .delete(key, prevKV):
            w.u8(CommandTag.delete.rawValue)
            encodeDelete(from: key, to: nil, prevKV, into: &w)
        case let .deleteRange(from, to, prevKV):
            w.u8(CommandTag.deleteRange.rawValue)
            encodeDelete(from: from, to: to, prevKV, into: &w)
        case let .txn(txn):
            w.u8(CommandTag.txn.rawValue)
            txn.encode(into: &w)
        case let .leaseGrant(id, ttl):
            w.u8(CommandTag.leaseGrant.rawValue)
            w.u64(id.rawValue)
            w.i64(ttl)
        case let .leaseRevoke(id):
            w.u8(CommandTag.leaseRevoke.rawValue)
            w.u64(id.rawValue)
        case let .leaseExpire(ids):
            w.u8(CommandTag.leaseExpire.rawValue)
            w.count(ids.count)
            for id in ids { w.u64(id.rawValue) }
        case let .compact(revision):
            w.u8(CommandTag.compact.rawValue)
            w.i64(revision)
        case let .mesh(command, ifVersion):
            w.u8(CommandTag.mesh.rawValue)
            w.bool(ifVersion != nil)
            if let ifVersion { w.i64(ifVersion) }
            command.encode(into: &w)
        case let .alarm(kind, raised):
            w.u8(CommandTag.alarm.rawValue)
            w.u8(kind.rawValue)
            w.bool(raised)
        case let .clusterVersion(version):
            w.u8(CommandTag.clusterVersion.rawValue)
            w.u16(version)
        case let .auth(command):
            w.u8(CommandTag.auth.rawValue)
            command.encode(into: &w)
        }
    }

    static func decode(from r: inout ByteReader) throws(DecodeError) -> Command {
        let raw = try r.u8("command tag")
        guard let tag = CommandTag(rawValue: raw) else { throw .unknownValue(what: "command tag", value: UInt64(raw)) }
        switch tag {
        case .put:
            let (k, v, l, p) = try decodePut(from: &r)
            return .put(key: k, value: v, lease: l, prevKV: p)
        case .putIgnoring:
            let (k, v, l, p) = try decodePut(from: &r)
            let flags = try r.u8("put ignore flags")
            guard flags & ~3 == 0 else { throw .unknownValue(what: "put ignore flags", value: UInt64(flags)) }
            return .putIgnoring(key: k, value: v, lease: l, prevKV: p, ignoreValue: flags & 1 != 0, ignoreLease: flags & 2 != 0)
        case .delete:
            return .delete(key: try r.lengthPrefixed("delete key", limit: KVLimits.decodeBytesMax), prevKV: try r.bool("delete prevKV"))
        case .deleteRange:
            let from = try r.lengthPrefixed("delete range from", limit: KVLimits.decodeBytesMax)
            let to = try r.lengthPrefixed("delete range to", limit: KVLimits.decodeBytesMax)
            return .deleteRange(from: from, to: to, prevKV: try r.bool("delete range prevKV"))
        case .txn:
            return .txn(try Txn.decode(from: &r))
        case .leaseGrant:
            return .leaseGrant(id: LeaseID(try r.u64("lease id")), ttlMillis: try r.i64("lease ttl"))
        case .leaseRevoke:
            return .leaseRevoke(id: LeaseID(try r.u64("lease id")))
        case .leaseExpire:
            let n = try r.count("expired lease count", limit: KVLimits.decodeCountMax, minBytesEach: 8)
            var ids: [LeaseID] = []
            ids.reserveCapacity(n)
            for _ in 0..<n { ids.append(LeaseID(try r.u64("lease id"))) }
            return .leaseExpire(ids: ids)
        case .compact:
            return .compact(revision: try r.i64("compact revision"))
        case .mesh:
            let ifVersion = try r.bool("mesh has version") ? try r.i64("mesh version") : nil
            return .mesh(try MeshCommand.decode(from: &r), ifVersion: ifVersion)
        case .alarm:
            let raw = try r.u8("alarm kind")
            guard let kind = AlarmKind(rawValue: raw) else { throw .unknownValue(what: "alarm kind", value: UInt64(raw)) }
            return .alarm(kind, raised: try r.bool("alarm raised"))
        case .clusterVersion:
            return .clusterVersion(try r.u16("cluster version"))
        case .auth:
            return .auth(try AuthCommand.decode(from: &r))
        }
    }
}

func encodePut(_ key: [UInt8], _ value: [UInt8], _ lease: LeaseID?, _ prevKV: Bool, into w: inout ByteWriter) {
    w.lengthPrefixed(key)
    w.lengthPrefixed(value)
    w.u64(lease?.rawValue ?? 0)
    w.bool(prevKV)
}

/// The body of a delete (`to` nil) or delete-range, shared by commands and transaction ops.
func encodeDelete(from key: [UInt8], to end: [UInt8]?, _ prevKV: Bool, into w: inout ByteWriter) {
    w.lengthPrefixed(key)
    if let end { w.lengthPrefixed(end) }
    w.bool(prevKV)
}

func decodePut(from r: inout ByteReader) throws(DecodeError) -> ([UInt8], [UInt8], LeaseID?, Bool) {
    let key = try r.lengthPrefixed("put key", limit: KVLimits.decodeBytesMax)
    let value = try r.lengthPrefixed("put value", limit: KVLimits.decodeBytesMax)
    let lease = try r.u64("put lease")
    return (key, value, lease == 0 ? nil : LeaseID(lease), try r.bool("put prevKV"))
}

extension Txn {
    func encode(into w: inout ByteWriter) {
        w.count(compares.count)
        for c in compares { c.encode(into: &w) }
        for branch in [success, failure] {
            w.count(branch.count)
            for op in branch { op.encode(into: &w) }
        }
    }

    static func decode(from r: inout ByteReader) throws(DecodeError) -> Txn {
        let nc = try r.count("txn compare count", limit: KVLimits.decodeCountMax, minBytesEach: 6)
        var compares: [Compare] = []
        for _ in 0..<nc { compares.append(try Compare.decode(from: &r)) }
        var branches: [[TxnOp]] = []
        for _ in 0..<2 {
            let n = try r.count("txn op count", limit: KVLimits.decodeCountMax, minBytesEach: 5)
            var ops: [TxnOp] = []
            for _ in 0..<n { ops.append(try TxnOp.decode(from: &r)) }
            branches.append(ops)
        }
        return Txn(compares: compares, success: branches[0], failure: branches[1])
    }
}

extension Compare {
    func encode(into w: inout ByteWriter) {
        w.lengthPrefixed(key)
        w.u8(op.rawValue)
        switch target {
        case let .value(v): w.u8(1); w.lengthPrefixed(v)
        case let .version(v): w.u8(2); w.i64(v)
        case let .createRevision(v): w.u8(3); w.i64(v)
        case let .modRevision(v): w.u8(4); w.i64(v)
        case let .exists(v): w.u8(5); w.bool(v)
        case let .lease(id): w.u8(6); w.u64(id?.rawValue ?? 0)
        }
    }

    static func decode(from r: inout ByteReader) throws(DecodeError) -> Compare {
        let key = try r.lengthPrefixed("compare key", limit: KVLimits.decodeBytesMax)
        let rawOp = try r.u8("compare op")
        guard let op = CompareOp(rawValue: rawOp) else { throw .unknownValue(what: "compare op", value: UInt64(rawOp)) }
        let target: CompareTarget
        switch try r.u8("compare target") {
        case 1: target = .value(try r.lengthPrefixed("compare value", limit: KVLimits.decodeBytesMax))
        case 2: target = .version(try r.i64("compare version"))
        case 3: target = .createRevision(try r.i64("compare create revision"))
        case 4: target = .modRevision(try r.i64("compare mod revision"))
        case 5: target = .exists(try r.bool("compare exists"))
        case 6:
            let id = try r.u64("compare lease")
            target = .lease(id == 0 ? nil : LeaseID(id))
        case let v: throw .unknownValue(what: "compare target", value: UInt64(v))
        }
        return Compare(key: key, op, target)
    }
}

extension TxnOp {
    func encode(into w: inout ByteWriter) {
        switch self {
        case let .put(key, value, lease, prevKV):
            w.u8(TxnOpTag.put.rawValue)
            encodePut(key, value, lease, prevKV, into: &w)
        case let .delete(key, prevKV):
            w.u8(TxnOpTag.delete.rawValue)
            encodeDelete(from: key, to: nil, prevKV, into: &w)
        case let .deleteRange(from, to, prevKV):
            w.u8(TxnOpTag.deleteRange.rawValue)
            encodeDelete(from: from, to: to, prevKV, into: &w)
        case let .range(request):
            w.u8(TxnOpTag.range.rawValue)
            request.encode(into: &w)
        }
    }

    static func decode(from r: inout ByteReader) throws(DecodeError) -> TxnOp {
        let raw = try r.u8("txn op tag")
        guard let tag = TxnOpTag(rawValue: raw) else { throw .unknownValue(what: "txn op tag", value: UInt64(raw)) }
        switch tag {
        case .put:
            let (k, v, l, p) = try decodePut(from: &r)
            return .put(key: k, value: v, lease: l, prevKV: p)
        case .delete:
            return .delete(key: try r.lengthPrefixed("delete key", limit: KVLimits.decodeBytesMax), prevKV: try r.bool("delete prevKV"))
        case .deleteRange:
            let from = try r.lengthPrefixed("delete range from", limit: KVLimits.decodeBytesMax)
            let to = try r.lengthPrefixed("delete range to", limit: KVLimits.decodeBytesMax)
            return .deleteRange(from: from, to: to, prevKV: try r.bool("delete range prevKV"))
        case .range:
            return .range(try RangeRequest.decode(from: &r))
        }
    }
}

extension RangeRequest {
    /// The first byte of the standalone encoding; bump on any incompatible change.
    public static let encodingVersion: UInt8 = 1

    /// Appends the unversioned body (for embedding in a larger message). Ordering and filters
    /// (flag 8) are written only when set, so a plain range encodes as before they existed.
    public func encode(into w: inout ByteWriter) {
        w.lengthPrefixed(key)
        w.lengthPrefixed(rangeEnd)
        w.u64(UInt64(max(0, limit)))
        let ordering = hasOrderOptions
        w.u8((keysOnly ? 1 : 0) | (countOnly ? 2 : 0) | (revision != nil ? 4 : 0) | (ordering ? 8 : 0))
        if let rev = revision { w.i64(rev) }
        if ordering {
            w.u8(sortOrder.rawValue)
            w.u8(sortTarget.rawValue)
            for bound in [minModRevision, maxModRevision, minCreateRevision, maxCreateRevision] { w.i64(bound) }
        }
    }

    /// Reads what `encode(into:)` wrote, checking every length before allocating.
    public static func decode(from r: inout ByteReader) throws(DecodeError) -> RangeRequest {
        let key = try r.lengthPrefixed("range key", limit: KVLimits.decodeBytesMax)
        let end = try r.lengthPrefixed("range end", limit: KVLimits.decodeBytesMax)
        let limit = try r.u64("range limit")
        let flags = try r.u8("range flags")
        guard flags & ~15 == 0 else { throw .unknownValue(what: "range flags", value: UInt64(flags)) }
        let revision = flags & 4 != 0 ? try r.i64("range revision") : nil
        var request = RangeRequest(key: key, rangeEnd: end, limit: Int(min(limit, UInt64(KVLimits.rangeLimitMax))),
                                   keysOnly: flags & 1 != 0, countOnly: flags & 2 != 0, revision: revision)
        if flags & 8 != 0 {
            let order = try r.u8("range sort order")
            guard let o = RangeSortOrder(rawValue: order) else { throw .unknownValue(what: "range sort order", value: UInt64(order)) }
            let target = try r.u8("range sort target")
            guard let t = RangeSortTarget(rawValue: target) else { throw .unknownValue(what: "range sort target", value: UInt64(target)) }
            (request.sortOrder, request.sortTarget) = (o, t)
            request.minModRevision = try r.i64("range min mod revision")
            request.maxModRevision = try r.i64("range max mod revision")
            request.minCreateRevision = try r.i64("range min create revision")
            request.maxCreateRevision = try r.i64("range max create revision")
            // Canonical: an extension of defaults would slip past the cluster-version gates (they
            // look at the decoded request) while older builds refuse its flag.
            guard request.hasOrderOptions else { throw .unknownValue(what: "range order extension of defaults", value: 8) }
        }
        return request
    }

    /// A versioned standalone encoding (for the client protocol's serializable reads).
    public func encode() -> [UInt8] {
        var w = ByteWriter()
        w.u8(Self.encodingVersion)
        encode(into: &w)
        return w.bytes
    }

    /// Decodes `encode()`'s output; bad input is a typed `DecodeError`, never a trap.
    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> RangeRequest {
        var r = ByteReader(bytes)
        try r.version("range request version", expected: encodingVersion)
        let req = try decode(from: &r)
        try r.expectEnd()
        return req
    }
}
