import Foundation
import SynodClient
import SynodCore
import SynodStateMachine
import SynodWire

/// One gateway call, decoded and checked before anything reaches the cluster. Decoding is pure
/// (no client, no clock), so every route's decoder can be fuzzed on its own (`GatewayFuzzTests`).
enum GatewayCall {
    case range(RangeRequest, Consistency)
    case put(key: [UInt8], value: [UInt8], lease: LeaseID?, prevKV: Bool, ignoreValue: Bool = false, ignoreLease: Bool = false)
    /// `end` nil: the key alone; empty: every key from `key` on.
    case delete(key: [UInt8], end: [UInt8]?, prevKV: Bool)
    case txn(Txn)
    case compact(revision: Int64)
    /// `id` nil: the gateway draws one.
    case leaseGrant(id: LeaseID?, ttlSeconds: Int64)
    case leaseRevoke(LeaseID)
    case leaseKeepAlive(LeaseID)
    case leaseTimeToLive(LeaseID, keys: Bool)
    case leaseList
    case status
    case memberList
    /// `id` nil: the gateway picks the lowest id above every member's.
    case memberAdd(id: NodeID?, peerAddress: String, learner: Bool)
    case memberRemove(NodeID)
    case memberUpdate(NodeID, peerAddress: String)
    case memberPromote(NodeID)
    case moveLeader(to: NodeID)
    case alarmList
    case alarmDisarm(AlarmKind)
    case defragment
    /// etcd's v3lock and v3election, over the caller's lease (`SynodClient.lock(_:lease:)`).
    case lock(name: String, lease: LeaseID)
    case unlock(key: [UInt8])
    case campaign(name: String, lease: LeaseID, value: [UInt8])
    case proclaim(HeldLock, value: [UInt8])
    case electionLeader(name: String)
    case resign(HeldLock)
    case watch(GatewayWatchPlan)
    /// `/v3/auth/...` (`Gateway+Auth.swift`).
    case auth(GatewayAuthCall)
}

/// What a `/v3/watch` request asks for (etcd's `create_request`).
struct GatewayWatchPlan: Sendable {
    var key: [UInt8]
    var rangeEnd: [UInt8]
    var startRevision: Int64
    var prevKV: Bool
    var progressNotify: Bool
    /// etcd's watch filters: NOPUT and NODELETE leave those events out (a message with nothing
    /// left is not sent, as etcd's watcher does).
    var dropPuts = false
    var dropDeletes = false

    /// Whether `e` reaches the HTTP client.
    func passes(_ e: WatchEvent) -> Bool { e.type == .put ? !dropPuts : !dropDeletes }
}

extension GatewayCall {
    /// Most seconds a lease TTL may ask for (its milliseconds must fit an Int64 many times over).
    static let ttlSecondsMax: Int64 = 1 << 40

