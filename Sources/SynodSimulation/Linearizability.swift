/// One client operation as the history records it. `invoke` and `complete` are ticks of one
/// global event counter, so "before" and "after" are exact.
public struct HistoryOp: Hashable, Sendable, CustomStringConvertible {
    public var client: UInt64
    public var op: KVOp
    public var invoke: Int
    /// nil: the outcome is unknown (the client gave up); the op may or may not have taken effect.
    public var complete: Int?
    public var result: KVResult?

    public init(client: UInt64, op: KVOp, invoke: Int, complete: Int? = nil, result: KVResult? = nil) {
        self.client = client
        self.op = op
        self.invoke = invoke
        self.complete = complete
        self.result = result
    }

    public var description: String {
        let end = complete.map { "\($0) -> \(result.map { "\($0)" } ?? "?")" } ?? "? (unknown)"
        return "c\(client) \(op) @\(invoke)..\(end)"
    }
}

/// The checker's verdict.
public enum LinearizabilityVerdict: Hashable, Sendable {
    case linearizable
    /// No order explains the history; `key` is the first key with no valid order.
    case notLinearizable(key: UInt8)
    /// The search hit its bound before deciding.
    case inconclusive(key: UInt8)
}

/// Wing & Gong's search with Lowe's memoisation ("just-in-time linearizability"), per key: a KV
/// history is linearizable iff each key's sub-history is, because every operation touches one key.
public enum LinearizabilityChecker {
    /// Most search steps per key before answering `inconclusive`.
    public static let searchStepsMax = 2_000_000

    public static func check(_ history: [HistoryOp], stepsMax: Int = searchStepsMax) -> LinearizabilityVerdict {
        // Unknown-outcome reads cannot constrain anything: drop them.
        let ops = history.filter { $0.complete != nil || !$0.op.isRead }
        var keys = Array(Set(ops.map { $0.op.key })).sorted()
        keys.sort()
        var inconclusive: UInt8?
        for key in keys {
            switch checkKey(ops.filter { $0.op.key == key }, stepsMax: stepsMax) {
            case .some(true): continue
            case .some(false): return .notLinearizable(key: key)
            case .none: if inconclusive == nil { inconclusive = key }
            }
        }
        if let k = inconclusive { return .inconclusive(key: k) }
        return .linearizable
    }

    /// The sequential model of one key: returns the result and the new value.
    static func model(_ op: KVOp, _ state: UInt64?) -> (KVResult, UInt64?) {
        switch op {
        case let .put(_, v): return (.ok, v)
        case .get: return (.value(state), state)
        case .delete: return (.deleted(existed: state != nil), nil)
        case let .compareAndSwap(_, e, n): return state == e ? (.swapped(true), n) : (.swapped(false), state)
        }
    }

    struct CacheKey: Hashable {
        var bits: [UInt64]
        var state: UInt64?
    }

    /// true: linearizable; false: not; nil: gave up.
    static func checkKey(_ ops: [HistoryOp], stepsMax: Int) -> Bool? {
        // Events: call (op i) and return (op i) for completed ops, sorted by time.
        var events: [(time: Int, op: Int, isCall: Bool)] = []
        for (i, o) in ops.enumerated() {
            events.append((o.invoke, i, true))
            if let c = o.complete { events.append((c, i, false)) }
        }
        events.sort { $0.time < $1.time || ($0.time == $1.time && $0.isCall && !$1.isCall) }
        // A doubly linked list over events; node 0 is the head sentinel, event k is node k+1.
        let n = events.count
        var next = Array(0...(n + 1)).map { $0 + 1 }
        var prev = Array(0...(n + 1)).map { $0 - 1 }
        var returnNode = Array(repeating: -1, count: ops.count)
        for (k, e) in events.enumerated() where !e.isCall { returnNode[e.op] = k + 1 }
        func lift(_ node: Int) { next[prev[node]] = next[node]; prev[next[node]] = prev[node] }
        func unlift(_ node: Int) { next[prev[node]] = node; prev[next[node]] = node }

        var remainingReturns = ops.filter { $0.complete != nil }.count
        var bits = Array(repeating: UInt64(0), count: (ops.count + 63) / 64)
        var state: UInt64? = nil
        var cache = Set<CacheKey>()
        var stack: [(node: Int, state: UInt64?)] = []
        var node = next[0]
        var steps = 0
        while remainingReturns > 0 {
            steps += 1
            if steps > stepsMax { return nil }
            if node <= n, events[node - 1].isCall {
                let i = events[node - 1].op
                let (result, newState) = model(ops[i].op, state)
                if ops[i].complete == nil || ops[i].result == result {
                    var newBits = bits
                    newBits[i / 64] |= 1 << UInt64(i % 64)
                    if cache.insert(CacheKey(bits: newBits, state: newState)).inserted {
                        stack.append((node, state))
                        bits = newBits
                        state = newState
                        lift(node)
                        if returnNode[i] >= 0 { lift(returnNode[i]); remainingReturns -= 1 }
                        node = next[0]
                        continue
                    }
                }
                node = next[node]
            } else {
                // A return whose op is not yet linearized (or the end): backtrack.
                guard let top = stack.popLast() else { return false }
                let i = events[top.node - 1].op
                if returnNode[i] >= 0 { unlift(returnNode[i]); remainingReturns += 1 }
                unlift(top.node)
                bits[i / 64] &= ~(1 << UInt64(i % 64))
                state = top.state
                node = next[top.node]
            }
        }
        return true
    }
}
