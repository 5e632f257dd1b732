import SynodCore
import SynodPBFT

extension PBFTEnvelope: SimRoutable {
    /// Replica-to-replica envelopes travel a link; anything to or from a client is never blocked.
    var simulatedLink: (from: Int, to: Int)? {
        guard let a = from.replicaID, let b = to.replicaID else { return nil }
        return (Int(a.rawValue) - 1, Int(b.rawValue) - 1)
    }
}

/// The network of BFT runs: Raft mode's fault model carrying pBFT envelopes.
typealias BFTNetwork = SimNetwork<PBFTEnvelope>

extension SimNetwork where Payload == PBFTEnvelope {
    init(nodeCount: Int) { self.init(nodeCount: nodeCount, inFlightMax: 50_000) }

    mutating func dropAll(to node: NodeID) { filterInFlight { $0.to != .replica(node) } }
}
