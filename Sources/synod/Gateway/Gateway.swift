import Foundation
import NIOHTTP1
import SynodClient
import SynodCore
import SynodStateMachine
import SynodTransport
import SynodWire

/// etcd's JSON gateway (`/v3/kv/range`, `/v3/kv/put`, … as grpc-gateway serves them on etcd's
/// client port), translated into calls of a `SynodClient` on the node's own client port: reads,
/// writes (exactly-once, through the client's sessions), redirects to the leader and retries
/// behave as they do for any Synod client. Requests and answers follow etcd's protobuf JSON
/// mapping — bytes in base64, 64-bit integers as decimal strings, zero values left out — so
/// `curl` scripts and HTTP clients written against etcd's gateway work unchanged for the calls
/// below. An etcd option Synod does not have (sorting, revision filters, nested transactions,
/// lease compares) is refused with 501, never ignored.
final class Gateway: Sendable {
    let client: SynodClient
    /// The node's own client address (for `maintenance/status`).
    let endpoint: HostPort
    let clusterID: UInt64
    let memberID: UInt64
    /// The node's term as of its last metrics publication (at most half a second old).
    let term: @Sendable () -> UInt64
    let healthy: @Sendable () -> Bool
    let version: @Sendable () -> String

    init(client: SynodClient, endpoint: HostPort, clusterID: UInt64, memberID: UInt64, term: @escaping @Sendable () -> UInt64,
         healthy: @escaping @Sendable () -> Bool, version: @escaping @Sendable () -> String) {
        self.client = client
        self.endpoint = endpoint
        self.clusterID = clusterID
        self.memberID = memberID
        self.term = term
        self.healthy = healthy
        self.version = version
    }

    /// A whole answer: status and JSON body.
    struct Reply: Sendable {
        var status: HTTPResponseStatus
        var body: [UInt8]
    }

