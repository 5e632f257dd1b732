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
    /// The client of requests without an auth token.
    let anonymous: SynodClient
    /// The client of the request being served: its token's (`asTokenUser`), else `anonymous`.
    @TaskLocal static var session: SynodClient?
    var client: SynodClient { Self.session ?? anonymous }
    /// Live auth tokens (`/v3/auth/authenticate`).
    let tokens = GatewayTokens()
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
        self.anonymous = client
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

    /// The routes that answer once (everything but `/v3/watch`), as the user of `token` (the
    /// request's `Authorization` header) if it carries one.
    func handle(method: HTTPMethod, path: String, body: [UInt8], token: String? = nil) async -> Reply {
        await asTokenUser(token, { await self.route(method: method, path: path, body: body) }, refused: reply)
    }

    private func route(method: HTTPMethod, path: String, body: [UInt8]) async -> Reply {
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
            let call = try GatewayCall.decode(path: path, body: body)
            if case .watch = call { throw GatewayError.invalid("a watch streams: send it to /v3/watch") }
            return Reply(status: .ok, body: GatewayJSON.encode(try await execute(call)))
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
            case .permissionDenied: return GatewayError(status: .forbidden, code: 7, message: kv.description)
            default: return .invalid(kv.description)
            }
        case .noLeader, .unreachable, .connectionLost, .unknownOutcome: return .unavailable(e.description)
        case let .rejected(status, _) where status == .internalError:
            return GatewayError(status: .internalServerError, code: 13, message: e.description)
        case .rejected: return GatewayError(status: .badRequest, code: 3, message: e.description)
        case .badResponse: return GatewayError(status: .internalServerError, code: 13, message: e.description)
        case .authenticationFailed: return GatewayError(status: .unauthorized, code: 16, message: e.description)
        }
    }

    // MARK: calls

    /// Runs a decoded call (any but a watch) through the client and answers in etcd's JSON.
    func execute(_ call: GatewayCall) async throws -> [String: Any] {
        switch call {
        case let .range(request, consistency): return rangeBody(try await client.range(request, consistency: consistency))
        case let .put(key, value, lease, prevKV, ignoreValue, ignoreLease):
            guard ignoreValue || ignoreLease else { return putBody(try await client.put(key, value, lease: lease, prevKV: prevKV)) }
            return putBody(try await client.put(key, value, lease: lease, prevKV: prevKV, ignoreValue: ignoreValue, ignoreLease: ignoreLease))
        case let .delete(key, end, prevKV):
            if let end { return deleteBody(try await client.deleteRange(from: key, to: end, prevKV: prevKV)) }
            return deleteBody(try await client.delete(key, prevKV: prevKV))
        case let .txn(txn): return txnBody(try await client.txn(txn))
        case let .compact(revision): return ["header": header(try await client.compact(revision: revision).revision)]
        case let .leaseGrant(id, ttl):
            var rng = SystemRandomNumberGenerator()
            let lease = id ?? LeaseID(UInt64.random(in: 1...UInt64(Int64.max), using: &rng))
            guard case let .leaseGrant(r) = try await client.write(.leaseGrant(id: lease, ttlMillis: ttl * 1000)) else {
                throw GatewayError(status: .internalServerError, code: 13, message: "unexpected answer to a lease grant")
            }
            return ["header": header(r.revision), "ID": Self.leaseText(r.id), "TTL": GatewayJSON.int(Self.seconds(r.ttlMillis))]
        case let .leaseRevoke(id):
            _ = try await client.leaseRevoke(id)
            return ["header": header(0)]
        case let .leaseKeepAlive(id):
            // etcd streams keep-alives; each request here renews once, answered in the stream's shape.
            let ttl = try await client.leaseKeepAlive(id)
            return ["result": ["header": header(0), "ID": Self.leaseText(id), "TTL": GatewayJSON.int(Self.seconds(ttl))] as [String: Any]]
        case let .leaseTimeToLive(id, keys): return try await timeToLive(id, keys: keys)
        case .leaseList:
            let leases = try await client.leases()
            var o: [String: Any] = ["header": header(0)]
            if !leases.isEmpty { o["leases"] = leases.map { ["ID": Self.leaseText($0.id)] } }
            return o
        case .status: return try await status()
        case .memberList: return try await memberList()
        case let .memberAdd(id, peerAddress, learner):
            let chosen: NodeID
            if let id { chosen = id } else {
                let top = try await client.members().map(\.id.rawValue).max() ?? 0
                guard top < UInt64(Int64.max) else { throw GatewayError.invalid("no free member id above \(top): give ID") }
                chosen = NodeID(top + 1)
            }
            try await client.addMember(chosen, peerAddress: peerAddress, asLearner: learner)
            var o = try await memberList()
            o["member"] = ["ID": String(chosen.rawValue), "peerURLs": ["http://\(peerAddress)"], "isLearner": learner] as [String: Any]
            return o
        case let .memberRemove(id):
            try await client.removeMember(id)
            return try await memberList()
        case let .memberUpdate(id, peerAddress):
            try await client.updateMember(id, peerAddress: peerAddress)
            return try await memberList()
        case let .memberPromote(id):
            try await client.promoteMember(id)
            return try await memberList()
        case let .moveLeader(id):
            try await client.moveLeader(to: id)
            return ["header": header(0)]
        case .alarmList: return alarmBody(try await client.alarms())
        case let .alarmDisarm(kind): return alarmBody(try await client.disarm(kind))
        case .defragment:
            _ = try await client.defragment(endpoint)
            return ["header": header(0)]
        case let .lock(name, lease):
            let held = try await client.lock(name, lease: lease)
            return ["header": header(held.fencingToken), "key": GatewayJSON.b64(held.key)]
        case let .unlock(key):
            try await client.unlock(key: key)
            return ["header": header(0)]
        case let .campaign(name, lease, value):
            let held = try await client.campaign(name, value: value, lease: lease)
            return ["header": header(held.fencingToken), "leader": leaderKey(held)]
        case let .proclaim(held, value):
            guard try await client.proclaim(held, value: value) else {
                throw GatewayError(status: .badRequest, code: 9, message: "election: not leader")
            }
            return ["header": header(0)]
        case let .electionLeader(name):
            guard let kv = try await client.electionLeader(name) else { throw GatewayError.notFound("election: no leader") }
            return ["header": header(0), "kv": GatewayJSON.kv(kv)]
        case let .resign(held):
            try await client.resign(key: held.key, fencingToken: held.fencingToken)
            return ["header": header(0)]
        case .watch: throw GatewayError.invalid("a watch streams: send it to /v3/watch")
        case let .auth(call): return try await executeAuth(call)
        }
    }

    static func leaseText(_ id: LeaseID) -> String { GatewayJSON.int(Int64(bitPattern: id.rawValue)) }
    /// Milliseconds rounded up to seconds, without overflow for any TTL a native client set.
    static func seconds(_ millis: Int64) -> Int64 { millis <= 0 ? millis : millis / 1000 + (millis % 1000 > 0 ? 1 : 0) }

    func rangeBody(_ r: RangeResult) -> [String: Any] {
        var o: [String: Any] = ["header": header(r.revision)]
        if !r.kvs.isEmpty { o["kvs"] = r.kvs.map(GatewayJSON.kv) }
        if r.more { o["more"] = true }
        if r.count != 0 { o["count"] = GatewayJSON.int(r.count) }
        return o
    }

    func putBody(_ r: PutResult) -> [String: Any] {
        var o: [String: Any] = ["header": header(r.revision)]
        if let p = r.prevKV { o["prev_kv"] = GatewayJSON.kv(p) }
        return o
    }

    func deleteBody(_ r: DeleteResult) -> [String: Any] {
        var o: [String: Any] = ["header": header(r.revision)]
        if r.deleted != 0 { o["deleted"] = GatewayJSON.int(r.deleted) }
        if !r.prevKVs.isEmpty { o["prev_kvs"] = r.prevKVs.map(GatewayJSON.kv) }
        return o
    }

    func txnBody(_ r: TxnResult) -> [String: Any] {
        var o: [String: Any] = ["header": header(r.revision)]
        if r.succeeded { o["succeeded"] = true }
        if !r.results.isEmpty {
            o["responses"] = r.results.map { result -> [String: Any] in
                switch result {
                case let .put(p): return ["response_put": putBody(p)]
                case let .delete(d): return ["response_delete_range": deleteBody(d)]
                case let .range(rr): return ["response_range": rangeBody(rr)]
                }
            }
        }
        return o
    }

    /// The time left (as the leader counts it) and the granted TTL; TTL -1 for a lease that does
    /// not exist, as etcd answers.
    func timeToLive(_ id: LeaseID, keys: Bool) async throws -> [String: Any] {
        var o: [String: Any] = ["header": header(0), "ID": Self.leaseText(id)]
        guard let lease = try await client.lease(id) else {
            o["TTL"] = "-1"
            return o
        }
        o["TTL"] = GatewayJSON.int(lease.remainingMillis < 0 ? -1 : lease.remainingMillis / 1000)
        o["grantedTTL"] = GatewayJSON.int(Self.seconds(lease.ttlMillis))
        if keys, !lease.keys.isEmpty { o["keys"] = lease.keys.map(GatewayJSON.b64) }
        return o
    }

    /// This node's status in etcd's StatusResponse fields.
    func status() async throws -> [String: Any] {
        let s = try await client.detailedStatus(of: endpoint)
        var o: [String: Any] = ["header": header(s.revision), "version": SynodVersion.string, "leader": String(s.leader.rawValue),
                                "raftIndex": String(s.commit), "raftTerm": String(s.term), "raftAppliedIndex": String(s.applied)]
        if s.learners.contains(s.id) { o["isLearner"] = true }
        if let storage = s.storage {
            o["dbSizeInUse"] = GatewayJSON.int(storage.stateBytes)
            if !storage.alarms.isEmpty { o["errors"] = storage.alarms.map { "alarm: \($0)" } }
        }
        return o
    }

    /// etcd's LeaderKey: what a campaign answers and proclaim and resign take back.
    func leaderKey(_ held: HeldLock) -> [String: Any] {
        ["name": GatewayJSON.b64(Array(held.name.utf8)), "key": GatewayJSON.b64(held.key), "rev": GatewayJSON.int(held.fencingToken),
         "lease": Self.leaseText(held.lease)]
    }

    /// etcd's AlarmResponse: the raised alarms (cluster-wide in Synod, reported against this member).
    func alarmBody(_ alarms: [AlarmKind]) -> [String: Any] {
        var o: [String: Any] = ["header": header(0)]
        if !alarms.isEmpty { o["alarms"] = alarms.map { ["memberID": String(memberID), "alarm": "\($0)"] } }
        return o
    }

    func memberList() async throws -> [String: Any] {
        let members = try await client.members()
        return ["header": header(0), "members": members.map { m -> [String: Any] in
            var o: [String: Any] = ["ID": String(m.id.rawValue), "name": "node-\(m.id.rawValue)", "peerURLs": ["http://\(m.peerAddress)"]]
            if !m.clientAddress.isEmpty { o["clientURLs"] = ["http://\(m.clientAddress)"] }
            if m.role == "learner" { o["isLearner"] = true }
            return o
        }]
    }
}
