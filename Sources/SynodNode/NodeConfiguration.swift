import SynodCore
import SynodRaft
import SynodStateMachine
import SynodTransport

/// Everything one node needs to start.
public struct NodeConfiguration: Sendable {
    /// This node's id (≥ 1), one of `peers`.
    public var id: NodeID
    /// The node's data directory (created if missing).
    public var dataDirectory: String
    /// Every member's peer address, including this node's own (where it listens for peers).
    public var peers: [(NodeID, HostPort)]
    /// Where this node serves clients. Port 0 picks a free port (see `SynodNode.clientPort`).
    public var clientAddress: HostPort
    /// The client address other machines reach this node at (etcd's `--advertise-client-urls`):
    /// what peers learn in the hello, redirects name and `member list` shows. Nil: `clientAddress`,
    /// which then must not be a wildcard (0.0.0.0, ::).
    public var advertiseClientAddress: HostPort?
    /// TLS for clients (`--cert-file`, `--key-file`, `--trusted-ca-file`); nil: plain TCP.
    public var clientTLS: TLSFiles?
    /// Require clients to present a certificate chaining to `clientTLS.trustedCA` (etcd's
    /// `--client-cert-auth`).
    public var clientCertAuth: Bool = false
    /// TLS for peer links (`--peer-cert-file`, ...): mutual, both sides' certificates chaining to
    /// `trustedCA`; nil: plain TCP.
    public var peerTLS: TLSFiles?
    /// The client address announced to peers and clients.
    public var advertisedClientAddress: HostPort { advertiseClientAddress ?? clientAddress }
    /// Distinguishes clusters: peers with another id are refused.
    public var clusterID: UInt64 = 1
    /// Wall-clock length of one Raft tick.
    public var tickMillis: Int = 10
    /// Election timeout in ticks (randomised in [t, 2t)).
    public var electionTimeoutTicks: Int = 30
    /// Heartbeat interval in ticks.
    public var heartbeatIntervalTicks: Int = 3
    /// How long a watch that asked for progress notifications (`WatchRequest.progressNotify`)
    /// may go without a message before it gets one. etcd's default is 10 minutes; Kubernetes
    /// runs etcd at 5 s so its watch caches can answer consistent reads. 10 s here.
    public var watchProgressNotifyIntervalMillis: Int = 10_000
    /// The shortest lease TTL granted: 1.5 election timeouts, as in etcd. A shorter requested
    /// TTL is raised to it before the grant is proposed (`CommandEnvelope.raisingLeaseTTL`), and
    /// the grant's answer carries the TTL granted.
    public var minimumLeaseTTLMillis: Int64 { Int64((3 * electionTimeoutTicks * tickMillis + 1) / 2) }
    /// Take a snapshot after this many applied entries; the log is compacted up to the previous
    /// snapshot, so one snapshot interval of entries stays as the retention window.
    public var snapshotEveryEntries: Int = 100_000
    /// Revisions of history to keep (etcd's revision-mode auto-compaction): once the history
    /// holds this many plus a step (`autoCompactStep`) more, the leader proposes compacting the
    /// oldest away, so history, snapshots and the disk stay bounded by the live keys plus this
    /// window. Watches and reads older than the window fail with `compacted`, as in etcd.
    /// 0 turns it off (then only `synod compact` trims history).
    public var autoCompactRevisions: Int64 = 1_000_000
    /// Revisions past the window that trigger a compaction: a tenth of the window, at least
    /// 1 and at most 100,000. Each compaction scans the history written since the previous one
    /// (`applyCompact`), so a larger step means fewer, longer scans.
    public var autoCompactStep: Int64 { min(100_000, max(1, autoCompactRevisions / 10)) }
    /// Space quota for the state tables, in bytes of LMDB pages in use (etcd's
    /// `--quota-backend-bytes`). When the leader finds the state above it, it commits the NOSPACE
    /// alarm: commands that add data are refused (`KVError.noSpace`) until space is freed
    /// (compaction, deletes) and the alarm disarmed. The default keeps a full store within a
    /// follower's snapshot bound (`snapshotBytesMax`: the quota plus a third, at least 1 GiB).
    /// 0 turns the quota off.
    public var quotaBytes: Int64 = 768 << 20
    /// Largest quota accepted: a snapshot of the whole state is held in memory on both sides.
    public static let quotaBytesMax: Int64 = 8 << 30
    /// Largest snapshot a follower accepts (`RaftConfig.snapshotBytesMax`): the quota plus a
    /// third (writes go on until the alarm commits; snapshots frame records differently from
    /// pages), at least 1 GiB.
    public var snapshotBytesMax: Int { Int(max(1 << 30, quotaBytes + quotaBytes / 3)) }
    /// Seconds between the leader's corruption checks (etcd's corrupt check): it asks every
    /// member for a hash of its history at one revision (`synod hashkv`) and, if members at the
    /// same compaction point disagree, commits the CORRUPT alarm, which stops all writes. 0 turns
    /// it off. Each check hashes the history once per member on a low-priority thread.
    public var corruptCheckIntervalSeconds: Int = 300
    /// Most client writes and reads waiting at once; more are refused with `busy`.
    public var pendingRequestsMax: Int = 100_000
    /// Initial LMDB map size in MiB. The map doubles whenever it fills (up to 1 TiB), so this
    /// only saves early growths on a node expected to hold a lot.
    public var mapSizeMiB: Int = 256
    /// UNSAFE: skip fsync. A machine crash can lose acknowledged writes. For benchmarks only.
    public var unsafeNoSync: Bool = false
    /// Opt-in: serve linearizable reads from the leader's lease (no heartbeat round) while a
    /// quorum acknowledged a heartbeat within the election timeout minus a clock-drift margin
    /// (dissertation §6.4.1). Safe only if no node's clock runs faster than that margin allows.
    public var leaseReads: Bool = false
    /// A follower applies committed entries in batches, at most this long after it learns they
    /// are committed (or sooner: 4,096 waiting, a serializable read, a watch on this node, or
    /// becoming leader). Its acknowledgements then wait for log pages only, not for the state
    /// tables' pages too. 0 applies at once. Only a follower's serializable reads and the
    /// `applied` it reports can lag by this much; the leader always applies at once.
    public var followerApplyDelayMillis: Int = 50
    /// Test-only: the first N commits of held applies fail as if the map were full, so the node
    /// must grow the map and redo them (`NodeLoop.commitHeldApplies`).
    public var testingHeldCommitFailures: Int = 0
    /// Test-only: this node's state machine corrupts every put's value (a diverged replica, which
    /// `synod hashkv` must catch: `HashKVTests`).
    public var testingCorruptPuts: Bool = false
    /// Tests only: while this file exists, the node loop stalls at the start of each pass (up
    /// to 10 s at a time), as it would in an fsync that does not return; the client loop keeps
    /// taking requests meanwhile and the peer sockets go unread (`PauseTests`).
    public var testingStallFile: String? = nil
    /// Tests only: the leader answers lease keep-alives at once, without the ReadIndex round
    /// that confirms it still leads (the bug `PauseTests` found; shows the test can fail).
    public var testingUnconfirmedKeepAlives: Bool = false
    /// Tests only: classic Raft bugs switched on in this node's core (`RaftBugs`), to show that
    /// the real-process tests catch them. Never set in production: each one breaks safety.
    public var testingRaftBugs: RaftBugs = []
    /// Tests only: the SHA-256 this node announces for a streamed backup has one byte flipped,
    /// as if the bytes had changed on the way: `synod snapshot save` must refuse them.
    public var testingDamageBackups: Bool = false
    /// Tests only (`--testing-skip-peer-identity`): a TLS peer may claim any member id — the
    /// hole `PeerIdentity` closes (`TLSTests.peerIdentityChecked` shows it caught).
    public var testingSkipPeerIdentity: Bool = false
    /// Tests only: the state machine applies a retried command again instead of answering it
    /// from the client's session (`KVStateMachine.testingApplyRetriesAgain`).
    public var testingApplyRetriesAgain: Bool = false
    /// Tests only (`--testing-cluster-version N`): the cluster version this node claims to
    /// support, as a node of an older (lower) or newer (higher) build would. Nil: this build's
    /// `KVStateMachine.clusterVersionSupported`.
    public var testingClusterVersion: UInt16?
    /// The highest cluster version this node announces and applies under.
    public var supportedClusterVersion: UInt16 { testingClusterVersion ?? KVStateMachine.clusterVersionSupported }
    /// Join an existing cluster instead of bootstrapping a new one: start with no membership and
    /// wait for the leader (after `synod member add`) to send the log.
    public var join: Bool = false
    /// Seed for election timeouts; defaults to one derived from the id (any value is safe).
    public var randomSeed: UInt64?

