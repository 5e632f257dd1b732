import SynodCore
import SynodLMDB
import Testing

/// One conformance suite for `LogStore`, run against the in-memory and the LMDB implementation.
@Suite("LogStore conformance")
struct LogStoreConformanceTests {
    @Test("a new store is empty", arguments: StoreKind.allCases)
    func emptyStore(kind: StoreKind) throws {
        let t = try StoreUnderTest(kind)
        #expect(try t.s.firstIndex() == LogIndex(1))
        #expect(try t.s.lastIndex() == LogIndex(0))
        #expect(try t.s.compactedPosition() == .zero)
        #expect(try t.s.hardState() == .initial)
        #expect(try t.s.membership() == .empty)
        #expect(try t.s.term(at: .zero) == .zero)
        #expect(throws: StoreError.unavailable(requested: LogIndex(1), lastIndex: .zero)) { try t.s.term(at: LogIndex(1)) }
    }

    @Test("append a batch and read it back", arguments: StoreKind.allCases)
    func appendAndRead(kind: StoreKind) throws {
        let t = try StoreUnderTest(kind)
        let batch = entries(1...100, term: 3)
        try t.s.append(batch)
        #expect(try t.s.lastIndex() == LogIndex(100))
        #expect(try t.s.entries(from: LogIndex(1), upTo: LogIndex(101), maxBytes: .max) == batch)
        #expect(try t.s.entries(from: LogIndex(40), upTo: LogIndex(43), maxBytes: .max) == Array(batch[39..<42]))
        #expect(try t.s.term(at: LogIndex(77)) == Term(3))
        #expect(try t.s.entries(from: LogIndex(5), upTo: LogIndex(5), maxBytes: .max).isEmpty)
    }

    @Test("range reads stop at the byte limit but return at least one entry", arguments: StoreKind.allCases)
    func byteLimit(kind: StoreKind) throws {
        let t = try StoreUnderTest(kind)
        try t.s.append(entries(1...10, bytes: 90)) // 100 bytes each with the header
        #expect(try t.s.entries(from: LogIndex(1), upTo: LogIndex(11), maxBytes: 350).count == 3)
        #expect(try t.s.entries(from: LogIndex(1), upTo: LogIndex(11), maxBytes: 1).count == 1)
        #expect(try t.s.entries(from: LogIndex(1), upTo: LogIndex(11), maxBytes: 1000).count == 10)
    }