    /// Decodes the body of a `POST` to `path`; an unknown route is `GatewayError` 404.
    static func decode(path: String, body: [UInt8]) throws(GatewayError) -> GatewayCall {
        let f = try JSONFields(body: body)
        switch path {
        case "/v3/kv/range": return .range(try rangeRequest(f), try f.bool("serializable") ? .serializable : .linearizable)
        case "/v3/kv/put":
            try f.check(known: ["key", "value", "lease", "prev_kv", "ignore_value", "ignore_lease"])
            return .put(key: try key(f), value: try f.bytes("value"), lease: lease(try f.int64("lease")), prevKV: try f.bool("prev_kv"),
                        ignoreValue: try f.bool("ignore_value"), ignoreLease: try f.bool("ignore_lease"))
        case "/v3/kv/deleterange":
            let d = try deleteOp(f)
            return .delete(key: d.key, end: d.end, prevKV: d.prevKV)
        case "/v3/kv/txn": return .txn(try txn(f))
        case "/v3/kv/compaction":
            try f.check(known: ["revision", "physical"])
            return .compact(revision: try f.int64("revision"))
        case "/v3/lease/grant":
            try f.check(known: ["TTL", "ID"])
            let ttl = try f.int64("TTL"), id = try f.int64("ID")
            guard ttl > 0, ttl <= ttlSecondsMax else { throw .invalid("TTL must be 1 to \(ttlSecondsMax) seconds") }
            guard id >= 0 else { throw .invalid("ID must not be negative") }
            return .leaseGrant(id: lease(id), ttlSeconds: ttl)
        case "/v3/lease/revoke", "/v3/kv/lease/revoke":
            try f.check(known: ["ID"])
            return .leaseRevoke(try leaseID(f))
        case "/v3/lease/keepalive":
            try f.check(known: ["ID"])
            return .leaseKeepAlive(try leaseID(f))
        case "/v3/lease/timetolive", "/v3/kv/lease/timetolive":
            try f.check(known: ["ID", "keys"])
            return .leaseTimeToLive(try leaseID(f), keys: try f.bool("keys"))
        case "/v3/lease/leases", "/v3/kv/lease/leases":
            try f.check(known: [])
            return .leaseList
        case "/v3/maintenance/status":
            try f.check(known: [])
            return .status
        case "/v3/cluster/member/list":
            try f.check(known: ["linearizable"])
            return .memberList
        case "/v3/cluster/member/add":
            try f.check(known: ["peerURLs", "isLearner", "ID"])
            let id = try f.int64("ID")
            guard id >= 0 else { throw .invalid("ID must not be negative") }
            return .memberAdd(id: id == 0 ? nil : NodeID(UInt64(id)), peerAddress: try peerAddress(f), learner: try f.bool("isLearner"))
        case "/v3/cluster/member/remove":
            try f.check(known: ["ID"])
            return .memberRemove(try memberID(f, "ID"))
        case "/v3/cluster/member/update":
            try f.check(known: ["ID", "peerURLs"])
            return .memberUpdate(try memberID(f, "ID"), peerAddress: try peerAddress(f))
        case "/v3/cluster/member/promote":
            try f.check(known: ["ID"])
            return .memberPromote(try memberID(f, "ID"))
        case "/v3/maintenance/transfer-leadership":
            try f.check(known: ["targetID"])
            return .moveLeader(to: try memberID(f, "targetID"))
        case "/v3/maintenance/alarm":
            try f.check(known: ["action", "memberID", "alarm"])
            let action = try enumField(f, "action", ["GET", "ACTIVATE", "DEACTIVATE"])
            guard action != 1 else { throw .unsupported("alarms are raised by the leader (NOSPACE) and the corruption check (CORRUPT) only") }
            if action == 0 { return .alarmList }
            switch try enumField(f, "alarm", ["NONE", "NOSPACE", "CORRUPT"]) {
            case 1: return .alarmDisarm(.noSpace)
            case 2: return .alarmDisarm(.corrupt)
            default: throw .invalid("DEACTIVATE needs alarm NOSPACE or CORRUPT")
            }
        case "/v3/maintenance/defragment":
            try f.check(known: [])
            return .defragment
        case "/v3/lock/lock":
            try f.check(known: ["name", "lease"])
            return .lock(name: try recipeName(f), lease: try leaseField(f, "lease"))
        case "/v3/lock/unlock":
            try f.check(known: ["key"])
            let key = try key(f)
            guard key.starts(with: Array("__synod/lock/".utf8)) else { throw .invalid("not a lock's key (they start with __synod/lock/)") }
            return .unlock(key: key)
        case "/v3/election/campaign":
            try f.check(known: ["name", "lease", "value"])
            return .campaign(name: try recipeName(f), lease: try leaseField(f, "lease"), value: try f.bytes("value"))
        case "/v3/election/proclaim":
            try f.check(known: ["leader", "value"])
            return .proclaim(try leaderKey(f), value: try f.bytes("value"))
        case "/v3/election/leader":
            try f.check(known: ["name"])
            return .electionLeader(name: try recipeName(f))
        case "/v3/election/resign":
            try f.check(known: ["leader"])
            return .resign(try leaderKey(f))
        case "/v3/election/observe": throw .unsupported("observe is not served; watch the election's prefix (__synod/election/NAME/) instead")
        case "/v3/watch": return .watch(try watchPlan(f))
        case _ where path.hasPrefix("/v3/auth/"): return .auth(try GatewayAuthCall.decode(path: path, f))
        default: throw GatewayError(status: .notFound, code: 12, message: "no route \(path)")
        }
    }

    static func key(_ f: JSONFields, _ name: String = "key") throws(GatewayError) -> [UInt8] {
        let key = try f.bytes(name)
        guard !key.isEmpty else { throw .invalid("key is not provided") }
        return key
    }

    static func lease(_ raw: Int64) -> LeaseID? { raw == 0 ? nil : LeaseID(UInt64(bitPattern: raw)) }

    static func leaseID(_ f: JSONFields) throws(GatewayError) -> LeaseID {
        let raw = try f.int64("ID")
        guard raw != 0 else { throw .invalid("ID is not provided") }
        return LeaseID(UInt64(bitPattern: raw))
    }

    /// A lock's or an election's name: UTF-8, 1-256 bytes, no "/" (names share one key prefix
    /// per kind, and "a" would otherwise queue with "a/b").
    static func recipeName(_ f: JSONFields) throws(GatewayError) -> String {
        let bytes = try f.bytes("name")
        guard (1...256).contains(bytes.count), !bytes.contains(UInt8(ascii: "/")), let name = String(validating: bytes, as: UTF8.self) else {
            throw .invalid("name must be 1 to 256 bytes of UTF-8 without /")
        }
        return name
    }

