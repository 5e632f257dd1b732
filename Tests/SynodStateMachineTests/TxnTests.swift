import SynodCore
@testable import SynodStateMachine
import Testing

@Suite("Transactions: compare → success / failure, one revision")
struct TxnTests {
    @Test("a holding compare runs success as one revision with sub-revision events", arguments: StoreKind.allCases)
    func success(kind: StoreKind) throws {
        let h = try Harness(kind)
        try h.put("x", "1") // rev 2
        let txn = Txn(compares: [Compare(key: b("x"), .equal, .value(b("1"))), Compare(key: b("x"), .equal, .version(1))],
                      success: [.put(key: b("x"), value: b("2"), lease: nil, prevKV: true),
                                .put(key: b("y"), value: b("1"), lease: nil, prevKV: false),
                                .range(RangeRequest(key: b("x")))],
                      failure: [.delete(key: b("x"), prevKV: false)])
        let applied = try h.run(.txn(txn))
        let t = try #require(applied.response?.txn)
        #expect(t.succeeded)
        #expect(t.revision == 3)
        #expect(t.results.count == 3)
        if case let .put(p) = t.results[0] { #expect(p.prevKV?.value == b("1")); #expect(p.revision == 3) } else { Issue.record("not a put") }
        if case let .range(r) = t.results[2] { #expect(r.kvs.first?.value == b("2")) } else { Issue.record("not a range") }
        #expect(applied.events.map(\.revision) == [3, 3])
        #expect(applied.events.map(\.kv.key) == [b("x"), b("y")])
        #expect(h.sm.revision == 3)
        #expect(try h.get("y")?.modRevision == 3)
    }

    @Test("a failed compare runs the failure branch", arguments: StoreKind.allCases)
    func failure(kind: StoreKind) throws {
        let h = try Harness(kind)
        try h.put("x", "1")
        let txn = Txn(compares: [Compare(key: b("x"), .greater, .modRevision(5))],
                      success: [.put(key: b("x"), value: b("2"), lease: nil, prevKV: false)],
                      failure: [.delete(key: b("x"), prevKV: true)])
        let t = try #require(try h.run(.txn(txn)).response?.txn)
        #expect(!t.succeeded)
        if case let .delete(d) = t.results[0] { #expect(d.deleted == 1) } else { Issue.record("not a delete") }
        #expect(try h.get("x") == nil)
    }

    @Test("compares on a missing key: version/createRevision 0, value never holds, exists false", arguments: StoreKind.allCases)
    func missingKey(kind: StoreKind) throws {
        let h = try Harness(kind)
        func holds(_ c: Compare) throws -> Bool {
            try #require(try h.run(.txn(Txn(compares: [c], success: [], failure: []))).response?.txn).succeeded
        }
        #expect(try holds(Compare(key: b("m"), .equal, .version(0))))
        #expect(try holds(Compare(key: b("m"), .equal, .createRevision(0))))
        #expect(try !holds(Compare(key: b("m"), .notEqual, .value(b("x")))))
        #expect(try holds(Compare(key: b("m"), .equal, .exists(false))))
        try h.put("m", "b")
        #expect(try holds(Compare(key: b("m"), .equal, .exists(true))))
        #expect(try holds(Compare(key: b("m"), .less, .value(b("c")))))
        #expect(try holds(Compare(key: b("m"), .greater, .value(b("a")))))
        #expect(try holds(Compare(key: b("m"), .notEqual, .value(b("a")))))
        #expect(try holds(Compare(key: b("m"), .less, .modRevision(100))))
        // Read-only transactions do not bump the revision.
        #expect(h.sm.revision == 2)
    }

    @Test("too many ops, a bad key in the branch not taken, a missing lease: errors with no effect", arguments: StoreKind.allCases)
    func invalid(kind: StoreKind) throws {
        let h = try Harness(kind)
        let many = Array(repeating: TxnOp.put(key: b("k"), value: [], lease: nil, prevKV: false), count: KVLimits.txnOpsMax + 1)
        #expect(try h.run(.txn(Txn(compares: [], success: many))).response?.error == .tooManyOps(count: KVLimits.txnOpsMax + 1, limit: KVLimits.txnOpsMax))
        let badKey = Txn(compares: [], success: [.put(key: b("ok"), value: [], lease: nil, prevKV: false)], failure: [.delete(key: [], prevKV: false)])
        #expect(try h.run(.txn(badKey)).response?.error == .emptyKey)
        let lease = Txn(compares: [], success: [.put(key: b("ok"), value: [], lease: nil, prevKV: false),
                                               .put(key: b("l"), value: [], lease: LeaseID(9), prevKV: false)])
        #expect(try h.run(.txn(lease)).response?.error == .leaseNotFound(LeaseID(9)))
        #expect(try h.get("ok") == nil)
        #expect(h.sm.revision == 1)
    }

    @Test("the same key written twice in a txn: two changes, version +2", arguments: StoreKind.allCases)
    func sameKeyTwice(kind: StoreKind) throws {
        let h = try Harness(kind)
        let txn = Txn(compares: [], success: [.put(key: b("k"), value: b("1"), lease: nil, prevKV: false),
                                              .put(key: b("k"), value: b("2"), lease: nil, prevKV: false)])
        let applied = try h.run(.txn(txn))
        #expect(applied.events.count == 2)
        let k = try #require(try h.get("k"))
        #expect(k.version == 2)
        #expect(k.createRevision == 2)
        #expect(k.modRevision == 2)
        #expect(applied.events[1].prevKV?.value == b("1"))
    }

    @Test("compares on a key's lease (cluster version 3): its id; no lease, as a missing key, is 0; refused below version 3")
    func leaseCompares() throws {
        let h = try Harness(.memory)
        try h.run(.clusterVersion(3))
        try h.run(.leaseGrant(id: LeaseID(5), ttlMillis: 60_000))
        try h.run(.put(key: b("l"), value: b("1"), lease: LeaseID(5), prevKV: false))
        try h.put("n", "1")
        func holds(_ key: String, _ op: CompareOp, _ id: UInt64?, on harness: Harness? = nil) throws -> Bool {
            let target = harness ?? h
            let r = try target.run(.txn(Txn(compares: [Compare(key: b(key), op, .lease(id.map { LeaseID($0) }))], success: []))).response
            return try #require(r?.txn, "\(String(describing: r))").succeeded
        }
        #expect(try holds("l", .equal, 5) && !holds("l", .equal, 6) && holds("l", .greater, 4) && holds("l", .less, 6) && holds("l", .notEqual, nil))
        #expect(try holds("n", .equal, nil) && holds("missing", .equal, nil) && holds("missing", .less, 5) && !holds("n", .greater, 0))
        #expect(try holds("n", .greater, UInt64.max), "ids compare as etcd's int64: 0 > -1")
        let old = try Harness(.memory)
        try old.run(.clusterVersion(2))
        let refused = try old.run(.txn(Txn(compares: [Compare(key: b("n"), .equal, .lease(nil))], success: [.put(key: b("x"), value: b("1"), lease: nil, prevKV: false)]))).response
        guard case .failure(.invalidRequest) = refused else { Issue.record("applied below version 3: \(String(describing: refused))"); return }
        #expect(try old.get("x") == nil)
    }
}
