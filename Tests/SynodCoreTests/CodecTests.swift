import SynodCore
import SynodTestSupport
import Testing

@Suite("Encodings")
struct CodecTests {
    @Test("entries, hard state, membership and checkpoints round-trip")
    func roundTrips() throws {
        let e = Entry(index: LogIndex(7), term: Term(3), kind: .configuration, payload: [1, 2, 3])
        var w = ByteWriter()
        e.encodeValue(into: &w)
        #expect(w.bytes.count == e.sizeBytes)
        #expect(try Entry.decodeValue(index: LogIndex(7), bytes: w.bytes) == e)
        var direct = [UInt8](repeating: 0, count: e.sizeBytes)
        direct.withUnsafeMutableBytes { e.encodeValue(to: $0) }
        #expect(direct == w.bytes, "the in-place encoder must match the writer")

        let hs = HardState(term: Term(9), vote: NodeID(2), commit: LogIndex(100))
        #expect(try HardState.decode(hs.encode()) == hs)

        let m = try Membership(voters: [NodeID(5), NodeID(1)], outgoingVoters: [NodeID(1), NodeID(2)], learners: [NodeID(8)])
        #expect(try Membership.decode(m.encode()) == m)

        let c = Checkpoint(position: LogPosition(index: LogIndex(50), term: Term(4)), stateDigest: [UInt8](repeating: 7, count: 32), membership: m, proof: [9, 9])
        #expect(try Checkpoint.decode(c.encode()) == c)
    }

    @Test("index keys sort numerically as bytes")
    func indexKeyOrder() throws {
        var rng = SeededRandom(seed: 3)
        for _ in 0..<1000 {
            let a = rng.next() >> UInt64(rng.int(in: 0...63)), b = rng.next() >> UInt64(rng.int(in: 0...63))
            #expect((a < b) == IndexKey.encode(a).lexicographicallyPrecedes(IndexKey.encode(b)))
            #expect(try IndexKey.decode(IndexKey.encode(a)) == a)
        }
        #expect(throws: DecodeError.self) { try IndexKey.decode([1, 2, 3]) }
    }

    @Test("specific bad inputs give specific errors")
    func badInputs() {
        #expect(throws: DecodeError.unknownValue(what: "entry version", value: 2)) { try Entry.decodeValue(index: LogIndex(1), bytes: [2, 1, 0, 0, 0, 0, 0, 0, 0, 0]) }
        #expect(throws: DecodeError.unknownValue(what: "entry kind", value: 9)) { try Entry.decodeValue(index: LogIndex(1), bytes: [1, 9, 0, 0, 0, 0, 0, 0, 0, 0]) }
        #expect(throws: DecodeError.truncated(what: "entry header", needed: 7)) { try Entry.decodeValue(index: LogIndex(1), bytes: [1, 1, 0]) }
        #expect(throws: DecodeError.trailingBytes(count: 1)) { try HardState.decode(HardState.initial.encode() + [0]) }
        // A count field claiming 2^32-1 members must be refused before anything is allocated.
        #expect(throws: DecodeError.lengthTooLarge(what: "voters", length: Int(UInt32.max), limit: Limits.membersMax)) {
            try Membership.decode([1, 0xFF, 0xFF, 0xFF, 0xFF])
        }
        // A node both voter and learner is not a membership.
        var w = ByteWriter()
        w.u8(1); w.ids([NodeID(1)]); w.ids([]); w.ids([NodeID(1)])
        #expect(throws: DecodeError.self) { try Membership.decode(w.bytes) }
    }
}

/// Random and mutated inputs for every decoder in SynodCore: each must return a value or a typed
/// `DecodeError`, never trap. (A trap would end the test process, failing the run.)
@Suite("Decoder fuzzing")
struct DecoderFuzzTests {
    static func samples() throws -> [[UInt8]] {
        let m = try Membership(voters: [NodeID(1), NodeID(2), NodeID(3)], learners: [NodeID(4)])
        var w = ByteWriter()
        Entry(index: LogIndex(1), term: Term(2), payload: [1, 2, 3, 4]).encodeValue(into: &w)
        return [
            w.bytes,
            HardState(term: Term(3), vote: NodeID(1), commit: LogIndex(4)).encode(),
            m.encode(),
            Checkpoint(position: LogPosition(index: LogIndex(9), term: Term(1)), stateDigest: [1, 2], membership: m, proof: [3]).encode(),
        ]
    }

    static func decodeAll(_ bytes: [UInt8]) {
        _ = try? Entry.decodeValue(index: LogIndex(1), bytes: bytes)
        _ = try? HardState.decode(bytes)
        _ = try? Membership.decode(bytes)
        _ = try? Checkpoint.decode(bytes)
        _ = try? IndexKey.decode(bytes)
        _ = try? SnapshotRecords.decode(SnapshotChunk(sequence: 0, records: bytes, isLast: true), tableCount: 3) { _, _, _ in }
    }

    @Test("random bytes", arguments: 0..<4)
    func randomBytes(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        Fuzzing.randomInputs(count: 5000, lengthMax: 80, &rng, Self.decodeAll)
    }

    @Test("mutated valid encodings", arguments: 0..<4)
    func mutated(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        Fuzzing.mutations(of: try Self.samples(), count: 5000, &rng, Self.decodeAll)
    }
}