    static func leaseField(_ f: JSONFields, _ name: String) throws(GatewayError) -> LeaseID {
        let raw = try f.int64(name)
        guard raw != 0 else { throw .invalid("\(name) is not provided: a lock or a campaign lives as long as the caller's lease") }
        return LeaseID(UInt64(bitPattern: raw))
    }

    /// etcd's LeaderKey (`name`, `key`, `rev`, `lease`), as campaign answered it.
    static func leaderKey(_ f: JSONFields) throws(GatewayError) -> HeldLock {
        guard let l = try f.fields("leader") else { throw .invalid("leader is not provided") }
        try l.check(known: ["name", "key", "rev", "lease"])
        let name = try recipeName(l), key = try key(l), rev = try l.int64("rev")
        guard key.starts(with: Array("__synod/election/\(name)/".utf8)) else { throw .invalid("leader.key is not a key of election \(name)") }
        guard rev > 0 else { throw .invalid("leader.rev is not provided") }
        return HeldLock(name: name, key: key, lease: try leaseField(l, "lease"), fencingToken: rev)
    }

    static func memberID(_ f: JSONFields, _ name: String) throws(GatewayError) -> NodeID {
        let raw = try f.int64(name)
        guard raw > 0 else { throw .invalid("\(name) is not provided") }
        return NodeID(UInt64(raw))
    }

    /// The one peer URL of a member (`http://host:port`, or `host:port`) as Synod's host:port.
    static func peerAddress(_ f: JSONFields) throws(GatewayError) -> String {
        guard let urls = f.object["peerURLs"] as? [Any], urls.count == 1, var url = urls[0] as? String else {
            throw .invalid("peerURLs must hold exactly one URL")
        }
        for scheme in ["http://", "https://"] where url.hasPrefix(scheme) { url.removeFirst(scheme.count) }
        if url.hasSuffix("/") { url.removeLast() }
        guard !url.isEmpty, url.utf8.count <= 255, !url.contains("/"), url.contains(":") else { throw .invalid("peerURLs: \(url) is not host:port") }
        return url
    }

    static let rangeFields: Set<String> = ["key", "range_end", "limit", "revision", "keys_only", "count_only", "serializable", "sort_order", "sort_target",
                                           "min_mod_revision", "max_mod_revision", "min_create_revision", "max_create_revision"]

    static func rangeRequest(_ f: JSONFields, inTxn: Bool = false) throws(GatewayError) -> RangeRequest {
        try f.check(known: rangeFields)
        let key = try key(f)
        let limit = try f.int64("limit"), revision = try f.int64("revision")
        guard limit >= 0 else { throw .invalid("limit must not be negative") }
        guard revision >= 0 else { throw .invalid("revision must not be negative") }
        if inTxn && revision != 0 { throw .unsupported("a range inside a transaction reads the current revision") }
        var r = RangeRequest(key: key, rangeEnd: try f.bytes("range_end"), limit: Int(min(limit, Int64(Int32.max))),
                             keysOnly: try f.bool("keys_only"), countOnly: try f.bool("count_only"), revision: revision == 0 ? nil : revision)
        // etcd's enums, by name or number (RangeSortOrder and RangeSortTarget keep etcd's numbers).
        r.sortOrder = RangeSortOrder(rawValue: UInt8(try enumField(f, "sort_order", ["NONE", "ASCEND", "DESCEND"]))) ?? .none
        r.sortTarget = RangeSortTarget(rawValue: UInt8(try enumField(f, "sort_target", ["KEY", "VERSION", "CREATE", "MOD", "VALUE"]))) ?? .key
        (r.minModRevision, r.maxModRevision) = (try f.int64("min_mod_revision"), try f.int64("max_mod_revision"))
        (r.minCreateRevision, r.maxCreateRevision) = (try f.int64("min_create_revision"), try f.int64("max_create_revision"))
        for bound in [r.minModRevision, r.maxModRevision, r.minCreateRevision, r.maxCreateRevision] where bound < 0 {
            throw .invalid("revision bounds must not be negative")
        }
        return r
    }

    /// etcd's delete-range request: an empty `range_end` is the key alone, "\0" every key from
    /// `key` on (Synod's empty end).
    static func deleteOp(_ f: JSONFields) throws(GatewayError) -> (key: [UInt8], end: [UInt8]?, prevKV: Bool) {
        try f.check(known: ["key", "range_end", "prev_kv"])
        let key = try key(f)
        let end = try f.bytes("range_end")
        return (key, end.isEmpty ? nil : (end == [0] ? [] : end), try f.bool("prev_kv"))
    }

