import SynodSimulation
import Testing

/// The checker itself, on hand-written histories (Wing & Gong / Lowe).
@Suite struct LinearizabilityCheckerTests {
    func op(_ c: UInt64, _ o: KVOp, _ i: Int, _ e: Int?, _ r: KVResult?) -> HistoryOp {
        HistoryOp(client: c, op: o, invoke: i, complete: e, result: r)
    }

    @Test func staleReadAfterCompletedWriteIsRejected() {
        let h = [
            op(1, .put(key: 0, value: 1), 1, 2, .ok),
            op(2, .get(key: 0), 3, 4, .value(nil)),   // starts after the put finished, misses it
        ]
        #expect(LinearizabilityChecker.check(h) == .notLinearizable(key: 0))
    }

    @Test func concurrentReadMaySeeEitherValue() {
        let h = [
            op(1, .put(key: 0, value: 1), 1, 4, .ok),
            op(2, .get(key: 0), 2, 3, .value(nil)),
            op(3, .get(key: 0), 2, 5, .value(1)),
        ]
        #expect(LinearizabilityChecker.check(h) == .linearizable)
    }

    @Test func readsThatGoBackInTimeAreRejected() {
        let h = [
            op(1, .put(key: 0, value: 1), 1, 10, .ok),
            op(2, .get(key: 0), 2, 3, .value(1)),
            op(3, .get(key: 0), 4, 5, .value(nil)),   // after a read that saw 1
        ]
        #expect(LinearizabilityChecker.check(h) == .notLinearizable(key: 0))
    }

    @Test func unknownOutcomeWriteMayOrMayNotHaveHappened() {
        let took = [
            op(1, .put(key: 0, value: 1), 1, nil, nil),
            op(2, .get(key: 0), 5, 6, .value(1)),
        ]
        #expect(LinearizabilityChecker.check(took) == .linearizable)
        let didNot = [
            op(1, .put(key: 0, value: 1), 1, nil, nil),
            op(2, .get(key: 0), 5, 6, .value(nil)),
        ]
        #expect(LinearizabilityChecker.check(didNot) == .linearizable)
    }

    @Test func compareAndSwapResultsMustBeConsistent() {
        let h = [
            op(1, .put(key: 0, value: 1), 1, 2, .ok),
            op(2, .compareAndSwap(key: 0, expected: 1, new: 2), 3, 4, .swapped(true)),
            op(3, .compareAndSwap(key: 0, expected: 1, new: 3), 5, 6, .swapped(true)),  // 1 is gone
        ]
        #expect(LinearizabilityChecker.check(h) == .notLinearizable(key: 0))
    }

    @Test func deleteReportsWhetherTheKeyExisted() {
        let ok = [op(1, .put(key: 2, value: 1), 1, 2, .ok), op(1, .delete(key: 2), 3, 4, .deleted(existed: true))]
        #expect(LinearizabilityChecker.check(ok) == .linearizable)
        let bad = [op(1, .delete(key: 2), 1, 2, .deleted(existed: true))]
        #expect(LinearizabilityChecker.check(bad) == .notLinearizable(key: 2))
    }

    @Test func keysAreCheckedIndependently() {
        let h = [
            op(1, .put(key: 0, value: 1), 1, 2, .ok),
            op(2, .put(key: 1, value: 5), 1, 2, .ok),
            op(1, .get(key: 1), 3, 4, .value(5)),
            op(2, .get(key: 0), 3, 4, .value(nil)),
        ]
        #expect(LinearizabilityChecker.check(h) == .notLinearizable(key: 0))
    }

    @Test func searchIsBoundedAndSaysInconclusive() {
        // Many concurrent writes and an impossible read: the search must give up, not hang.
        var h: [HistoryOp] = []
        for i in 0..<40 { h.append(op(UInt64(i), .put(key: 0, value: UInt64(i)), i, 1000 + i, .ok)) }
        h.append(op(99, .get(key: 0), 2000, 2001, .value(777)))
        #expect(LinearizabilityChecker.check(h, stepsMax: 10_000) == .inconclusive(key: 0))
    }
}
