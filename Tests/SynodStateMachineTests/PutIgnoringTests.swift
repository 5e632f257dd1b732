import SynodCore
@testable import SynodStateMachine
import Testing

/// etcd's put with `ignore_value` / `ignore_lease` (`Command.putIgnoring`, cluster version 3).
@Suite("Put ignoring value or lease")
struct PutIgnoringTests {
    static func putIgnoring(_ h: Harness, _ key: String, _ value: String = "", lease: UInt64? = nil, ignoreValue: Bool = false,
                            ignoreLease: Bool = false, prevKV: Bool = false) throws -> AppliedEntry {
        try h.run(.putIgnoring(key: b(key), value: b(value), lease: lease.map { LeaseID($0) }, prevKV: prevKV, ignoreValue: ignoreValue, ignoreLease: ignoreLease))
    }

    @Test("the kept value or lease is written again with a new revision, as etcd does", arguments: StoreKind.allCases)
    func keeps(_ kind: StoreKind) throws {
        let h = try Harness(kind)
        try h.run(.clusterVersion(3))
        try h.run(.leaseGrant(id: LeaseID(1), ttlMillis: 60_000))
        try h.run(.leaseGrant(id: LeaseID(2), ttlMillis: 60_000))
        try h.run(.put(key: b("k"), value: b("v"), lease: LeaseID(1), prevKV: false))
        // ignore_value with a new lease: etcdctl put k --ignore-value --lease 2.
        let moved = try Self.putIgnoring(h, "k", lease: 2, ignoreValue: true)
        guard case .put = moved.response else { Issue.record("\(String(describing: moved.response))"); return }
        var kv = try #require(try h.get("k"))
        #expect(kv.value == b("v") && kv.lease == LeaseID(2) && kv.version == 2 && kv.modRevision == h.sm.revision)
        #expect(moved.events.map(\.kv.value) == [b("v")], "watchers see the kept value")
        #expect(try h.sm.lease(LeaseID(1))?.keys == [], "detached from the old lease")
        // ignore_lease with a new value.
        _ = try Self.putIgnoring(h, "k", "w", ignoreLease: true)
        kv = try #require(try h.get("k"))
        #expect(kv.value == b("w") && kv.lease == LeaseID(2) && kv.version == 3)
        // Both, with the previous key-value asked for.
        let both = try Self.putIgnoring(h, "k", ignoreValue: true, ignoreLease: true, prevKV: true)
        guard case let .put(p) = both.response else { Issue.record("\(String(describing: both.response))"); return }
        #expect(p.prevKV?.value == b("w"))
        kv = try #require(try h.get("k"))
        #expect(kv.value == b("w") && kv.lease == LeaseID(2) && kv.version == 4)
        // The kept lease still owns the key.
        try h.run(.leaseRevoke(id: LeaseID(2)))
        #expect(try h.get("k") == nil)
    }

    @Test("refusals change nothing: a missing key, a value or lease given with its ignore flag, an unknown lease")
    func refusals() throws {
        let h = try Harness(.memory)
        try h.run(.clusterVersion(3))
        try h.put("k", "v")
        let revision = h.sm.revision
        for (what, applied) in [("missing key", try Self.putIgnoring(h, "nope", ignoreValue: true)),
                                ("value with ignore_value", try Self.putIgnoring(h, "k", "x", ignoreValue: true)),
                                ("lease with ignore_lease", try Self.putIgnoring(h, "k", "x", lease: 1, ignoreLease: true))] {
            guard case .failure(.invalidRequest) = applied.response else { Issue.record("\(what): \(String(describing: applied.response))"); continue }
        }
        let unknownLease = try Self.putIgnoring(h, "k", lease: 9, ignoreValue: true).response?.error
        #expect(unknownLease == .leaseNotFound(LeaseID(9)))
        let version = try h.get("k")?.version
        #expect(h.sm.revision == revision && version == 1)
    }

    /// An older build cannot decode the command (unknown tag: `malformedCommand`, nothing
    /// written), so below cluster version 3 this one must not apply it either.
    @Test("below cluster version 3 every replica refuses it (the gate switched off is caught)", arguments: [false, true])
    func gated(ungated: Bool) throws {
        let h = try Harness(.memory)
        try h.run(.clusterVersion(2))
        try h.put("k", "v")
        h.sm.testingOrderedRangesUngated = ungated
        let applied = try Self.putIgnoring(h, "k", "w", ignoreLease: true)
        let refused: Bool
        if case .failure(.invalidRequest) = applied.response { refused = true } else { refused = false }
        #expect(refused == !ungated)
        #expect((try h.get("k"))?.value == (ungated ? b("w") : b("v")))
        let payload = CommandEnvelope(command: .putIgnoring(key: b("k"), value: [], lease: nil, prevKV: false, ignoreValue: true, ignoreLease: false)).encode()
        #expect(CommandEnvelope.needsVersion3(payload))
    }
}
