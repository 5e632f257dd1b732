import CLMDB
import Foundation
import SynodCore
import SynodLMDB
import Testing

/// The node applies committed entries in a write transaction it holds open until the next log
/// write (`LMDBStore.write(_:binding:hold:_:)`). These pin down what that promises.
@Suite("Held write transactions")
struct HeldWriteTests {
    private func open(_ dir: String, mapBytes: Int = 256 << 20) throws -> (LMDBStore, LMDBCombinedStateStore) {
        var options = LMDBOptions()
        options.mapSizeBytes = mapBytes
        let s = try LMDBStore(directory: dir, tables: [kvTable], options: options)
        return (s, LMDBCombinedStateStore(s))
    }

    private func applyPut(_ state: LMDBCombinedStateStore, _ index: UInt64, _ key: String, bytes: Int = 8) throws {
        try state.apply(through: LogIndex(index)) { w in try w.put(kvTable, Array(key.utf8), Array(repeating: 7, count: bytes)) }
    }

    @Test("held applies are visible through the state store, invisible to other readers, and commit with the next log write")
    func foldIntoNextLogWrite() throws {
        let dir = scratchDirectory("held")
        defer { removeDirectory(dir) }
        let (s, state) = try open(dir)
        try s.write(LogWrite(entries: entries(1...2)), binding: state) { _ in }
        try s.write(LogWrite(hardState: HardState(term: Term(1), commit: LogIndex(1))), binding: state, hold: true) { _ in
            try applyPut(state, 1, "a")
        }
        #expect(s.environment.heldTransaction != nil)
        #expect(try state.appliedIndex() == LogIndex(1))
        #expect(try state.read { try $0.get(kvTable, Array("a".utf8)) } != nil)
        #expect(try s.appliedIndex() == .zero, "a plain read sees only committed state")
        try s.write(LogWrite(entries: entries(3...3)), binding: state) { _ in }
        #expect(s.environment.heldTransaction == nil)
        #expect(try s.appliedIndex() == LogIndex(1))
        #expect(try s.hardState().commit == LogIndex(1))
        #expect(try s.lastIndex() == LogIndex(3))
    }

    @Test("a crash loses held applies but nothing committed")
    func crashLosesOnlyHeldWork() throws {
        let dir = scratchDirectory("heldcrash")
        defer { removeDirectory(dir) }
        do {
            let (s, state) = try open(dir)
            try s.write(LogWrite(entries: entries(1...2)), binding: state) { _ in }
            try s.write(LogWrite(), binding: state, hold: true) { _ in try applyPut(state, 1, "a") }
            // Dropping the store without committing is what a crash leaves on disk.
        }
        let (s, _) = try open(dir)
        #expect(try s.lastIndex() == LogIndex(2))
        #expect(try s.appliedIndex() == .zero)
        #expect(try s.read { try $0.get(kvTable, Array("a".utf8)) } == nil)
    }

    @Test("a plain write commits held applies first; commitHeld without meta sync persists them")
    func plainWriteAndCommitHeld() throws {
        let dir = scratchDirectory("heldplain")
        defer { removeDirectory(dir) }
        do {
            let (s, state) = try open(dir)
            try s.write(LogWrite(entries: entries(1...3)), binding: state) { _ in }
            try s.write(LogWrite(), binding: state, hold: true) { _ in try applyPut(state, 1, "a") }
            try s.saveSnapshot(Checkpoint(position: LogPosition(index: LogIndex(1), term: Term(1)), stateDigest: [], membership: try Membership(voters: [NodeID(1)])), data: [1])
            #expect(s.environment.heldTransaction == nil)
            #expect(try s.appliedIndex() == LogIndex(1))
            try s.write(LogWrite(), binding: state, hold: true) { _ in try applyPut(state, 2, "b") }
            try s.environment.commitHeld(metaSync: false)
            #expect(s.environment.heldTransaction == nil)
        }
        let (s, _) = try open(dir)
        #expect(try s.appliedIndex() == LogIndex(2))
    }

    @Test("map growth rolls a held transaction back and re-runs the body with isRetry, which redoes the held work")
    func growthRedoesHeldWork() throws {
        let dir = scratchDirectory("heldgrow")
        defer { removeDirectory(dir) }
        let (s, state) = try open(dir, mapBytes: 1 << 20)
        try s.write(LogWrite(entries: entries(1...1)), binding: state) { _ in }
        // Held: a few small applies.
        var held: [UInt64] = []
        for i: UInt64 in 1...3 {
            try s.write(LogWrite(), binding: state, hold: true) { isRetry in
                #expect(!isRetry)
                try applyPut(state, i, "h\(i)")
            }
            held.append(i)
        }
        // Then a log write far larger than the map: growth aborts the held transaction too.
        var retries = 0
        try s.write(LogWrite(entries: entries(2...3000, bytes: 1000)), binding: state) { isRetry in
            if isRetry {
                retries += 1
                for i in held { try applyPut(state, i, "h\(i)") }
            }
        }
        #expect(retries > 0)
        #expect(s.environment.mapGrowthCount > 0)
        #expect(try s.appliedIndex() == LogIndex(3))
        for i in held { #expect(try s.read { try $0.get(kvTable, Array("h\(i)".utf8)) } != nil) }
        #expect(try s.lastIndex() == LogIndex(3000))
    }

    @Test("without the redo, a growth would lose held applies: the retry flag is what prevents it")
    func growthWithoutRedoLosesHeldWork() throws {
        let dir = scratchDirectory("heldgrowbug")
        defer { removeDirectory(dir) }
        let (s, state) = try open(dir, mapBytes: 1 << 20)
        try s.write(LogWrite(entries: entries(1...1)), binding: state) { _ in }
        try s.write(LogWrite(), binding: state, hold: true) { _ in try applyPut(state, 1, "h1") }
        try s.write(LogWrite(entries: entries(2...3000, bytes: 1000)), binding: state) { _ in }
        #expect(try s.appliedIndex() == .zero)
        #expect(try s.read { try $0.get(kvTable, Array("h1".utf8)) } == nil)
    }
}
