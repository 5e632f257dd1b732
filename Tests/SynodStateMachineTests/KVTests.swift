import SynodCore
@testable import SynodStateMachine
import Testing

@Suite("KV: revisions, versions, range, delete (etcd semantics)")
struct KVTests {
    @Test("an empty store is at revision 1; each put is one revision", arguments: StoreKind.allCases)
    func revisions(kind: StoreKind) throws {
        let h = try Harness(kind)
        #expect(h.sm.revision == 1)
        #expect(try h.put("a", "1").put?.revision == 2)
        #expect(try h.put("b", "1").put?.revision == 3)
        #expect(try h.put("a", "2").put?.revision == 4)
        let a = try #require(try h.get("a"))
        #expect(a.createRevision == 2)
        #expect(a.modRevision == 4)
        #expect(a.version == 2)
        #expect(a.value == b("2"))
        #expect(h.sm.revision == 4)
    }

    @Test("delete resets the version; a delete of a missing key does not bump the revision", arguments: StoreKind.allCases)
    func deleteResetsVersion(kind: StoreKind) throws {
        let h = try Harness(kind)
        try h.put("k", "1")
        try h.put("k", "2")
        let d = try #require(try h.run(.delete(key: b("k"), prevKV: true)).response?.delete)
        #expect(d.revision == 4)
        #expect(d.deleted == 1)
        #expect(d.prevKVs.map(\.value) == [b("2")])
        let none = try #require(try h.run(.delete(key: b("k"), prevKV: false)).response?.delete)
        #expect(none.deleted == 0)
        #expect(none.revision == 4)
        #expect(try h.get("k") == nil)
        try h.put("k", "3")
        let k = try #require(try h.get("k"))
        #expect(k.version == 1)
        #expect(k.createRevision == 5)
    }

    @Test("put returns prevKV when asked", arguments: StoreKind.allCases)
    func putPrevKV(kind: StoreKind) throws {
        let h = try Harness(kind)
        #expect(try h.put("k", "1", prevKV: true).put?.prevKV == nil)
        let p = try #require(try h.put("k", "2", prevKV: true).put)
        #expect(p.prevKV?.value == b("1"))
        #expect(p.prevKV?.version == 1)
        #expect(try h.put("k", "3").put?.prevKV == nil)
    }

    @Test("range: single key, prefix, [key, end), all keys, limit, keysOnly, countOnly", arguments: StoreKind.allCases)
    func ranges(kind: StoreKind) throws {
        let h = try Harness(kind)
        for k in ["a", "app/1", "app/2", "app/3", "b", "c"] { try h.put(k, "v-" + k) }
        #expect(try h.rangeResult(RangeRequest(key: b("app/2"))).kvs.map(\.key) == [b("app/2")])
        #expect(try h.rangeResult(RangeRequest(key: b("nope"))).kvs.isEmpty)
        let prefix = try h.rangeResult(.prefix(b("app/")))
        #expect(prefix.kvs.map(\.key) == [b("app/1"), b("app/2"), b("app/3")])
        #expect(prefix.count == 3)
        #expect(!prefix.more)
        #expect(prefix.revision == 7)
        let interval = try h.rangeResult(RangeRequest(key: b("app/2"), rangeEnd: b("c")))
        #expect(interval.kvs.map(\.key) == [b("app/2"), b("app/3"), b("b")])
        let all = try h.rangeResult(RangeRequest(key: [0], rangeEnd: [0]))
        #expect(all.count == 6)
        let fromB = try h.rangeResult(RangeRequest(key: b("b"), rangeEnd: [0]))
        #expect(fromB.kvs.map(\.key) == [b("b"), b("c")])
        let limited = try h.rangeResult(RangeRequest(key: b("a"), rangeEnd: [0], limit: 2))
        #expect(limited.kvs.map(\.key) == [b("a"), b("app/1")])
        #expect(limited.count == 6)
        #expect(limited.more)
        let keysOnly = try h.rangeResult(RangeRequest.prefix(b("app/"), keysOnly: true))
        #expect(keysOnly.kvs.allSatisfy { $0.value.isEmpty })
        #expect(keysOnly.kvs.first?.version == 1)
        let counted = try h.rangeResult(RangeRequest(key: b("a"), rangeEnd: [0], countOnly: true))
        #expect(counted.kvs.isEmpty)
        #expect(counted.count == 6)
    }

