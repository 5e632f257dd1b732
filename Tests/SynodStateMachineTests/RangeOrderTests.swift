import SynodCore
@testable import SynodStateMachine
import Testing

/// Sorted and filtered ranges (etcd's sort_order, sort_target and min/max mod/create revision),
/// checked against a reference written from etcd's rules on random stores and random requests —
/// at the current revision, at past revisions, and inside transactions.
@Suite("Range order")
struct RangeOrderTests {
    /// The reference: every key of the range, `count` all of them; the filters; the sort (ties by
    /// key; DESCEND is ASCEND reversed; no order with a non-key target is ASCEND); the limit.
    static func expected(_ model: [[UInt8]: KeyValue], _ r: RangeRequest, at revision: Int64) -> RangeResult {
        let inRange = model.values.filter { KeyRange.contains($0.key, key: r.key, rangeEnd: r.rangeEnd) }
            .sorted { $0.key.lexicographicallyPrecedes($1.key) }
        if r.countOnly { return RangeResult(revision: revision, kvs: [], count: Int64(inRange.count), more: false) }
        var admitted = inRange.filter { kv in
            (r.minModRevision == 0 || kv.modRevision >= r.minModRevision) && (r.maxModRevision == 0 || kv.modRevision <= r.maxModRevision)
                && (r.minCreateRevision == 0 || kv.createRevision >= r.minCreateRevision) && (r.maxCreateRevision == 0 || kv.createRevision <= r.maxCreateRevision)
        }
        let order: RangeSortOrder = r.sortOrder == .none && r.sortTarget != .key ? .ascend : r.sortOrder
        if order != .none {
            func field(_ kv: KeyValue) -> [Int64] {
                switch r.sortTarget {
                case .key, .value: []
                case .version: [kv.version]
                case .create: [kv.createRevision]
                case .mod: [kv.modRevision]
                }
            }
            admitted.sort { a, b in
                if r.sortTarget == .value && a.value != b.value { return a.value.lexicographicallyPrecedes(b.value) }
                if field(a) != field(b) { return field(a).lexicographicallyPrecedes(field(b)) }
                return a.key.lexicographicallyPrecedes(b.key)
            }
            if order == .descend { admitted.reverse() }
        }
        let limit = r.limit == 0 ? KVLimits.rangeLimitMax : r.limit
        var kvs = Array(admitted.prefix(limit))
        if r.keysOnly { for i in kvs.indices { kvs[i].value = [] } }
        return RangeResult(revision: revision, kvs: kvs, count: Int64(inRange.count), more: admitted.count > limit)
    }