    public init(id: NodeID, dataDirectory: String, peers: [(NodeID, HostPort)], clientAddress: HostPort) {
        self.id = id
        self.dataDirectory = dataDirectory
        self.peers = peers
        self.clientAddress = clientAddress
    }

    /// This node's own peer address.
    public var peerAddress: HostPort? { peers.first { $0.0 == id }?.1 }

    /// Checks the configuration and says what is wrong.
    public func validate() throws(ConfigurationError) {
        guard !id.isNone else { throw .invalid("--id must be at least 1") }
        guard peerAddress != nil else { throw .invalid("--peers does not list this node's id \(id.rawValue)") }
        if clientCertAuth && clientTLS?.trustedCA == nil { throw .invalid("--client-cert-auth needs --cert-file, --key-file and --trusted-ca-file") }
        if let peerTLS, peerTLS.certificate == nil || peerTLS.privateKey == nil || peerTLS.trustedCA == nil {
            throw .invalid("peer TLS needs all of --peer-cert-file, --peer-key-file and --peer-trusted-ca-file")
        }
        guard !advertisedClientAddress.isWildcard else {
            throw .invalid("--listen-client \(clientAddress) listens on every interface: give --advertise-client HOST:PORT, the address clients and other members reach this node at")
        }
        guard (1...10_000).contains(tickMillis) else { throw .invalid("tick must be 1...10000 ms") }
        guard electionTimeoutTicks >= 2 * heartbeatIntervalTicks, heartbeatIntervalTicks >= 1 else {
            throw .invalid("election timeout must be at least twice the heartbeat interval")
        }
        guard (1...(1 << 20)).contains(mapSizeMiB) else { throw .invalid("map size must be 1...1048576 MiB") }
        guard (0...1000).contains(followerApplyDelayMillis) else { throw .invalid("follower apply delay must be 0...1000 ms") }
        guard (0...(1 << 40)).contains(autoCompactRevisions) else { throw .invalid("auto-compaction window must be 0...2^40 revisions") }
        guard quotaBytes == 0 || (1 << 20...Self.quotaBytesMax).contains(quotaBytes) else {
            throw .invalid("space quota must be 0 (off) or 1 MiB...8 GiB")
        }
        guard (0...86_400).contains(corruptCheckIntervalSeconds) else { throw .invalid("corruption check interval must be 0 (off) or 1...86400 s") }
        guard snapshotEveryEntries >= 100 else { throw .invalid("snapshot interval must be at least 100 entries") }
        guard peers.count <= Limits.membersMax else { throw .invalid("at most \(Limits.membersMax) peers") }
    }
}

/// A configuration that cannot work.
public enum ConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    case invalid(String)
    public var description: String {
        switch self { case let .invalid(why): return why }
    }
}