    @Test("prefixEnd follows etcd", arguments: [("a", "b"), ("az", "a{")])
    func prefixEnd(p: String, end: String) {
        #expect(KeyRange.prefixEnd(b(p)) == b(end))
        #expect(KeyRange.prefixEnd([0x61, 0xff]) == [0x62])
        #expect(KeyRange.prefixEnd([0xff, 0xff]) == [0])
    }

    @Test("deleteRange deletes [from, to) as one revision; empty to means to the end", arguments: StoreKind.allCases)
    func deleteRange(kind: StoreKind) throws {
        let h = try Harness(kind)
        for k in ["a", "b", "c", "d", "e"] { try h.put(k, k) }
        let applied = try h.run(.deleteRange(from: b("b"), to: b("d"), prevKV: true))
        let d = try #require(applied.response?.delete)
        #expect(d.deleted == 2)
        #expect(d.revision == 7)
        #expect(d.prevKVs.map(\.key) == [b("b"), b("c")])
        #expect(applied.events.map(\.type) == [.delete, .delete])
        #expect(applied.events.allSatisfy { $0.revision == 7 && $0.kv.modRevision == 7 })
        #expect(applied.events.map { $0.prevKV?.value } == [b("b"), b("c")])
        let rest = try #require(try h.run(.deleteRange(from: b("d"), to: [], prevKV: false)).response?.delete)
        #expect(rest.deleted == 2)
        #expect(try h.rangeResult(RangeRequest(key: [0], rangeEnd: [0])).kvs.map(\.key) == [b("a")])
    }

    @Test("limits: empty key, key and value too large are errors that still consume the index", arguments: StoreKind.allCases)
    func limits(kind: StoreKind) throws {
        let h = try Harness(kind)
        #expect(try h.put("", "x").error == .emptyKey)
        let big = String(repeating: "k", count: KVLimits.keyBytesMax + 1)
        #expect(try h.put(big, "x").error == .keyTooLarge(bytes: KVLimits.keyBytesMax + 1, limit: KVLimits.keyBytesMax))
        let maxKey = String(repeating: "k", count: KVLimits.keyBytesMax)
        #expect(try h.put(maxKey, "x").put?.revision == 2)
        let value = [UInt8](repeating: 7, count: KVLimits.valueBytesMax + 1)
        #expect(try h.run(.put(key: b("v"), value: value, lease: nil, prevKV: false)).response?.error == .valueTooLarge(bytes: value.count, limit: KVLimits.valueBytesMax))
        let maxValue = [UInt8](repeating: 7, count: KVLimits.valueBytesMax)
        let payload = CommandEnvelope(command: .put(key: b(maxKey), value: maxValue, lease: nil, prevKV: false)).encode()
        #expect(payload.count <= Limits.entryPayloadBytesMax)
        #expect(try h.run(.put(key: b(maxKey), value: maxValue, lease: nil, prevKV: false)).response?.put?.revision == 3)
        #expect(try h.sm.appliedIndex() == LogIndex(5))
        #expect(h.sm.revision == 3)
    }

    @Test("a batch applies in one store write and non-command entries get no response", arguments: StoreKind.allCases)
    func batch(kind: StoreKind) throws {
        let h = try Harness(kind)
        let e1 = h.entry(.put(key: b("a"), value: b("1"), lease: nil, prevKV: false))
        let noop = Entry(index: LogIndex(h.nextIndex), term: Term(1), kind: .noop)
        _ = h.entry(.compact(revision: 0)) // burn the index the noop uses
        let e3 = h.entry(.put(key: b("a"), value: b("2"), lease: nil, prevKV: false))
        let garbage = Entry(index: LogIndex(h.nextIndex), term: Term(1), kind: .command, payload: [9, 9, 9])
        let applied = try h.sm.apply([e1, noop, e3, garbage])
        #expect(applied.map(\.index.rawValue) == [1, 2, 3, 4])
        #expect(applied[1].response == nil)
        #expect(applied[2].response?.put?.revision == 3)
        if case .failure(.malformedCommand) = applied[3].response {} else { Issue.record("expected malformedCommand, got \(String(describing: applied[3].response))") }
        #expect(try h.sm.appliedIndex() == LogIndex(4))
        #expect(try h.sm.apply([e1, e3]).isEmpty)
        #expect(h.sm.revision == 3)
    }
}