    /// The routes that answer once (everything but `/v3/watch`).
    func handle(method: HTTPMethod, path: String, body: [UInt8]) async -> Reply {
        switch (method, path) {
        case (.GET, "/health"):
            let ok = healthy()
            return Reply(status: ok ? .ok : .serviceUnavailable, body: Array((ok ? #"{"health":"true"}"# : #"{"health":"false","reason":"no leader"}"#).utf8))
        case (.GET, "/version"):
            return Reply(status: .ok, body: Array(version().utf8))
        default:
            break
        }
        guard method == .POST else {
            return reply(GatewayError(status: .methodNotAllowed, code: 12, message: "use POST for \(path)"))
        }
        do {
            let f = try JSONFields(body: body)
            let answer: [String: Any]
            switch path {
            case "/v3/kv/range": answer = try await range(f)
            case "/v3/kv/put": answer = try await put(f)
            case "/v3/kv/deleterange": answer = try await deleteRange(f)
            case "/v3/kv/txn": answer = try await txn(f)
            case "/v3/kv/compaction": answer = try await compaction(f)
            case "/v3/lease/grant": answer = try await leaseGrant(f)
            case "/v3/lease/revoke", "/v3/kv/lease/revoke": answer = try await leaseRevoke(f)
            case "/v3/lease/keepalive": answer = try await leaseKeepAlive(f)
            case "/v3/lease/timetolive", "/v3/kv/lease/timetolive": answer = try await leaseTimeToLive(f)
            case "/v3/lease/leases", "/v3/kv/lease/leases": answer = try await leaseList(f)
            case "/v3/maintenance/status": answer = try await status(f)
            case "/v3/cluster/member/list": answer = try await memberList(f)
            default: throw GatewayError(status: .notFound, code: 12, message: "no route \(path)")
            }
            return Reply(status: .ok, body: GatewayJSON.encode(answer))
        } catch {
            return reply(Self.gatewayError(error))
        }
    }

    func reply(_ e: GatewayError) -> Reply { Reply(status: e.status, body: GatewayJSON.encode(e.body)) }

    /// etcd's response header.
    func header(_ revision: Int64) -> [String: Any] {
        var h: [String: Any] = ["cluster_id": String(clusterID), "member_id": String(memberID)]
        if revision != 0 { h["revision"] = GatewayJSON.int(revision) }
        let t = term()
        if t != 0 { h["raft_term"] = String(t) }
        return h
    }

    /// How a client failure reaches an HTTP client: etcd's gRPC codes and the HTTP statuses its
    /// gateway maps them to.
    static func gatewayError(_ error: any Error) -> GatewayError {
        if let e = error as? GatewayError { return e }
        guard let e = error as? ClientError else { return GatewayError(status: .internalServerError, code: 13, message: "\(error)") }
        switch e {
        case let .kv(kv):
            switch kv {
            case .compacted, .futureRevision: return GatewayError(status: .badRequest, code: 11, message: kv.description)
            case .leaseNotFound: return .notFound(kv.description)
            case .noSpace: return GatewayError(status: .tooManyRequests, code: 8, message: kv.description)
            case .corruptCluster: return GatewayError(status: .internalServerError, code: 13, message: kv.description)
            default: return .invalid(kv.description)
            }
        case .noLeader, .unreachable, .connectionLost, .unknownOutcome: return .unavailable(e.description)
        case .rejected, .badResponse: return GatewayError(status: .badRequest, code: 3, message: e.description)
        }
    }

    // MARK: KV

    static let rangeFields: Set<String> = ["key", "range_end", "limit", "revision", "keys_only", "count_only", "serializable"]
    static let rangeUnsupported: Set<String> = ["sort_order", "sort_target", "min_mod_revision", "max_mod_revision", "min_create_revision", "max_create_revision"]

    func rangeRequest(_ f: JSONFields, inTxn: Bool = false) throws(GatewayError) -> RangeRequest {
        try f.check(known: Self.rangeFields, unsupported: Self.rangeUnsupported)
        let key = try f.bytes("key")
        guard !key.isEmpty else { throw .invalid("key is not provided") }
        let limit = try f.int64("limit"), revision = try f.int64("revision")
        guard limit >= 0 else { throw .invalid("limit must not be negative") }
        guard revision >= 0 else { throw .invalid("revision must not be negative") }
        if inTxn && revision != 0 { throw .unsupported("a range inside a transaction reads the current revision") }
        return RangeRequest(key: key, rangeEnd: try f.bytes("range_end"), limit: Int(min(limit, Int64(Int32.max))),
                            keysOnly: try f.bool("keys_only"), countOnly: try f.bool("count_only"), revision: revision == 0 ? nil : revision)
    }

    func rangeBody(_ r: RangeResult) -> [String: Any] {
        var o: [String: Any] = ["header": header(r.revision)]
        if !r.kvs.isEmpty { o["kvs"] = r.kvs.map(GatewayJSON.kv) }
        if r.more { o["more"] = true }
        if r.count != 0 { o["count"] = GatewayJSON.int(r.count) }
        return o
    }

    func range(_ f: JSONFields) async throws -> [String: Any] {
        let request = try rangeRequest(f)
        return rangeBody(try await client.range(request, consistency: try f.bool("serializable") ? .serializable : .linearizable))
    }

    static func lease(_ raw: Int64) -> LeaseID? { raw == 0 ? nil : LeaseID(UInt64(bitPattern: raw)) }

    func put(_ f: JSONFields) async throws -> [String: Any] {
        try f.check(known: ["key", "value", "lease", "prev_kv"], unsupported: ["ignore_value", "ignore_lease"])
        let key = try f.bytes("key")
        guard !key.isEmpty else { throw GatewayError.invalid("key is not provided") }
        let r = try await client.put(key, try f.bytes("value"), lease: Self.lease(try f.int64("lease")), prevKV: try f.bool("prev_kv"))
        return putBody(r)
    }

    func putBody(_ r: PutResult) -> [String: Any] {
        var o: [String: Any] = ["header": header(r.revision)]
        if let p = r.prevKV { o["prev_kv"] = GatewayJSON.kv(p) }
        return o
    }

    /// etcd's delete-range request as a Synod delete: an empty `range_end` is the key alone,
    /// `range_end` "\0" every key from `key` on.
    func deleteOp(_ f: JSONFields) throws(GatewayError) -> (key: [UInt8], end: [UInt8]?, prevKV: Bool) {
        try f.check(known: ["key", "range_end", "prev_kv"])
        let key = try f.bytes("key")
        guard !key.isEmpty else { throw .invalid("key is not provided") }
        let end = try f.bytes("range_end")
        return (key, end.isEmpty ? nil : (end == [0] ? [] : end), try f.bool("prev_kv"))
    }

    func deleteBody(_ r: DeleteResult) -> [String: Any] {
        var o: [String: Any] = ["header": header(r.revision)]
        if r.deleted != 0 { o["deleted"] = GatewayJSON.int(r.deleted) }
        if !r.prevKVs.isEmpty { o["prev_kvs"] = r.prevKVs.map(GatewayJSON.kv) }
        return o
    }

    func deleteRange(_ f: JSONFields) async throws -> [String: Any] {
        let d = try deleteOp(f)
        if let end = d.end { return deleteBody(try await client.deleteRange(from: d.key, to: end, prevKV: d.prevKV)) }
        return deleteBody(try await client.delete(d.key, prevKV: d.prevKV))
    }

    func compaction(_ f: JSONFields) async throws -> [String: Any] {
        try f.check(known: ["revision", "physical"])
        let r = try await client.compact(revision: try f.int64("revision"))
        return ["header": header(r.revision)]
    }
}