    /// A random request over keys k00…k19, with random ordering, filters up to `revision`.
    static func randomRequest(_ rng: inout Mix, revision: Int64) -> RangeRequest {
        func key() -> [UInt8] { b(String(format: "k%02d", Int.random(in: 0..<22, using: &rng))) }
        var r: RangeRequest
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: r = RangeRequest(key: key())
        case 1: r = RangeRequest(key: b("k"), rangeEnd: [0])
        default:
            let (x, y) = (key(), key())
            r = x.lexicographicallyPrecedes(y) ? RangeRequest(key: x, rangeEnd: y) : RangeRequest(key: y, rangeEnd: x)
        }
        r.limit = Int.random(in: 0..<4, using: &rng) == 0 ? 0 : Int.random(in: 1...6, using: &rng)
        r.keysOnly = Int.random(in: 0..<4, using: &rng) == 0
        r.countOnly = Int.random(in: 0..<8, using: &rng) == 0
        r.sortOrder = RangeSortOrder.allCases.randomElement(using: &rng)!
        r.sortTarget = RangeSortTarget.allCases.randomElement(using: &rng)!
        func bound() -> Int64 { Int.random(in: 0..<3, using: &rng) == 0 ? Int64.random(in: 1...revision, using: &rng) : 0 }
        (r.minModRevision, r.maxModRevision, r.minCreateRevision, r.maxCreateRevision) = (bound(), bound(), bound(), bound())
        return r
    }

    @Test("sorted and filtered ranges match the reference, now, in the past and in transactions", arguments: [(StoreKind.memory, 1), (.memory, 2), (.lmdb, 3)] as [(StoreKind, UInt64)])
    func matchesReference(_ kind: StoreKind, seed: UInt64) throws {
        let h = try Harness(kind)
        try h.run(.clusterVersion(KVStateMachine.orderedRangeClusterVersion))
        var rng = Mix(state: seed)
        var model: [[UInt8]: KeyValue] = [:]
        var history: [Int64: [[UInt8]: KeyValue]] = [h.sm.revision: model]
        func put(_ key: [UInt8], _ value: [UInt8], at rev: Int64) {
            let old = model[key]
            model[key] = KeyValue(key: key, value: value, createRevision: old?.createRevision ?? rev, modRevision: rev, version: (old?.version ?? 0) + 1)
        }
        var checked = 0
        for step in 0..<400 {
            let key = b(String(format: "k%02d", Int.random(in: 0..<20, using: &rng)))
            let value = (0..<Int.random(in: 0...3, using: &rng)).map { _ in UInt8.random(in: 97...99, using: &rng) }
            switch Int.random(in: 0..<10, using: &rng) {
            case 0 where model[key] != nil:
                try h.run(.delete(key: key, prevKV: false))
                model[key] = nil
            case 1:
                // Two puts in one revision: ties on the mod revision, broken by key.
                let other = b(String(format: "k%02d", Int.random(in: 0..<20, using: &rng)))
                guard other != key else { continue }
                let t = try #require(try h.run(.txn(Txn(compares: [], success: [.put(key: key, value: value, lease: nil, prevKV: false),
                                                                                      .put(key: other, value: value, lease: nil, prevKV: false)]))).response?.txn)
                put(key, value, at: t.revision)
                put(other, value, at: t.revision)
            default:
                try h.run(.put(key: key, value: value, lease: nil, prevKV: false))
                put(key, value, at: h.sm.revision)
            }
            history[h.sm.revision] = model
            guard step % 4 == 3 else { continue }
            for _ in 0..<8 {
                var r = Self.randomRequest(&rng, revision: h.sm.revision)
                #expect(try h.rangeResult(r) == Self.expected(model, r, at: h.sm.revision), "\(r)")
                // The same at a past revision (history replayed).
                let past = Int64.random(in: 1...h.sm.revision, using: &rng)
                r.revision = past
                #expect(try h.rangeResult(r) == Self.expected(history[past]!, r, at: past), "\(r)")
                checked += 2
            }
            // Inside a transaction (the answer is part of the replicated outcome).
            var r = Self.randomRequest(&rng, revision: h.sm.revision)
            r.revision = nil
            let t = try #require(try h.run(.txn(Txn(compares: [], success: [.range(r)]))).response?.txn, "\(r)")
            guard case let .range(got) = t.results.first else { Issue.record("no range result"); return }
            #expect(got == Self.expected(model, r, at: h.sm.revision), "\(r)")
            checked += 1
        }
        #expect(checked > 800)
    }

    @Test("a sort by value orders values as bytes, ties by key; the limit applies after the sort")
    func byValue() throws {
        let h = try Harness(.memory)
        for (k, v) in [("a", "3"), ("b", "1"), ("c", "2"), ("d", "1")] { try h.put(k, v) }
        let desc = try h.rangeResult(RangeRequest(key: b("a"), rangeEnd: [0], limit: 3, sortOrder: .descend, sortTarget: .value))
        #expect(desc.kvs.map(\.key) == [b("a"), b("c"), b("d")])
        #expect(desc.more && desc.count == 4)
        let asc = try h.rangeResult(RangeRequest(key: b("a"), rangeEnd: [0], sortTarget: .value))
        #expect(asc.kvs.map(\.key) == [b("b"), b("d"), b("c"), b("a")], "no order with a value target is ASCEND")
    }

    @Test("bad bounds are refused; too many admitted keys are refused, never a partial sort")
    func bounds() throws {
        let h = try Harness(.memory)
        var r = RangeRequest(key: b("a"), rangeEnd: [0], sortOrder: .descend)
        r.minModRevision = -1
        guard case .failure(.invalidRequest) = try h.sm.range(r) else { Issue.record("a negative bound was taken"); return }
        for i in 0..<30 { try h.put(String(format: "k%03d", i), "v") }
        // At the bound exactly: served.
        r = RangeRequest(key: b("k"), rangeEnd: [0], limit: 1, sortOrder: .descend, sortTarget: .create)
        #expect(try h.rangeResult(r).kvs.map(\.key) == [b("k029")])
        #expect(KVLimits.orderedRangeKeysMax >= KVLimits.rangeLimitMax)
    }

    /// Below cluster version 3 an older replica cannot decode a transaction with a sorted range
    /// and answers `malformedCommand` without applying it; this one must refuse it too, or the
    /// transaction's writes would exist on some replicas only.
    @Test("below cluster version 3 a transaction with a sorted range changes nothing", arguments: [false, true])
    func gatedBelowVersion3(ungated: Bool) throws {
        let h = try Harness(.memory)
        try h.run(.clusterVersion(2))
        h.sm.testingOrderedRangesUngated = ungated
        let txn = Txn(compares: [], success: [.put(key: b("x"), value: b("1"), lease: nil, prevKV: false),
                                              .range(RangeRequest(key: b("a"), rangeEnd: [0], sortOrder: .descend))])
        #expect(CommandEnvelope.needsVersion3(CommandEnvelope(command: .txn(txn)).encode()))
        #expect(!CommandEnvelope.needsVersion3(CommandEnvelope(command: .put(key: b("x"), value: [], lease: nil, prevKV: false)).encode()))
        let response = try h.run(.txn(txn), session: ClientSession(clientID: 5, sequence: 1)).response
        let refused: Bool
        if case .failure(.invalidRequest) = response { refused = true } else { refused = false }
        // With the gate switched off (the injected bug) the put lands: what the gate exists to stop.
        #expect(refused == !ungated, "\(String(describing: response))")
        #expect((try h.get("x") == nil) == !ungated)
        try h.run(.clusterVersion(3))
        // Refused below version 3, the command left no session record (an older replica leaves
        // none): the same sequence number now runs instead of answering the refusal.
        guard case .txn = try h.run(.txn(txn), session: ClientSession(clientID: 5, sequence: ungated ? 2 : 1)).response else { Issue.record("refused at version 3"); return }
        #expect(try h.get("x") != nil)
    }
}
