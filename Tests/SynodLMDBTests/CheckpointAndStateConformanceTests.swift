import SynodCore
import SynodLMDB
import Testing

@Suite("CheckpointStore and StateStore conformance")
struct CheckpointAndStateConformanceTests {
    static func checkpoint(_ i: UInt64) throws -> Checkpoint {
        Checkpoint(position: LogPosition(index: LogIndex(i), term: Term(2)), stateDigest: Array(repeating: UInt8(truncatingIfNeeded: i), count: 32),
                   membership: try Membership(voters: [NodeID(1), NodeID(2), NodeID(3)]), proof: [1, 2, 3, UInt8(truncatingIfNeeded: i)])
    }

    @Test("checkpoints are saved, listed, found and garbage-collected", arguments: StoreKind.allCases)
    func checkpoints(kind: StoreKind) throws {
        let t = try StoreUnderTest(kind)
        #expect(try t.s.latestCheckpoint() == nil)
        for i: UInt64 in [100, 300, 200] { try t.s.saveCheckpoint(try Self.checkpoint(i)) }
        #expect(try t.s.checkpointIndexes() == [LogIndex(100), LogIndex(200), LogIndex(300)])
        #expect(try t.s.latestCheckpoint() == Self.checkpoint(300))
        #expect(try t.s.checkpoint(at: LogIndex(200)) == Self.checkpoint(200))
        #expect(try t.s.checkpoint(at: LogIndex(201)) == nil)
        try t.s.deleteCheckpoints(below: LogIndex(300))
        #expect(try t.s.checkpointIndexes() == [LogIndex(300)])
        var big = try Self.checkpoint(400)
        big.proof = Array(repeating: 0, count: Limits.checkpointProofBytesMax + 1)
        #expect(throws: StoreError.self) { try t.s.saveCheckpoint(big) }
    }

    @Test("apply writes tables and the applied index together", arguments: StoreKind.allCases)
    func apply(kind: StoreKind) throws {
        let t = try StoreUnderTest(kind)
        try t.s.apply(through: LogIndex(5)) { w in
            try w.put(kvTable, Array("b".utf8), [2])
            try w.put(kvTable, Array("a".utf8), [1])
            try w.put(leaseTable, [7], [7])
        }
        #expect(try t.s.appliedIndex() == LogIndex(5))
        try t.s.read { r in
            #expect(try r.get(kvTable, Array("a".utf8)) == [1])
            #expect(try r.get(kvTable, Array("zz".utf8)) == nil)
            var keys: [[UInt8]] = []
            try r.scan(kvTable, from: [], limit: 10) { k, _ in keys.append(k); return true }
            #expect(keys == [Array("a".utf8), Array("b".utf8)])
        }
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try t.s.apply(through: LogIndex(6)) { w in
                try w.delete(kvTable, Array("a".utf8))
                throw Boom()
            }
        }
        #expect(try t.s.appliedIndex() == LogIndex(5), "a failed apply must not move the applied index")
        #expect(try t.s.read { r in try r.get(kvTable, Array("a".utf8)) } == [1], "nor change the tables")
        #expect(throws: StoreError.self) { try t.s.apply(through: LogIndex(5)) { _ in } }
        #expect(throws: StoreError.self) { try t.s.apply(through: LogIndex(9)) { w in try w.put(kvTable, [], [1]) } }
    }

    @Test("scan honours start key and limit", arguments: StoreKind.allCases)
    func scan(kind: StoreKind) throws {
        let t = try StoreUnderTest(kind)
        try t.s.apply(through: LogIndex(1)) { w in for i: UInt8 in 0..<50 { try w.put(kvTable, [i], [i]) } }
        try t.s.read { r in
            var seen: [UInt8] = []
            try r.scan(kvTable, from: [10], limit: 5) { k, _ in seen.append(k[0]); return true }
            #expect(seen == [10, 11, 12, 13, 14])
            seen = []
            try r.scan(kvTable, from: [48], limit: 100) { k, _ in seen.append(k[0]); return true }
            #expect(seen == [48, 49])
        }
    }

    /// Streams a snapshot from each kind and installs it into each kind: all four pairs agree.
    @Test("snapshots stream in chunks and install across implementations",
          arguments: StoreKind.allCases, StoreKind.allCases)
    func snapshotRoundTrip(from: StoreKind, to: StoreKind) throws {
        let source = try StoreUnderTest(from), target = try StoreUnderTest(to)
        try source.s.apply(through: LogIndex(42)) { w in
            for i in 0..<500 { try w.put(kvTable, Array("key-\(i)".utf8), Array(repeating: UInt8(i % 251), count: i % 97)) }
            try w.put(leaseTable, [1], [9, 9])
        }
        try target.s.apply(through: LogIndex(3)) { w in try w.put(kvTable, Array("stale".utf8), [0]) }
        var chunks: [SnapshotChunk] = []
        let manifest = try source.s.streamSnapshot(chunkBytesMax: 2048) { chunks.append($0) }
        #expect(manifest.recordCount == 501)
        #expect(manifest.appliedIndex == LogIndex(42))
        #expect(chunks.count == manifest.chunkCount)
        #expect(chunks.count > 5)
        #expect(chunks.last?.isLast == true)
        try target.s.installSnapshot(appliedIndex: manifest.appliedIndex, chunks: chunks)
        #expect(try target.s.appliedIndex() == LogIndex(42))
        var again: [SnapshotChunk] = []
        _ = try target.s.streamSnapshot(chunkBytesMax: 2048) { again.append($0) }
        #expect(again == chunks, "the installed state must stream out byte-identical")
        #expect(try target.s.read { r in try r.get(kvTable, Array("stale".utf8)) } == nil)
    }

    @Test("a snapshot with a gap, a bad record or no last chunk changes nothing", arguments: StoreKind.allCases)
    func badSnapshot(kind: StoreKind) throws {
        let source = try StoreUnderTest(.memory), target = try StoreUnderTest(kind)
        try source.s.apply(through: LogIndex(9)) { w in for i: UInt8 in 0..<100 { try w.put(kvTable, [i], Array(repeating: i, count: 50)) } }
        try target.s.apply(through: LogIndex(2)) { w in try w.put(kvTable, [200], [1]) }
        var chunks: [SnapshotChunk] = []
        _ = try source.s.streamSnapshot(chunkBytesMax: 512) { chunks.append($0) }
        var gap = chunks
        gap.remove(at: 1)
        var truncated = chunks
        truncated.removeLast()
        var garbage = chunks
        garbage[0].records = [0, 255, 255, 255, 255]
        var badTable = chunks
        badTable[0].records[0] = 77
        for bad in [gap, truncated, garbage, badTable] {
            #expect(throws: StoreError.self) { try target.s.installSnapshot(appliedIndex: LogIndex(9), chunks: bad) }
            #expect(try target.s.appliedIndex() == LogIndex(2))
            #expect(try target.s.read { r in try r.get(kvTable, [200]) } == [1])
        }
    }
}
