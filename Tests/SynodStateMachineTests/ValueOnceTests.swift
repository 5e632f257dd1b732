import SynodCore
@testable import SynodStateMachine
import Testing

/// Values are stored once: the `kv` record holds metadata and a pointer into `revisions`.
@Suite("Values stored once: the kv table points into history")
struct ValueOnceTests {
    /// Writes raw table records in one apply step (as damaged or older files would hold them).
    static func writeRaw(_ h: Harness, _ body: (any StateWriter) throws -> Void) throws {
        let index = h.entry(.compact(revision: 0)).index   // reserves the index; never applied
        try h.store.apply(through: index) { w in try body(w) }
    }

    @Test("a kv record carries no value; reads, prevKV answers and history still do", arguments: StoreKind.allCases)
    func storedOnce(kind: StoreKind) throws {
        let h = try Harness(kind)
        try h.put("k", "first")
        try h.put("k", "second")
        let raw = try h.store.read { r in try r.get(Tables.kv, b("k")) }
        #expect(raw?.count == 37, "format byte, revisions, sub-revision, version, lease — no value")
        #expect(try h.get("k")?.value == b("second"))
        #expect(try h.put("k", "third", prevKV: true).put?.prevKV?.value == b("second"))
        let deleted = try h.run(.delete(key: b("k"), prevKV: true)).response?.delete
        #expect(deleted?.prevKVs.map(\.value) == [b("third")])
        let events = try h.sm.history(from: 1, key: b("k"), rangeEnd: [], limit: 0)
        #expect(events.map { $0.type == .put ? $0.kv.value : [] } == [b("first"), b("second"), b("third"), []])
        #expect(events.last?.prevKV?.value == b("third"))
    }

    @Test("format-1 records, which carried the value, still read and update", arguments: StoreKind.allCases)
    func legacyRecords(kind: StoreKind) throws {
        let h = try Harness(kind)
        try h.put("other", "x")   // revision 2
        var w = ByteWriter()
        w.u8(StoredKV.inlineValueFormat)
        for v: Int64 in [2, 2] { w.i64(v) }
        w.u32(0)
        w.i64(1)
        w.u64(0)
        w.raw(b("legacy"))
        let record = w.bytes
        try Self.writeRaw(h) { try $0.put(Tables.kv, b("old"), record) }
        #expect(try h.get("old")?.value == b("legacy"))
        #expect(try h.put("old", "new", prevKV: true).put?.prevKV?.value == b("legacy"))
        #expect(try h.get("old")?.value == b("new"))
        #expect(try h.get("old")?.version == 2)
    }

    @Test("events carry previous values only when asked; responses always", arguments: StoreKind.allCases)
    func eventPrevValues(kind: StoreKind) throws {
        let h = try Harness(kind)
        try h.put("k", "a")
        h.sm.prevValuesInEvents = false
        let quiet = try h.run(.put(key: b("k"), value: b("b"), lease: nil, prevKV: false))
        #expect(quiet.events.first?.prevKV?.value == [])
        #expect(quiet.events.first?.prevKV?.version == 1)
        #expect(try h.put("k", "c", prevKV: true).put?.prevKV?.value == b("b"))
        h.sm.prevValuesInEvents = true
        #expect(try h.run(.put(key: b("k"), value: b("d"), lease: nil, prevKV: false)).events.first?.prevKV?.value == b("c"))
    }

    @Test("a kv record pointing at a revision history lacks is reported as corrupt, not trusted", arguments: StoreKind.allCases)
    func danglingPointer(kind: StoreKind) throws {
        let h = try Harness(kind)
        try h.put("k", "v")
        try Self.writeRaw(h) { try $0.put(Tables.kv, b("k"), StoredKV(kv: KeyValue(key: b("k"), value: [], createRevision: 2, modRevision: 99, version: 1), modSub: 0).encode()) }
        #expect(throws: StoreError.self) { _ = try h.get("k") }
    }

    @Test("a range's byte budget counts the values it reads from history", arguments: StoreKind.allCases)
    func rangeBudget(kind: StoreKind) throws {
        let h = try Harness(kind)
        let big = [UInt8](repeating: 7, count: KVLimits.valueBytesMax)
        for i in 0..<10 { try h.run(.put(key: b("big\(i)"), value: big, lease: nil, prevKV: false)) }
        let r = try h.rangeResult(RangeRequest(key: b("big"), rangeEnd: b("bih")))
        #expect(r.count == 10)
        #expect(r.more)
        #expect(!r.kvs.isEmpty && r.kvs.count < 10)
        #expect(r.kvs.reduce(0) { $0 + $1.key.count + $1.value.count } <= KVLimits.rangeResponseBytesMax)
        #expect(r.kvs.allSatisfy { $0.value == big })
    }
}
