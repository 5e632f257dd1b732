import Foundation
import SynodClient
import SynodCore
import SynodStateMachine
import SynodTransport
import SynodWire

// Leases (TTLs in seconds, as etcd's API has them; Synod keeps milliseconds), status and members.
extension Gateway {
    /// Most seconds a TTL may ask for (its milliseconds must fit an Int64 many times over).
    static let ttlSecondsMax: Int64 = 1 << 40

    static func seconds(_ millis: Int64) -> Int64 { millis <= 0 ? millis : (millis + 999) / 1000 }

    func leaseID(_ f: JSONFields) throws(GatewayError) -> LeaseID {
        let raw = try f.int64("ID")
        guard raw != 0 else { throw .invalid("ID is not provided") }
        return LeaseID(UInt64(bitPattern: raw))
    }

    func leaseGrant(_ f: JSONFields) async throws -> [String: Any] {
        try f.check(known: ["TTL", "ID"])
        let ttl = try f.int64("TTL")
        guard ttl > 0, ttl <= Self.ttlSecondsMax else { throw GatewayError.invalid("TTL must be 1 to \(Self.ttlSecondsMax) seconds") }
        var raw = try f.int64("ID")
        if raw == 0 {
            var rng = SystemRandomNumberGenerator()
            raw = Int64.random(in: 1...Int64.max, using: &rng)
        }
        guard raw > 0 else { throw GatewayError.invalid("ID must be positive") }
        guard case let .leaseGrant(r) = try await client.write(.leaseGrant(id: LeaseID(UInt64(raw)), ttlMillis: ttl * 1000)) else {
            throw GatewayError(status: .internalServerError, code: 13, message: "unexpected answer to a lease grant")
        }
        return ["header": header(r.revision), "ID": GatewayJSON.int(Int64(bitPattern: r.id.rawValue)), "TTL": GatewayJSON.int(Self.seconds(r.ttlMillis))]
    }

    func leaseRevoke(_ f: JSONFields) async throws -> [String: Any] {
        try f.check(known: ["ID"])
        _ = try await client.leaseRevoke(try leaseID(f))
        return ["header": header(0)]
    }

    /// One keep-alive (etcd streams them; each request here renews once), answered in the
    /// stream's message shape.
    func leaseKeepAlive(_ f: JSONFields) async throws -> [String: Any] {
        try f.check(known: ["ID"])
        let id = try leaseID(f)
        let ttl = try await client.leaseKeepAlive(id)
        return ["result": ["header": header(0), "ID": GatewayJSON.int(Int64(bitPattern: id.rawValue)), "TTL": GatewayJSON.int(Self.seconds(ttl))] as [String: Any]]
    }

    /// The time left (as the leader counts it) and the granted TTL; TTL -1 for a lease that does
    /// not exist, as etcd answers.
    func leaseTimeToLive(_ f: JSONFields) async throws -> [String: Any] {
        try f.check(known: ["ID", "keys"])
        let id = try leaseID(f)
        var o: [String: Any] = ["header": header(0), "ID": GatewayJSON.int(Int64(bitPattern: id.rawValue))]
        guard let lease = try await client.lease(id) else {
            o["TTL"] = "-1"
            return o
        }
        o["TTL"] = GatewayJSON.int(lease.remainingMillis < 0 ? -1 : lease.remainingMillis / 1000)
        o["grantedTTL"] = GatewayJSON.int(Self.seconds(lease.ttlMillis))
        if try f.bool("keys"), !lease.keys.isEmpty { o["keys"] = lease.keys.map(GatewayJSON.b64) }
        return o
    }

    func leaseList(_ f: JSONFields) async throws -> [String: Any] {
        try f.check(known: [])
        let leases = try await client.leases()
        var o: [String: Any] = ["header": header(0)]
        if !leases.isEmpty { o["leases"] = leases.map { ["ID": GatewayJSON.int(Int64(bitPattern: $0.id.rawValue))] } }
        return o
    }

    /// This node's status in etcd's StatusResponse fields.
    func status(_ f: JSONFields) async throws -> [String: Any] {
        try f.check(known: [])
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

    func memberList(_ f: JSONFields) async throws -> [String: Any] {
        try f.check(known: ["linearizable"])
        let members = try await client.members()
        return ["header": header(0), "members": members.map { m -> [String: Any] in
            var o: [String: Any] = ["ID": String(m.id.rawValue), "name": "node-\(m.id.rawValue)", "peerURLs": ["http://\(m.peerAddress)"]]
            if !m.clientAddress.isEmpty { o["clientURLs"] = ["http://\(m.clientAddress)"] }
            if m.role == "learner" { o["isLearner"] = true }
            return o
        }]
    }
}