    @Test("reads past the end or below the compacted prefix are typed errors", arguments: StoreKind.allCases)
    func outOfRange(kind: StoreKind) throws {
        let t = try StoreUnderTest(kind)
        try t.s.append(entries(1...10))
        #expect(throws: StoreError.unavailable(requested: LogIndex(11), lastIndex: LogIndex(10))) {
            try t.s.entries(from: LogIndex(5), upTo: LogIndex(12), maxBytes: .max)
        }
        try t.s.deletePrefix(through: LogIndex(4))
        #expect(throws: StoreError.compacted(requested: LogIndex(3), firstAvailable: LogIndex(5))) {
            try t.s.entries(from: LogIndex(3), upTo: LogIndex(6), maxBytes: .max)
        }
        #expect(throws: StoreError.compacted(requested: LogIndex(2), firstAvailable: LogIndex(5))) { try t.s.term(at: LogIndex(2)) }
    }

    @Test("a non-contiguous append is refused and changes nothing", arguments: StoreKind.allCases)
    func nonContiguous(kind: StoreKind) throws {
        let t = try StoreUnderTest(kind)
        try t.s.append(entries(1...5))
        #expect(throws: StoreError.nonContiguous(expected: LogIndex(6), got: LogIndex(7))) { try t.s.append(entries(7...9)) }
        var gappy = entries(6...8)
        gappy[2].index = LogIndex(9)
        let hs = HardState(term: Term(9), vote: NodeID(2), commit: LogIndex(6))
        #expect(throws: StoreError.nonContiguous(expected: LogIndex(8), got: LogIndex(9))) {
            try t.s.write(LogWrite(entries: gappy, hardState: hs))
        }
        #expect(try t.s.lastIndex() == LogIndex(5))
        #expect(try t.s.hardState() == .initial, "a refused batch must not write its hard state either")
    }

    @Test("truncate a conflicting suffix and append in one write", arguments: StoreKind.allCases)
    func truncateAndAppend(kind: StoreKind) throws {
        let t = try StoreUnderTest(kind)
        try t.s.append(entries(1...10, term: 1))
        let replacement = entries(6...8, term: 2)
        try t.s.write(LogWrite(truncateFrom: LogIndex(6), entries: replacement, hardState: HardState(term: Term(2), vote: NodeID(3), commit: LogIndex(5))))
        #expect(try t.s.lastIndex() == LogIndex(8))
        #expect(try t.s.term(at: LogIndex(5)) == Term(1))
        #expect(try t.s.term(at: LogIndex(6)) == Term(2))
        #expect(try t.s.entries(from: LogIndex(6), upTo: LogIndex(9), maxBytes: .max) == replacement)
        #expect(try t.s.hardState() == HardState(term: Term(2), vote: NodeID(3), commit: LogIndex(5)))
        try t.s.truncateSuffix(from: LogIndex(3))
        #expect(try t.s.lastIndex() == LogIndex(2))
        try t.s.truncateSuffix(from: LogIndex(50)) // past the end: nothing to do
        #expect(try t.s.lastIndex() == LogIndex(2))
    }

    @Test("hard state and membership are written with the entries", arguments: StoreKind.allCases)
    func hardStateAndMembership(kind: StoreKind) throws {
        let t = try StoreUnderTest(kind)
        let m = try Membership(voters: [NodeID(3), NodeID(1), NodeID(2)], outgoingVoters: [NodeID(1)], learners: [NodeID(9)])
        let hs = HardState(term: Term(4), vote: NodeID(2), commit: LogIndex(1))
        try t.s.write(LogWrite(entries: entries(1...2), hardState: hs, membership: m))
        #expect(try t.s.hardState() == hs)
        #expect(try t.s.membership() == m)
        #expect(try t.s.membership().voters == [NodeID(1), NodeID(2), NodeID(3)])
    }

    @Test("deleting a prefix keeps the boundary term and continues the log", arguments: StoreKind.allCases)
    func compaction(kind: StoreKind) throws {
        let t = try StoreUnderTest(kind)
        try t.s.append(entries(1...50, term: 2))
        try t.s.deletePrefix(through: LogIndex(30))
        #expect(try t.s.firstIndex() == LogIndex(31))
        #expect(try t.s.lastIndex() == LogIndex(50))
        #expect(try t.s.compactedPosition() == LogPosition(index: LogIndex(30), term: Term(2)))
        #expect(try t.s.term(at: LogIndex(30)) == Term(2))
        try t.s.deletePrefix(through: LogIndex(10)) // already compacted: no-op
        #expect(try t.s.firstIndex() == LogIndex(31))
        #expect(throws: StoreError.unavailable(requested: LogIndex(51), lastIndex: LogIndex(50))) { try t.s.deletePrefix(through: LogIndex(51)) }
        try t.s.deletePrefix(through: LogIndex(50)) // everything
        #expect(try t.s.lastIndex() == LogIndex(50))
        #expect(try t.s.firstIndex() == LogIndex(51))
        try t.s.append(entries(51...52, term: 3))
        #expect(try t.s.entries(from: LogIndex(51), upTo: LogIndex(53), maxBytes: .max).count == 2)
        #expect(throws: StoreError.compacted(requested: LogIndex(50), firstAvailable: LogIndex(51))) { try t.s.truncateSuffix(from: LogIndex(50)) }
    }

    @Test("reset discards the log for a snapshot position", arguments: StoreKind.allCases)
    func reset(kind: StoreKind) throws {
        let t = try StoreUnderTest(kind)
        try t.s.append(entries(1...20))
        try t.s.reset(to: LogPosition(index: LogIndex(100), term: Term(7)))
        #expect(try t.s.firstIndex() == LogIndex(101))
        #expect(try t.s.lastIndex() == LogIndex(100))
        #expect(try t.s.term(at: LogIndex(100)) == Term(7))
        try t.s.append(entries(101...101, term: 7))
        #expect(try t.s.lastIndex() == LogIndex(101))
    }

    /// Random operations against both implementations must give identical observations.
    @Test("LMDB and memory agree on random operation sequences", arguments: [1, 2, 3, 4, 5] as [UInt64])
    func differential(seed: UInt64) throws {
        let a = try StoreUnderTest(.memory), b = try StoreUnderTest(.lmdb)
        var rng = SeededRandom(seed: seed)
        var term: UInt64 = 1
        for step in 0..<300 {
            let last = try a.s.lastIndex().rawValue
            let first = try a.s.firstIndex().rawValue
            var batch = LogWrite()
            switch rng.int(in: 0...9) {
            case 0...5:
                let n = UInt64(rng.int(in: 1...20))
                batch.entries = entries((last + 1)...(last + n), term: term, bytes: rng.int(in: 0...300))
            case 6:
                if last >= first {
                    let from = UInt64(rng.int(in: Int(first)...Int(last)))
                    term += 1
                    batch.truncateFrom = LogIndex(from)
                    batch.entries = entries(from...(from + UInt64(rng.int(in: 0...5))), term: term)
                }
            case 7:
                if last >= first {
                    let upTo = LogIndex(UInt64(rng.int(in: Int(first)...Int(last))))
                    try a.s.deletePrefix(through: upTo)
                    try b.s.deletePrefix(through: upTo)
                }
            default:
                batch.hardState = HardState(term: Term(term), vote: NodeID(UInt64(step % 3)), commit: LogIndex(last))
            }
            if !batch.isEmpty {
                try a.s.write(batch)
                try b.s.write(batch)
            }
            #expect(try a.s.firstIndex() == b.s.firstIndex())
            #expect(try a.s.lastIndex() == b.s.lastIndex())
            #expect(try a.s.hardState() == b.s.hardState())
            let f = try a.s.firstIndex(), l = try a.s.lastIndex()
            if f <= l {
                let maxBytes = rng.int(in: 1...4000)
                #expect(try a.s.entries(from: f, upTo: l.next, maxBytes: maxBytes) == b.s.entries(from: f, upTo: l.next, maxBytes: maxBytes))
            }
        }
    }
}
