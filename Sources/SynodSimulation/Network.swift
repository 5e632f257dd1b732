import SynodCore
import SynodPBFT
import SynodRaft

/// What the simulated network needs to know about a payload: which link (0-based node indexes)
/// it travels, or nil when no partition can block it (pBFT clients are never partitioned).
protocol SimRoutable {
    var simulatedLink: (from: Int, to: Int)? { get }
}

/// The simulated network of both modes: per-link blocking (symmetric or asymmetric partitions),
/// delays that reorder, drops and duplicates. Deterministic: messages due at the same tick are
/// delivered in the order they were sent.
struct SimNetwork<Payload: SimRoutable> {
    struct InFlight {
        var deliverAt: Int
        var seq: UInt64
        var payload: Payload
        /// Already in the receiver's socket buffer: no partition can take it away.
        var received = false
    }

    static var delayTicksRange: ClosedRange<Int> { 1...2 }
    static var longDelayTicksRange: ClosedRange<Int> { 3...12 }

    let nodeCount: Int
    /// Most messages in flight; beyond this the network drops (a bounded queue).
    let inFlightMax: Int
    private(set) var inFlight: [InFlight] = []
    private var seq: UInt64 = 0
    /// blocked[from][to]: messages from `from` to `to` are lost. Indexes are node ids - 1.
    private(set) var blocked: [[Bool]]

    init(nodeCount: Int, inFlightMax: Int) {
        self.nodeCount = nodeCount
        self.inFlightMax = inFlightMax
        blocked = Array(repeating: Array(repeating: false, count: nodeCount), count: nodeCount)
    }

    var isPartitioned: Bool { blocked.contains { $0.contains(true) } }

    func isBlocked(_ p: Payload) -> Bool {
        guard let (a, b) = p.simulatedLink, (0..<nodeCount).contains(a), (0..<nodeCount).contains(b) else { return false }
        return blocked[a][b]
    }

    mutating func send(_ p: Payload, now: Int, faults: FaultRates, random: inout SeededRandom) {
        guard inFlight.count < inFlightMax else { return }
        if random.chance(faults.dropPerMille, in: 1000) { return }
        let copies = random.chance(faults.duplicatePerMille, in: 1000) ? 2 : 1
        for _ in 0..<copies {
            let long = random.chance(faults.longDelayPerMille, in: 1000)
            let delay = random.int(in: long ? Self.longDelayTicksRange : Self.delayTicksRange)
            seq += 1
            inFlight.append(InFlight(deliverAt: now + delay, seq: seq, payload: p))
        }
    }

    /// Removes and returns the messages due by `now`, in (time, send order); blocked links drop.
    mutating func due(now: Int) -> [Payload] {
        var ready: [InFlight] = []
        var rest: [InFlight] = []
        for f in inFlight { if f.deliverAt <= now { ready.append(f) } else { rest.append(f) } }
        inFlight = rest
        ready.sort { ($0.deliverAt, $0.seq) < ($1.deliverAt, $1.seq) }
        return ready.filter { $0.received || !isBlocked($0.payload) }.map(\.payload)
    }

    mutating func heal() {
        for i in 0..<nodeCount { for j in 0..<nodeCount { blocked[i][j] = false } }
    }

    /// Splits the nodes (0-based indexes) into two sides that cannot talk (a symmetric partition).
    mutating func split(sideA: [Int]) {
        heal()
        for i in 0..<nodeCount { for j in 0..<nodeCount where sideA.contains(i) != sideA.contains(j) { blocked[i][j] = true } }
    }

    /// Blocks one direction only (0-based indexes).
    mutating func blockOneWay(from a: Int, to b: Int) { blocked[a][b] = true }

    /// Queues `p` for delivery at tick `at`, without faults (a woken node reading its sockets).
    /// With `received`, `p` had reached the receiver already: partitions made since do not drop it.
    mutating func deliver(_ p: Payload, at tick: Int, received: Bool = false) {
        seq += 1
        inFlight.append(InFlight(deliverAt: tick, seq: seq, payload: p, received: received))
    }

    /// Keeps only the in-flight messages `keep` accepts (called in send order).
    mutating func filterInFlight(_ keep: (Payload) -> Bool) {
        inFlight = inFlight.filter { keep($0.payload) }
    }
}

extension Message: SimRoutable {
    var simulatedLink: (from: Int, to: Int)? { (Int(from.rawValue) - 1, Int(to.rawValue) - 1) }
}

/// Raft mode names nodes by id.
extension SimNetwork where Payload == Message {
    init(nodeCount: Int) { self.init(nodeCount: nodeCount, inFlightMax: 20_000) }

    func isBlocked(_ from: NodeID, _ to: NodeID) -> Bool { blocked[Int(from.rawValue) - 1][Int(to.rawValue) - 1] }

    mutating func split(sideA: [NodeID]) { split(sideA: sideA.map { Int($0.rawValue) - 1 }) }

    mutating func blockOneWay(from: NodeID, to: NodeID) { blockOneWay(from: Int(from.rawValue) - 1, to: Int(to.rawValue) - 1) }

    /// Cuts `node` off from everyone, both ways (leader isolation).
    mutating func isolate(_ node: NodeID) {
        let k = Int(node.rawValue) - 1
        for j in 0..<nodeCount where j != k {
            blockOneWay(from: k, to: j)
            blockOneWay(from: j, to: k)
        }
    }

    /// Drops about half of the in-flight messages sent by `node`.
    mutating func dropSome(from node: NodeID, random: inout SeededRandom) {
        filterInFlight { $0.from != node || random.chance(1, in: 2) }
    }
}
