import SynodCore
@testable import SynodStateMachine
import Testing

/// A plain reference model of etcd's revision rules, to check the state machine against.
struct KVModel {
    var revision: Int64 = 1
    var kvs: [[UInt8]: KeyValue] = [:]
    var events: [(Int64, EventType, [UInt8])] = []
    var pending: [(EventType, [UInt8])] = []

    mutating func put(_ k: [UInt8], _ v: [UInt8]) {
        let rev = revision + 1
        let old = kvs[k]
        kvs[k] = KeyValue(key: k, value: v, createRevision: old?.createRevision ?? rev, modRevision: rev, version: (old?.version ?? 0) + 1)
        pending.append((.put, k))
    }

    mutating func delete(_ k: [UInt8]) {
        if kvs.removeValue(forKey: k) != nil { pending.append((.delete, k)) }
    }

    mutating func deleteRange(_ from: [UInt8], _ to: [UInt8]) {
        for k in sortedKeys where !k.lexicographicallyPrecedes(from) && (to.isEmpty || k.lexicographicallyPrecedes(to)) { delete(k) }
    }

    mutating func commit() {
        if !pending.isEmpty {
            revision += 1
            events += pending.map { (revision, $0.0, $0.1) }
        }
        pending = []
    }

    var sortedKeys: [[UInt8]] { kvs.keys.sorted { $0.lexicographicallyPrecedes($1) } }
    var sorted: [KeyValue] { sortedKeys.map { kvs[$0]! } }
}

@Suite("Model check: random commands against a reference model")
struct ModelTests {
    @Test("random puts, deletes, delete-ranges and txns match the model", arguments: StoreKind.allCases, [1, 2] as [UInt64])
    func random(kind: StoreKind, seed: UInt64) throws {
        let h = try Harness(kind)
        var model = KVModel()
        var rng = Mix(state: seed)
        let keys = (0..<12).map { b("k\($0 % 10)\($0)") }
        func key() -> [UInt8] { keys[Int.random(in: 0..<keys.count, using: &rng)] }
        for step in 0..<300 {
            let value = b("v\(step)")
            let command: Command
            switch Int.random(in: 0..<10, using: &rng) {
            case 0..<5:
                let k = key()
                command = .put(key: k, value: value, lease: nil, prevKV: false)
                model.put(k, value)
            case 5..<7:
                let k = key()
                command = .delete(key: k, prevKV: false)
                model.delete(k)
            case 7:
                var (from, to) = (key(), key())
                if to.lexicographicallyPrecedes(from) { swap(&from, &to) }
                if Bool.random(using: &rng) { to = [] }
                command = .deleteRange(from: from, to: to, prevKV: false)
                model.deleteRange(from, to)
            default:
                let (ck, k1, k2) = (key(), key(), key())
                let expected = model.kvs[ck]?.version ?? 0
                let guess = Bool.random(using: &rng) ? expected : expected + 1
                command = .txn(Txn(compares: [Compare(key: ck, .equal, .version(guess))],
                                   success: [.put(key: k1, value: value, lease: nil, prevKV: false)],
                                   failure: [.delete(key: k2, prevKV: false), .put(key: k2, value: value, lease: nil, prevKV: false)]))
                if guess == expected { model.put(k1, value) } else { model.delete(k2); model.put(k2, value) }
            }
            model.commit()
            let applied = try h.run(command)
            #expect(applied.response?.error == nil, "step \(step) seed \(seed)")
            #expect(applied.response?.revision == model.revision, "step \(step) seed \(seed)")
            #expect(h.sm.revision == model.revision, "step \(step) seed \(seed)")
            if step % 25 == 0 || step == 299 {
                let all = try h.rangeResult(RangeRequest(key: [0], rangeEnd: [0]))
                #expect(all.kvs == model.sorted, "step \(step) seed \(seed)")
            }
        }
        let history = try h.sm.history(from: 1, key: [0], rangeEnd: [0], limit: 0)
        #expect(history.map(\.revision) == model.events.map(\.0))
        #expect(history.map(\.type) == model.events.map(\.1))
        #expect(history.map(\.kv.key) == model.events.map(\.2))
        // Every past revision reads as the model's history replayed to it.
        for at in stride(from: Int64(2), through: model.revision, by: 37) {
            var past: [[UInt8]: Bool] = [:]
            for (rev, type, key) in model.events where rev <= at { past[key] = type == .put }
            let expectedKeys = past.filter(\.value).keys.sorted { $0.lexicographicallyPrecedes($1) }
            #expect(try h.rangeResult(RangeRequest(key: [0], rangeEnd: [0], revision: at)).kvs.map(\.key) == expectedKeys)
        }
    }
}
