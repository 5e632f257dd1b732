import SynodCore
@testable import SynodStateMachine
import Testing

/// What `synod hashkv` hashes: the history at or below a revision, which later writes never change.
@Suite("KV hash input")
struct HashInputTests {
    func input(_ h: Harness, _ revision: Int64) throws -> ([[UInt8]], KVHashPoint) {
        var records: [[UInt8]] = []
        let point = try KVStateMachine.hashInput(h.store, revision: revision) { k, v in records.append(k + v) }
        return (records, point)
    }

    @Test("the input at a revision is unchanged by later writes; compacted and future revisions are refused", arguments: StoreKind.allCases)
    func stableAtARevision(_ kind: StoreKind) throws {
        let h = try Harness(kind)
        for i in 0..<10 { try h.put("k\(i % 3)", "\(i)") }
        let at = h.sm.revision
        let (before, point) = try input(h, at)
        #expect(point == KVHashPoint(revision: at, compactedRevision: 0))
        #expect(before.count == 10)
        for i in 0..<5 { try h.put("k\(i)", "later") }
        #expect(try input(h, at).0 == before)
        #expect(try input(h, 0).1.revision == h.sm.revision, "0 means the current revision")
        #expect(throws: KVError.futureRevision(requested: h.sm.revision + 1, current: h.sm.revision)) { try input(h, h.sm.revision + 1) }
        _ = try h.run(.compact(revision: 5))
        #expect(throws: KVError.compacted(requested: 4, oldestAvailable: 5)) { try input(h, 4) }
    }
}
