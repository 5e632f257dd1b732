import SynodCore
@testable import SynodRaft

/// A small in-memory harness: cores, a FIFO network with cut links, and "stabilize" (process
/// every Ready and deliver every message until quiet), after etcd-raft's interaction tests.
struct TestCluster {
    var cores: [RaftCore]
    var stores: [MemoryStore]
    var queue: [Message] = []
    /// Links (from, to) that lose every message.
    var cut: Set<[UInt64]> = []
    /// Every message that was sent, for assertions.
    var sent: [Message] = []
    /// Every read answered, by node, in the order the Readys handed them out.
    var readStatesSeen: [UInt64: [ReadState]] = [:]
    /// Every read refusal handed out, by node.
    var refusedSeen: [UInt64: [UInt64]] = [:]
    /// Messages this returns true for are lost, like those on a cut link.
    var lose: (Message) -> Bool = { _ in false }
    /// Messages this returns true for are delivered twice.
    var duplicate: (Message) -> Bool = { _ in false }

    /// `size` voters plus `spares` nodes that start outside the cluster (empty membership).
    init(size: Int, spares: Int = 0, seed: UInt64 = 1, configure: (inout RaftConfig) -> Void = { _ in }) {
        let ids = (1...size).map { NodeID(UInt64($0)) }
        let membership = try! Membership(voters: ids)
        var random = SeededRandom(seed: seed)
        cores = []
        stores = []
        for id in ids + (0..<spares).map({ NodeID(UInt64(size + 1 + $0)) }) {
            var c = RaftConfig(id: id)
            configure(&c)
            let store = MemoryStore()
            try! store.write(LogWrite(hardState: .initial, membership: ids.contains(id) ? membership : .empty))
            stores.append(store)
            cores.append(RaftCore(config: c, random: random.fork(), restart: try! RaftRestartState.load(from: store, snapshot: nil)))
        }
    }

    subscript(_ id: UInt64) -> RaftCore {
        get { cores[Int(id) - 1] }
        set { cores[Int(id) - 1] = newValue }
    }

    var leaders: [NodeID] { cores.filter { $0.role == .leader }.map(\.id) }

    /// Persists, then queues messages, then marks applied: the order `Ready` documents.
    mutating func processReady(_ id: UInt64) {
        let k = Int(id) - 1
        let rd = cores[k].ready()
        if rd.isEmpty { return }
        if let s = rd.snapshot { try! stores[k].reset(to: s.position) }
        if !rd.logWrite.isEmpty { try! stores[k].write(rd.logWrite) }
        readStatesSeen[id, default: []] += rd.readStates
        refusedSeen[id, default: []] += rd.refusedReads
        for m in rd.messages {
            sent.append(m)
            if !cut.contains([m.from.rawValue, m.to.rawValue]) && !lose(m) {
                queue.append(m)
                if duplicate(m) { queue.append(m) }
            }
        }
        cores[k].advance(rd)
    }

    mutating func processAllReady() { for k in cores.indices { processReady(UInt64(k + 1)) } }

    /// Delivers everything until nothing is left to do (bounded).
    mutating func stabilize(roundsMax: Int = 1000) {
        precondition(settle(roundsMax: roundsMax, queuedMax: .max), "cluster did not stabilize")
    }

    /// Delivers until nothing is left to do; false if that takes more than `roundsMax` rounds
    /// or the queue ever holds more than `queuedMax` messages.
    mutating func settle(roundsMax: Int, queuedMax: Int) -> Bool {
        for _ in 0..<roundsMax {
            processAllReady()
            if queue.isEmpty { return true }
            if queue.count > queuedMax { return false }
            let batch = queue
            queue = []
            for m in batch where !cut.contains([m.from.rawValue, m.to.rawValue]) {
                cores[Int(m.to.rawValue) - 1].step(m)
            }
        }
        return false
    }

    mutating func tick(_ id: UInt64, times: Int = 1) {
        for _ in 0..<times { cores[Int(id) - 1].tick() }
    }

    mutating func tickAll(times: Int = 1) {
        for _ in 0..<times { for k in cores.indices { cores[k].tick() } ; stabilize() }
    }

    /// Makes `id` leader by ticking it until it campaigns, then stabilizing.
    mutating func elect(_ id: UInt64) {
        cores[Int(id) - 1].campaign()
        stabilize()
    }

    mutating func isolate(_ id: UInt64) {
        for other in 1...UInt64(cores.count) where other != id {
            cut.insert([id, other])
            cut.insert([other, id])
        }
    }

    mutating func heal() { cut.removeAll() }

    @discardableResult
    mutating func propose(_ id: UInt64, _ bytes: [UInt8] = [1]) -> LogPosition {
        try! cores[Int(id) - 1].propose(bytes)
    }
}
