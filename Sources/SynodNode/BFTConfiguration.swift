import SynodCore
import SynodCrypto
import SynodPBFT
import SynodTransport

/// Everything one BFT-mode replica needs to start (`synod serve --mode bft`).
public struct BFTConfiguration: Sendable {
    /// This replica's id, one of `peers`.
    public var id: NodeID
    /// Working directory for the replica's LMDB state (emptied at start: see `BFTNode`).
    public var dataDirectory: String
    /// Every replica's peer address, this one's included: n = 3f+1 ≥ 4.
    public var peers: [(NodeID, HostPort)]
    /// Where BFT clients connect.
    public var clientAddress: HostPort
    /// This replica's keys (`synod bft keygen`): its signing key, every public key, its MAC keys.
    public var keys: PBFTKeys
    public var clusterID: UInt64 = 1
    /// Wall-clock length of one pBFT tick.
    public var tickMillis: Int = 10
    /// Ticks a backup waits for a pending request before it suspects the primary.
    public var viewChangeTimeoutTicks: Int = 100
    /// K: a checkpoint (the whole state, digested) every K sequence numbers.
    public var checkpointInterval: UInt64 = 128
    /// Most requests the primary orders in one pre-prepare.
    public var batchRequestsMax: Int = 64
    /// Pre-prepares the primary keeps in flight.
    public var inflightBatchesMax: Int = 4
    public var mapSizeMiB: Int = 256
    /// Test only: this replica sends every client a wrong result (a Byzantine replica that
    /// lies to clients); clients must still accept only results f+1 replicas agree on.
    public var testingCorruptReplies: Bool = false
    /// Tests only: protocol bugs switched on in this replica's core (`PBFTBugs`), to show that
    /// the real-process tests catch them. Never set in production.
    public var testingPBFTBugs: PBFTBugs = []
    /// Set by `BFTNode.start` from the directory's promise record when the replica restarts.
    var amnesia: PBFTAmnesia?

    public init(id: NodeID, dataDirectory: String, peers: [(NodeID, HostPort)], clientAddress: HostPort, keys: PBFTKeys) {
        self.id = id
        self.dataDirectory = dataDirectory
        self.peers = peers
        self.clientAddress = clientAddress
        self.keys = keys
    }

    public var peerAddress: HostPort? { peers.first { $0.0 == id }?.1 }

    public func validate() throws(ConfigurationError) {
        guard !id.isNone else { throw .invalid("--id must be at least 1") }
        guard peerAddress != nil else { throw .invalid("--peers does not list this node's id \(id.rawValue)") }
        guard peers.count >= 4 else { throw .invalid("BFT mode needs at least 4 replicas (3f+1), got \(peers.count)") }
        guard peers.count <= Limits.membersMax else { throw .invalid("at most \(Limits.membersMax) replicas") }
        guard (1...10_000).contains(tickMillis) else { throw .invalid("tick must be 1...10000 ms") }
        guard viewChangeTimeoutTicks >= 2 else { throw .invalid("view-change timeout must be at least 2 ticks") }
        guard (8...65_536).contains(checkpointInterval) else { throw .invalid("checkpoint interval must be 8...65536") }
        guard (1...4096).contains(batchRequestsMax), (1...64).contains(inflightBatchesMax) else { throw .invalid("batch limits out of range") }
        for (peer, _) in peers where keys.publicKeys[.replica(peer)] == nil || (peer != id && keys.macKeys[.replica(peer)] == nil) {
            throw .invalid("the key file has no keys for replica \(peer.rawValue)")
        }
    }
}
