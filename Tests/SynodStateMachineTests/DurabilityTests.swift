import SynodCore
import SynodLMDB
@testable import SynodStateMachine
import Testing

/// A fixed workload touching every command.
func workload(_ h: Harness) throws -> [Entry] {
    var out: [Entry] = []
    func add(_ c: Command, _ s: ClientSession? = nil) { out.append(h.entry(c, session: s)) }
    add(.leaseGrant(id: LeaseID(5), ttlMillis: 3_000))
    for i in 0..<40 { add(.put(key: b("key/\(i % 13)"), value: b("value-\(i)"), lease: i % 5 == 0 ? LeaseID(5) : nil, prevKV: i % 2 == 0), ClientSession(clientID: UInt64(i % 3), sequence: UInt64(i))) }
    add(.txn(Txn(compares: [Compare(key: b("key/1"), .greater, .version(1))],
                 success: [.put(key: b("t"), value: b("s"), lease: nil, prevKV: false), .deleteRange(from: b("key/2"), to: b("key/4"), prevKV: true)],
                 failure: [.put(key: b("t"), value: b("f"), lease: nil, prevKV: false)])))
    add(.delete(key: b("key/7"), prevKV: true))
    add(.compact(revision: 20))
    add(.leaseExpire(ids: [LeaseID(5)]))
    add(.deleteRange(from: b("key/8"), to: [], prevKV: false))
    for i in 0..<10 { add(.put(key: b("after/\(i)"), value: b("\(i)"), lease: nil, prevKV: false)) }
    return out
}

/// Answers that must be identical between two state machines with the same history.
func answers(_ sm: KVStateMachine) throws -> [Response] {
    var out: [Response] = []
    out.append(try sm.range(RangeRequest(key: [0], rangeEnd: [0])))
    out.append(try sm.range(RangeRequest.prefix(b("key/"), limit: 3, keysOnly: true)))
    out.append(try sm.range(RangeRequest(key: [0], rangeEnd: [0], revision: sm.revision - 5)))
    out.append(.range(RangeResult(revision: sm.revision, kvs: [], count: sm.compactedRevision, more: false)))
    let events = try sm.history(from: sm.compactedRevision, key: [0], rangeEnd: [0], limit: 0)
    out.append(.delete(DeleteResult(revision: 0, deleted: Int64(events.count), prevKVs: events.map(\.kv) + events.compactMap(\.prevKV))))
    return out
}

@Suite("Restart, snapshots, determinism")
struct DurabilityTests {
    @Test("after a restart state and revision survive and re-applying applied entries is a no-op", arguments: StoreKind.allCases)
    func restart(kind: StoreKind) throws {
        let h = try Harness(kind)
        let entries = try workload(h)
        let results = try h.sm.apply(entries)
        #expect(results.count == entries.count)
        let before = try answers(h.sm)
        let (revision, compacted) = (h.sm.revision, h.sm.compactedRevision)
        let snap = try snapshotBytes(h.store).bytes
        try h.restart()
        #expect(h.sm.revision == revision)
        #expect(h.sm.compactedRevision == compacted)
        #expect(try answers(h.sm) == before)
        #expect(try h.sm.apply(entries).isEmpty)
        #expect(try h.sm.apply(Array(entries.suffix(3))).isEmpty)
        #expect(try snapshotBytes(h.store).bytes == snap)
        #expect(try h.sm.appliedIndex() == entries.last!.index)
        // And it keeps going from where it was.
        #expect(try h.put("next", "1").put?.revision == revision + 1)
    }

    @Test("a snapshot installed into a fresh store reproduces identical answers",
          arguments: [(StoreKind.memory, StoreKind.lmdb), (.lmdb, .memory), (.lmdb, .lmdb), (.memory, .memory)])
    func snapshot(from: StoreKind, to: StoreKind) throws {
        let source = try Harness(from)
        _ = try source.sm.apply(try workload(source))
        let (bytes, chunks) = try snapshotBytes(source.store)
        #expect(chunks.count > 1)
        let target = try Harness(to)
        try target.store.installSnapshot(appliedIndex: try source.sm.appliedIndex(), chunks: chunks)
        try target.sm.reload()
        #expect(target.sm.revision == source.sm.revision)
        #expect(target.sm.compactedRevision == source.sm.compactedRevision)
        #expect(try answers(target.sm) == answers(source.sm))
        #expect(try snapshotBytes(target.store).bytes == bytes)
        #expect(try target.sm.leases().map(\.0) == source.sm.leases().map(\.0))
    }

    @Test("the same commands give byte-identical snapshot streams, in one batch or one by one, on both stores")
    func determinism() throws {
        var streams: [[UInt8]] = []
        var responses: [[Response?]] = []
        for kind in StoreKind.allCases {
            for batched in [true, false] {
                let h = try Harness(kind)
                let entries = try workload(h)
                let applied = batched ? try h.sm.apply(entries) : try entries.flatMap { try h.sm.apply([$0]) }
                responses.append(applied.map(\.response))
                streams.append(try snapshotBytes(h.store).bytes)
            }
        }
        #expect(Set(streams).count == 1)
        #expect(responses.allSatisfy { $0 == responses[0] })
    }

    @Test("when LMDB grows its map mid-batch and re-runs the apply body, results and state are as on MemoryStore")
    func mapGrowthRetry() throws {
        var options = LMDBOptions()
        options.mapSizeBytes = 256 << 10
        let small = try Harness(.lmdb, options: options)
        let memory = try Harness(.memory)
        func batch(_ h: Harness) -> [Entry] {
            (0..<200).map { i in h.entry(.put(key: b("big/\(i % 50)"), value: [UInt8](repeating: UInt8(i % 251), count: 8_000), lease: nil, prevKV: true)) }
        }
        let grownBefore = (small.store as! LMDBStore).environment.mapGrowthCount
        let a = try small.sm.apply(batch(small))
        let m = try memory.sm.apply(batch(memory))
        #expect((small.store as! LMDBStore).environment.mapGrowthCount > grownBefore)
        #expect(a == m)
        #expect(a.count == 200)
        #expect(small.sm.revision == 201)
        #expect(try snapshotBytes(small.store).bytes == snapshotBytes(memory.store).bytes)
    }

    @Test("a store opened without the KV tables is refused")
    func missingTables() {
        #expect(throws: StoreError.self) { try KVStateMachine(store: MemoryStore(tables: [StateTable("kv")])) }
    }
}
