import SynodCore
@testable import SynodStateMachine
import Testing

@Suite("Leases: grant, attach, revoke, leader-proposed expiry")
struct LeaseTests {
    @Test("grant, attach keys, list; attaching to a missing lease is an error", arguments: StoreKind.allCases)
    func grantAndAttach(kind: StoreKind) throws {
        let h = try Harness(kind)
        let g = try h.run(.leaseGrant(id: LeaseID(7), ttlMillis: 5_000)).response
        #expect(g == .leaseGrant(LeaseGrantResult(revision: 1, id: LeaseID(7), ttlMillis: 5_000)))
        #expect(try h.run(.leaseGrant(id: LeaseID(7), ttlMillis: 1)).response?.error == .leaseExists(LeaseID(7)))
        #expect(try h.run(.leaseGrant(id: LeaseID(0), ttlMillis: 1)).response?.error == .invalidLease(LeaseID(0), ttlMillis: 1))
        #expect(try h.run(.leaseGrant(id: LeaseID(8), ttlMillis: 0)).response?.error == .invalidLease(LeaseID(8), ttlMillis: 0))
        try h.run(.leaseGrant(id: LeaseID(3), ttlMillis: 1_000))
        try h.put("a", "1", lease: LeaseID(7))
        try h.put("b", "1", lease: LeaseID(7))
        #expect(try h.put("c", "1", lease: LeaseID(99)).error == .leaseNotFound(LeaseID(99)))
        #expect(try h.get("c") == nil)
        #expect(try h.get("a")?.lease == LeaseID(7))
        let all = try h.sm.leases()
        #expect(all.map(\.0) == [LeaseID(3), LeaseID(7)])
        #expect(all.map(\.ttlMillis) == [1_000, 5_000])
        #expect(try h.sm.lease(LeaseID(7)) == LeaseInfo(id: LeaseID(7), ttlMillis: 5_000, keys: [b("a"), b("b")]))
        #expect(try h.sm.lease(LeaseID(42)) == nil)
        // Re-putting without a lease detaches; moving to another lease re-attaches.
        try h.put("a", "2")
        try h.put("b", "2", lease: LeaseID(3))
        #expect(try h.sm.lease(LeaseID(7))?.keys == [])
        #expect(try h.sm.lease(LeaseID(3))?.keys == [b("b")])
    }

    @Test("revoke deletes the attached keys in one revision, each a watch event", arguments: StoreKind.allCases)
    func revoke(kind: StoreKind) throws {
        let h = try Harness(kind)
        try h.run(.leaseGrant(id: LeaseID(1), ttlMillis: 1_000))
        try h.put("k1", "v", lease: LeaseID(1))
        try h.put("k2", "v", lease: LeaseID(1))
        try h.put("other", "v")
        let applied = try h.run(.leaseRevoke(id: LeaseID(1)))
        #expect(applied.response == .leaseRevoke(LeaseRevokeResult(revision: 5, leases: [LeaseID(1)], deletedKeys: 2)))
        #expect(applied.events.map(\.type) == [.delete, .delete])
        #expect(applied.events.map(\.kv.key) == [b("k1"), b("k2")])
        #expect(applied.events.allSatisfy { $0.revision == 5 })
        #expect(try h.get("k1") == nil)
        #expect(try h.get("other") != nil)
        #expect(try h.sm.leases().isEmpty)
        #expect(try h.run(.leaseRevoke(id: LeaseID(1))).response?.error == .leaseNotFound(LeaseID(1)))
    }

    @Test("leaseExpire removes the listed leases that still exist and their keys, as one revision", arguments: StoreKind.allCases)
    func expire(kind: StoreKind) throws {
        let h = try Harness(kind)
        for id in [1, 2, 3] as [UInt64] { try h.run(.leaseGrant(id: LeaseID(id), ttlMillis: 100)) }
        try h.put("a", "v", lease: LeaseID(1))
        try h.put("b", "v", lease: LeaseID(2))
        try h.put("c", "v", lease: LeaseID(3))
        let applied = try h.run(.leaseExpire(ids: [LeaseID(2), LeaseID(1), LeaseID(404), LeaseID(2)]))
        #expect(applied.response == .leaseExpire(LeaseRevokeResult(revision: 5, leases: [LeaseID(1), LeaseID(2)], deletedKeys: 2)))
        #expect(applied.events.map(\.kv.key) == [b("b"), b("a")])
        #expect(try h.sm.leases().map(\.0) == [LeaseID(3)])
        #expect(try h.get("c") != nil)
        // Expiring nothing changes nothing.
        let none = try h.run(.leaseExpire(ids: [LeaseID(1)]))
        #expect(none.response == .leaseExpire(LeaseRevokeResult(revision: 5, leases: [], deletedKeys: 0)))
        #expect(none.events.isEmpty)
    }

    @Test("raisingLeaseTTL raises a short grant's TTL, with or without a session, and leaves every other payload's bytes alone")
    func minimumTTL() throws {
        let session = ClientSession(clientID: 9, sequence: 4)
        for s in [nil, session] {
            let short = CommandEnvelope(session: s, command: .leaseGrant(id: LeaseID(7), ttlMillis: 50)).encode()
            let raised = try CommandEnvelope.decode(CommandEnvelope.raisingLeaseTTL(short, toAtLeast: 300))
            #expect(raised == CommandEnvelope(session: s, command: .leaseGrant(id: LeaseID(7), ttlMillis: 300)))
            for unchanged: Command in [.leaseGrant(id: LeaseID(7), ttlMillis: 300), .leaseGrant(id: LeaseID(7), ttlMillis: 0),
                                       .leaseRevoke(id: LeaseID(7)), .put(key: b("k"), value: b("v"), lease: nil, prevKV: false)] {
                let payload = CommandEnvelope(session: s, command: unchanged).encode()
                #expect(CommandEnvelope.raisingLeaseTTL(payload, toAtLeast: 300) == payload)
            }
            // A grant cut short is left for apply to refuse.
            #expect(CommandEnvelope.raisingLeaseTTL(Array(short.dropLast()), toAtLeast: 300) == Array(short.dropLast()))
        }
        // Random bytes never trap, and come back as they were unless they decode as a short grant.
        var rng = SeededRandom(seed: 11)
        for _ in 0..<5_000 {
            var bytes = (0..<Int(rng.next() % 40)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if bytes.count > 2, rng.next() % 2 == 0 { bytes[0] = CommandEnvelope.encodingVersion; bytes[1] = 0; bytes[2] = 5 }
            let out = CommandEnvelope.raisingLeaseTTL(bytes, toAtLeast: 300)
            if out != bytes, case let .leaseGrant(_, ttl)? = try? CommandEnvelope.decode(out).command { #expect(ttl == 300) } else { #expect(out == bytes) }
        }
    }
}
