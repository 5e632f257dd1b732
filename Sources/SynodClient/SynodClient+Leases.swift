import NIOCore
import SynodCore
import SynodStateMachine
import SynodWire

extension SynodClient {
    /// Grants a lease with a time-to-live; keys attached to it are deleted when it expires
    /// (no keep-alive for its TTL) or is revoked. The id is chosen at random by the client.
    /// A TTL below the cluster's minimum (1.5 election timeouts) is raised to it; use
    /// `leaseGrantDetailed` to learn the TTL granted.
    public func leaseGrant(ttlMillis: Int64) async throws -> LeaseID {
        try await leaseGrantDetailed(ttlMillis: ttlMillis).id
    }

    /// `leaseGrant`, answering with the lease's id and the TTL granted (etcd's grant response).
    public func leaseGrantDetailed(ttlMillis: Int64) async throws -> LeaseGrantResult {
        var rng = SystemRandomNumberGenerator()
        let id = LeaseID(UInt64.random(in: 1...UInt64(Int64.max), using: &rng))
        guard case let .leaseGrant(r) = try await write(.leaseGrant(id: id, ttlMillis: ttlMillis)) else { throw unexpected() }
        return r
    }

    /// Revokes a lease, deleting its keys. Returns how many keys were deleted.
    @discardableResult
    public func leaseRevoke(_ id: LeaseID) async throws -> Int64 {
        guard case let .leaseRevoke(r) = try await write(.leaseRevoke(id: id)) else { throw unexpected() }
        return r.deletedKeys
    }

    /// Renews a lease's full TTL on the leader. Throws `ClientError.kv(.leaseNotFound)` once it expired.
    @discardableResult
    public func leaseKeepAlive(_ id: LeaseID) async throws -> Int64 {
        let response = try await send(.leaseKeepAlive(id: Int64(bitPattern: id.rawValue)))
        switch try decode(response) {
        case let .leaseGrant(g): return g.ttlMillis
        case let .failure(e): throw ClientError.kv(e)
        default: throw unexpected()
        }
    }

    /// Every lease (remaining time as the leader sees it).
    public func leases() async throws -> [LeaseStatus] {
        let r = try await send(.read(.linearizable, KVQuery.leases.encode()))
        do { return try LeaseStatus.decodeList(r.body) } catch { throw ClientError.badResponse("\(error)") }
    }

    /// One lease with its keys, or nil.
    public func lease(_ id: LeaseID) async throws -> LeaseStatus? {
        let r = try await send(.read(.linearizable, KVQuery.lease(id).encode()))
        do { return try LeaseStatus.decodeList(r.body).first } catch { throw ClientError.badResponse("\(error)") }
    }

    /// Keeps `lease` alive every third of its TTL until the returned task is cancelled or the
    /// lease is gone.
    public func keepAliveInBackground(_ lease: LeaseID, ttlMillis: Int64) -> Task<Void, Never> {
        Task {
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: UInt64(max(ttlMillis / 3, 50)) * 1_000_000)
                if Task.isCancelled { return }
                do { try await leaseKeepAlive(lease) } catch ClientError.kv { return } catch {}
            }
        }
    }
}
