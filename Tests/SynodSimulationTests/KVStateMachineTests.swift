import SynodCore
import SynodSimulation
import Testing

/// Client sessions (dissertation §6.3): a retried command is applied once.
@Suite struct KVStateMachineTests {
    func entry(_ i: UInt64, _ cmd: KVCommand) -> Entry {
        Entry(index: LogIndex(i), term: Term(1), payload: cmd.encode())
    }

    @Test func section6_3_retriedCommandAppliesOnceAndReturnsCachedResult() {
        var sm = KVStateMachine(keys: 2)
        let cas = KVCommand(client: 1, seq: 1, op: .compareAndSwap(key: 0, expected: nil, new: 5))
        #expect(sm.apply(entry(1, cas))?.1 == .swapped(true))
        // Someone else changes the key, then the retry of the same command arrives.
        #expect(sm.apply(entry(2, KVCommand(client: 2, seq: 1, op: .delete(key: 0))))?.1 == .deleted(existed: true))
        #expect(sm.apply(entry(3, cas))?.1 == .swapped(true), "cached result, not re-executed")
        #expect(sm.get(0) == nil)
        #expect(sm.apply(entry(4, KVCommand(client: 1, seq: 0, op: .put(key: 1, value: 1))))?.1 == .staleSession)
        #expect(sm.get(1) == nil)
    }

    @Test func snapshotRoundTrips() throws {
        var sm = KVStateMachine(keys: 3)
        _ = sm.apply(entry(1, KVCommand(client: 1, seq: 1, op: .put(key: 2, value: 9))))
        _ = sm.apply(Entry(index: LogIndex(2), term: Term(1), kind: .noop))
        let copy = try KVStateMachine.decode(sm.encode())
        #expect(copy == sm)
        #expect(throws: DecodeError.self) { _ = try KVStateMachine.decode([1, 2, 3]) }
    }
}
