import SynodCore
import SynodStateMachine

/// A held lock. `fencingToken` is the create revision of the holder's key: it only grows from
/// one holder to the next, so a resource that remembers the highest token it has seen can refuse
/// a paused former holder whose lease already expired.
public struct HeldLock: Sendable {
    public let name: String
    public let key: [UInt8]
    public let lease: LeaseID
    public let fencingToken: Int64

    /// A lock or leadership described elsewhere (etcd's LeaderKey handed back by an HTTP
    /// client): `fencingToken` is the key's create revision.
    public init(name: String, key: [UInt8], lease: LeaseID, fencingToken: Int64) {
        self.name = name
        self.key = key
        self.lease = lease
        self.fencingToken = fencingToken
    }
}

extension SynodClient {
    /// Key prefix under which lock and election candidates queue.
    static func queuePrefix(_ kind: String, _ name: String) -> [UInt8] { Array("__synod/\(kind)/\(name)/".utf8) }

    /// Acquires the lock `name`, waiting behind earlier holders (fair, in arrival order: the
    /// etcd recipe). The lock lives as long as the lease, which is kept alive until `unlock`.
    public func lock(_ name: String, ttlMillis: Int64 = 10_000) async throws -> (HeldLock, Task<Void, Never>) {
        let (key, lease, token) = try await enqueue("lock", name, value: [], ttlMillis: ttlMillis)
        let keepAlive = keepAliveInBackground(lease, ttlMillis: ttlMillis)
        do {
            try await waitForTurn(prefix: Self.queuePrefix("lock", name), myToken: token)
        } catch {
            keepAlive.cancel()
            _ = try? await leaseRevoke(lease)
            throw error
        }
        return (HeldLock(name: name, key: key, lease: lease, fencingToken: token), keepAlive)
    }

    /// Releases a lock (revokes its lease, which deletes its key and wakes the next waiter).
    public func unlock(_ lock: HeldLock, keepAlive: Task<Void, Never>) async throws {
        keepAlive.cancel()
        try await leaseRevoke(lock.lease)
    }

    /// Campaigns to lead election `name` with `value`; returns once this candidate leads.
    /// Leadership ends when `resign` revokes the lease or the lease expires.
    public func campaign(_ name: String, value: [UInt8], ttlMillis: Int64 = 10_000) async throws -> (HeldLock, Task<Void, Never>) {
        let (key, lease, token) = try await enqueue("election", name, value: value, ttlMillis: ttlMillis)
        let keepAlive = keepAliveInBackground(lease, ttlMillis: ttlMillis)
        try await waitForTurn(prefix: Self.queuePrefix("election", name), myToken: token)
        return (HeldLock(name: name, key: key, lease: lease, fencingToken: token), keepAlive)
    }

    /// The current leader's value of election `name`, if any.
    public func electionLeader(_ name: String) async throws -> KeyValue? {
        try await queue(prefix: Self.queuePrefix("election", name)).members.first
    }

    public func resign(_ held: HeldLock, keepAlive: Task<Void, Never>) async throws {
        try await unlock(held, keepAlive: keepAlive)
    }

    /// etcd's v3lock `Lock`: queues under lock `name` with the caller's `lease` (which the
    /// caller keeps alive; the lock ends with it) and returns once it holds the lock. Release it
    /// with `unlock(key:)` or by revoking the lease. Queuing twice under one lease is one waiter.
    public func lock(_ name: String, lease: LeaseID) async throws -> HeldLock {
        let (key, token) = try await enqueue("lock", name, value: [], lease: lease)
        do { try await waitForTurn(prefix: Self.queuePrefix("lock", name), myToken: token) } catch {
            try? await resign(key: key, fencingToken: token)   // a waiter that gives up leaves the queue
            throw error
        }
        return HeldLock(name: name, key: key, lease: lease, fencingToken: token)
    }

    /// etcd's v3lock `Unlock`: deletes the holder's key (the caller's lease lives on), which
    /// wakes the next waiter.
    public func unlock(key: [UInt8]) async throws {
        try await delete(key)
    }

