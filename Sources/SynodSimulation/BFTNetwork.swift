import SynodCore
import SynodPBFT

/// The simulated network of BFT runs: the same fault model as Raft mode's `SimNetwork` (drops,
/// duplicates, delays that reorder, symmetric and one-way partitions between replicas), carrying
/// pBFT envelopes. Clients are never partitioned. Deterministic: messages due at one tick are
/// delivered in send order.
struct BFTNetwork {
    struct InFlight {
        var deliverAt: Int
        var seq: UInt64
        var envelope: PBFTEnvelope
    }

    static let inFlightMax = 50_000

    let nodeCount: Int
    private(set) var inFlight: [InFlight] = []
    private var seq: UInt64 = 0
    private(set) var blocked: [[Bool]]

    init(nodeCount: Int) {
        self.nodeCount = nodeCount
        blocked = Array(repeating: Array(repeating: false, count: nodeCount), count: nodeCount)
    }

    var isPartitioned: Bool { blocked.contains { $0.contains(true) } }

    func isBlocked(_ e: PBFTEnvelope) -> Bool {
        guard let a = e.from.replicaID, let b = e.to.replicaID,
              (1...nodeCount).contains(Int(a.rawValue)), (1...nodeCount).contains(Int(b.rawValue)) else { return false }
        return blocked[Int(a.rawValue) - 1][Int(b.rawValue) - 1]
    }

    mutating func send(_ e: PBFTEnvelope, now: Int, faults: FaultRates, random: inout SeededRandom) {
        guard inFlight.count < BFTNetwork.inFlightMax else { return }
        if random.chance(faults.dropPerMille, in: 1000) { return }
        let copies = random.chance(faults.duplicatePerMille, in: 1000) ? 2 : 1
        for _ in 0..<copies {
            let long = random.chance(faults.longDelayPerMille, in: 1000)
            let delay = random.int(in: long ? SimNetwork.longDelayTicksRange : SimNetwork.delayTicksRange)
            seq += 1
            inFlight.append(InFlight(deliverAt: now + delay, seq: seq, envelope: e))
        }
    }

    mutating func due(now: Int) -> [PBFTEnvelope] {
        var ready: [InFlight] = []
        var rest: [InFlight] = []
        for f in inFlight { if f.deliverAt <= now { ready.append(f) } else { rest.append(f) } }
        inFlight = rest
        ready.sort { ($0.deliverAt, $0.seq) < ($1.deliverAt, $1.seq) }
        return ready.map(\.envelope).filter { !isBlocked($0) }
    }

    mutating func heal() {
        for i in 0..<nodeCount { for j in 0..<nodeCount { blocked[i][j] = false } }
    }

    mutating func split(sideA: [Int]) {
        heal()
        for i in 0..<nodeCount { for j in 0..<nodeCount where sideA.contains(i) != sideA.contains(j) { blocked[i][j] = true } }
    }

    mutating func blockOneWay(from a: Int, to b: Int) { blocked[a][b] = true }

    mutating func dropAll(to node: NodeID) { inFlight.removeAll { $0.envelope.to == .replica(node) } }
}