    /// An enum field as grpc-gateway accepts it: its name, or its number.
    static func enumField(_ f: JSONFields, _ name: String, _ names: [String]) throws(GatewayError) -> Int {
        guard let raw = f.object[name], !(raw is NSNull) else { return 0 }
        if let s = raw as? String {
            if let i = names.firstIndex(of: s) { return i }
            if let i = Int(s), names.indices.contains(i) { return i }
        } else if let n = raw as? NSNumber, !JSONFields.isBool(n), n.doubleValue >= 0, n.doubleValue < Double(names.count),
                  n.doubleValue == n.doubleValue.rounded() {
            return n.intValue
        }
        throw .invalid("\(name) must be one of \(names.joined(separator: ", "))")
    }

    /// etcd's Compare: target VERSION (0), CREATE, MOD, VALUE, LEASE; result EQUAL (0), GREATER,
    /// LESS, NOT_EQUAL.
    static func compare(_ f: JSONFields) throws(GatewayError) -> Compare {
        try f.check(known: ["key", "target", "result", "version", "create_revision", "mod_revision", "value", "lease"], unsupported: ["range_end"])
        let key = try key(f)
        let target: CompareTarget
        switch try enumField(f, "target", ["VERSION", "CREATE", "MOD", "VALUE", "LEASE"]) {
        case 0: target = .version(try f.int64("version"))
        case 1: target = .createRevision(try f.int64("create_revision"))
        case 2: target = .modRevision(try f.int64("mod_revision"))
        case 3: target = .value(try f.bytes("value"))
        default: target = .lease(lease(try f.int64("lease")))
        }
        let op: CompareOp
        switch try enumField(f, "result", ["EQUAL", "GREATER", "LESS", "NOT_EQUAL"]) {
        case 0: op = .equal
        case 1: op = .greater
        case 2: op = .less
        default: op = .notEqual
        }
        return Compare(key: key, op, target)
    }

    /// One RequestOp: exactly one of `request_put`, `request_range`, `request_delete_range`.
    static func txnOp(_ f: JSONFields) throws(GatewayError) -> TxnOp {
        try f.check(known: ["request_put", "request_range", "request_delete_range"], unsupported: ["request_txn"])
        let present = ["request_put", "request_range", "request_delete_range"].filter { f.object[$0] != nil }
        guard present.count == 1 else { throw .invalid("a transaction operation holds exactly one request, not \(present.count)") }
        if let p = try f.fields("request_put") {
            try p.check(known: ["key", "value", "lease", "prev_kv"], unsupported: ["ignore_value", "ignore_lease"])
            return .put(key: try key(p), value: try p.bytes("value"), lease: lease(try p.int64("lease")), prevKV: try p.bool("prev_kv"))
        }
        if let r = try f.fields("request_range") { return .range(try rangeRequest(r, inTxn: true)) }
        guard let d = try f.fields("request_delete_range") else { throw .invalid("a transaction operation holds exactly one request") }
        let op = try deleteOp(d)
        guard let end = op.end else { return .delete(key: op.key, prevKV: op.prevKV) }
        return .deleteRange(from: op.key, to: end, prevKV: op.prevKV)
    }

    static func txn(_ f: JSONFields) throws(GatewayError) -> Txn {
        try f.check(known: ["compare", "success", "failure"])
        var compares: [Compare] = [], success: [TxnOp] = [], failure: [TxnOp] = []
        for c in try f.list("compare") { compares.append(try compare(c)) }
        for o in try f.list("success") { success.append(try txnOp(o)) }
        for o in try f.list("failure") { failure.append(try txnOp(o)) }
        return Txn(compares: compares, success: success, failure: failure)
    }

    static func watchPlan(_ f: JSONFields) throws(GatewayError) -> GatewayWatchPlan {
        try f.check(known: ["create_request"], unsupported: ["cancel_request", "progress_request"])
        guard let c = try f.fields("create_request") else { throw .invalid("a watch needs create_request") }
        try c.check(known: ["key", "range_end", "start_revision", "prev_kv", "progress_notify", "filters"], unsupported: ["fragment", "watch_id"])
        let key = try key(c)
        let start = try c.int64("start_revision")
        guard start >= 0 else { throw .invalid("start_revision must not be negative") }
        var plan = GatewayWatchPlan(key: key, rangeEnd: try c.bytes("range_end"), startRevision: start,
                                    prevKV: try c.bool("prev_kv"), progressNotify: try c.bool("progress_notify"))
        if let raw = c.object["filters"], !(raw is NSNull) {
            guard let items = raw as? [Any], items.count <= 8 else { throw .invalid("filters must be an array of at most 8 of NOPUT, NODELETE") }
            for item in items {
                guard !(item is NSNull) else { throw .invalid("filters must hold NOPUT or NODELETE, not null") }
                switch try enumField(JSONFields(["filter": item]), "filter", ["NOPUT", "NODELETE"]) {
                case 0: plan.dropPuts = true
                default: plan.dropDeletes = true
                }
            }
        }
        return plan
    }
}