    /// etcd's v3election `Campaign` with the caller's `lease` (kept alive by the caller).
    public func campaign(_ name: String, value: [UInt8], lease: LeaseID) async throws -> HeldLock {
        let (key, token) = try await enqueue("election", name, value: value, lease: lease)
        do { try await waitForTurn(prefix: Self.queuePrefix("election", name), myToken: token) } catch {
            try? await resign(key: key, fencingToken: token)
            throw error
        }
        return HeldLock(name: name, key: key, lease: lease, fencingToken: token)
    }

    /// etcd's v3election `Proclaim`: the leader announces a new value without giving up its
    /// place. False (nothing written) if `held` no longer leads (its key is gone or was
    /// re-created).
    public func proclaim(_ held: HeldLock, value: [UInt8]) async throws -> Bool {
        let txn = Txn(compares: [Compare(key: held.key, .equal, .createRevision(held.fencingToken))],
                      success: [.put(key: held.key, value: value, lease: held.lease, prevKV: false)])
        return try await self.txn(txn).succeeded
    }

    /// etcd's v3election `Resign` for a caller-owned lease: deletes the leader's key if it is
    /// still the same key (its create revision), leaving the lease alone.
    public func resign(key: [UInt8], fencingToken: Int64) async throws {
        _ = try await txn(Txn(compares: [Compare(key: key, .equal, .createRevision(fencingToken))], success: [.delete(key: key, prevKV: false)]))
    }

    /// Creates this candidate's key under a fresh lease; returns (key, lease, create revision).
    func enqueue(_ kind: String, _ name: String, value: [UInt8], ttlMillis: Int64) async throws -> ([UInt8], LeaseID, Int64) {
        let lease = try await leaseGrant(ttlMillis: ttlMillis)
        let (key, token) = try await enqueue(kind, name, value: value, lease: lease)
        return (key, lease, token)
    }

    /// Creates this candidate's key under `lease` (or finds it, created earlier under the same
    /// lease); returns (key, create revision).
    func enqueue(_ kind: String, _ name: String, value: [UInt8], lease: LeaseID) async throws -> ([UInt8], Int64) {
        let key = Self.queuePrefix(kind, name) + Array(String(lease.rawValue, radix: 16).utf8)
        let txn = Txn(compares: [Compare(key: key, .equal, .createRevision(0))],
                      success: [.put(key: key, value: value, lease: lease, prevKV: false), .range(RangeRequest(key: key))],
                      failure: [.range(RangeRequest(key: key))])
        let result = try await self.txn(txn)
        for case let .range(r) in result.results {
            if let kv = r.kvs.first { return (key, kv.createRevision) }
        }
        throw ClientError.badResponse("lock key missing after creating it")
    }

    /// Queue members sorted by create revision (the order they arrived), and the revision read at.
    func queue(prefix: [UInt8]) async throws -> (members: [KeyValue], revision: Int64) {
        let r = try await range(RangeRequest.prefix(prefix))
        return (r.kvs.sorted { $0.createRevision < $1.createRevision }, r.revision)
    }

    /// Waits until no key under `prefix` has a smaller create revision than `myToken`, watching
    /// only the key just ahead of ours (no thundering herd).
    func waitForTurn(prefix: [UInt8], myToken: Int64) async throws {
        while true {
            try Task.checkCancellation()
            let (members, revision) = try await queue(prefix: prefix)
            // Our own key must still be there: if its lease ended (or someone deleted it) while
            // we waited, a later waiter may already hold the lock (etcd: ErrSessionExpired).
            guard members.contains(where: { $0.createRevision == myToken }) else {
                throw ClientError.rejected(status: .badRequest, message: "the waiter's key is gone (its lease expired or was revoked)")
            }
            guard let ahead = members.last(where: { $0.createRevision < myToken }) else { return }
            // Watching from just after the read cannot miss a delete that happened after it.
            for try await event in watch(ahead.key, fromRevision: revision + 1) where event.type == .delete {
                break
            }
        }
    }
}
