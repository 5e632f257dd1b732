import SynodCore
import SynodRaft

/// The simulated network: per-link blocking (symmetric or asymmetric partitions), delays that
/// reorder, drops and duplicates. Deterministic: messages due at the same tick are delivered in
/// the order they were sent.
struct SimNetwork {
    struct InFlight {
        var deliverAt: Int
        var seq: UInt64
        var message: Message
    }

    /// Most messages in flight; beyond this the network drops (a bounded queue).
    static let inFlightMax = 20_000
    static let delayTicksRange = 1...2
    static let longDelayTicksRange = 3...12

    let nodeCount: Int
    private(set) var inFlight: [InFlight] = []
    private var seq: UInt64 = 0
    /// blocked[from][to]: messages from `from` to `to` are lost. Indexes are node ids - 1.
    private(set) var blocked: [[Bool]]

    init(nodeCount: Int) {
        self.nodeCount = nodeCount
        blocked = Array(repeating: Array(repeating: false, count: nodeCount), count: nodeCount)
    }

    var isPartitioned: Bool { blocked.contains { $0.contains(true) } }

    func isBlocked(_ from: NodeID, _ to: NodeID) -> Bool { blocked[Int(from.rawValue) - 1][Int(to.rawValue) - 1] }

    mutating func send(_ m: Message, now: Int, faults: FaultRates, random: inout SeededRandom) {
        guard inFlight.count < SimNetwork.inFlightMax else { return }
        if random.chance(faults.dropPerMille, in: 1000) { return }
        let copies = random.chance(faults.duplicatePerMille, in: 1000) ? 2 : 1
        for _ in 0..<copies {
            let long = random.chance(faults.longDelayPerMille, in: 1000)
            let delay = random.int(in: long ? SimNetwork.longDelayTicksRange : SimNetwork.delayTicksRange)
            seq += 1
            inFlight.append(InFlight(deliverAt: now + delay, seq: seq, message: m))
        }
    }

    /// Removes and returns the messages due by `now`, in (time, send order); blocked links drop.
    mutating func due(now: Int) -> [Message] {
        var ready: [InFlight] = []
        var rest: [InFlight] = []
        for f in inFlight { if f.deliverAt <= now { ready.append(f) } else { rest.append(f) } }
        inFlight = rest
        ready.sort { ($0.deliverAt, $0.seq) < ($1.deliverAt, $1.seq) }
        return ready.map(\.message).filter { !isBlocked($0.from, $0.to) }
    }

    mutating func heal() {
        for i in 0..<nodeCount { for j in 0..<nodeCount { blocked[i][j] = false } }
    }

    /// Splits the nodes into two sides that cannot talk (a symmetric partition).
    mutating func split(sideA: [NodeID]) {
        heal()
        for i in 0..<nodeCount {
            for j in 0..<nodeCount where sideA.contains(NodeID(UInt64(i + 1))) != sideA.contains(NodeID(UInt64(j + 1))) {
                blocked[i][j] = true
            }
        }
    }

    /// Blocks one direction only.
    mutating func blockOneWay(from: NodeID, to: NodeID) {
        blocked[Int(from.rawValue) - 1][Int(to.rawValue) - 1] = true
    }

    /// Cuts `node` off from everyone, both ways (leader isolation).
    mutating func isolate(_ node: NodeID) {
        let k = Int(node.rawValue) - 1
        for j in 0..<nodeCount where j != k { blocked[k][j] = true; blocked[j][k] = true }
    }

    /// Drops about half of the in-flight messages sent by `node`.
    mutating func dropSome(from node: NodeID, random: inout SeededRandom) {
        var kept: [InFlight] = []
        for f in inFlight where f.message.from != node || random.chance(1, in: 2) { kept.append(f) }
        inFlight = kept
    }
}
