import ArgumentParser
import Foundation
import NIOCore
import Logging
import SynodClient
import SynodCore
import SynodLMDB
import SynodNode
import SynodPBFT
import SynodRaft
import SynodStateMachine
import SynodTransport

/// `synod serve`: runs one node until SIGTERM or SIGINT.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run one Synod node.")

    @Option(help: "This node's id (>= 1), one of --peers.") var id: UInt64
    @Option(help: "Data directory (created if missing).") var data: String
    @Option(help: "Every member as ID=host:port (peer addresses), e.g. 1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103.") var peers: String
    @Option(name: .customLong("listen-client"), help: "Where to serve clients, host:port.") var listenClient: String
    @Option(name: .customLong("advertise-client"), help: "The host:port clients and other members reach this node at (needed when --listen-client is 0.0.0.0 or ::; default: --listen-client).") var advertiseClient: String?
    @Option(help: "Milliseconds per Raft tick.") var tickMs: Int = 10
    @Option(help: "Election timeout in ticks.") var electionTicks: Int = 30
    @Option(help: "Heartbeat interval in ticks.") var heartbeatTicks: Int = 3
    @Option(name: .customLong("watch-progress-notify-interval-ms"), help: "A watch that asked for progress notifications gets one after this long without a message (etcd's --experimental-watch-progress-notify-interval; 10-86,400,000).") var watchProgressNotifyIntervalMs: Int = 10_000
    @Option(help: "Snapshot after this many applied entries (etcd 3.4 uses 100,000 too).") var snapshotEntries: Int = 100_000
    @Option(help: "Revisions of history to keep; older ones are compacted away as writes go on (etcd's revision-mode auto-compaction; 0 = off).") var autoCompactRevisions: Int64 = 1_000_000
    @Option(help: "Space quota for the state in bytes (etcd's --quota-backend-bytes): above it the leader raises the NOSPACE alarm and writes that add data are refused until space is freed and `synod alarm disarm` runs. 0 = off; at most 8 GiB.") var quotaBytes: Int64 = 768 << 20
    @Option(help: "TLS for clients: this node's certificate (PEM; must name the address clients dial).") var certFile: String?
    @Option(help: "TLS for clients: the certificate's private key (PEM).") var keyFile: String?
    @Option(help: "TLS for clients: CA certificates (PEM) client certificates must chain to (with --client-cert-auth).") var trustedCaFile: String?
    @Flag(help: "Require clients to present a certificate that chains to --trusted-ca-file.") var clientCertAuth = false
    @Option(help: "Peer TLS (mutual): this node's certificate (PEM; must name its --peers address).") var peerCertFile: String?
    @Option(help: "Peer TLS: the certificate's private key (PEM).") var peerKeyFile: String?
    @Option(help: "Peer TLS: CA certificates (PEM) every member's certificate must chain to.") var peerTrustedCaFile: String?
    @Option(name: .customLong("listen-metrics"), help: "Serve GET /metrics (Prometheus text format) and GET /health on this host:port (raft mode).") var listenMetrics: String?
    @Option(name: .customLong("http-request-timeout"), help: "Seconds the JSON gateway waits for a whole request on a connection with none in flight (just opened, or its last answer sent) before closing it (1-3600).") var httpRequestTimeout: Int = GatewayServer.requestSecondsDefault
    @Option(name: .customLong("listen-http"), help: "Serve etcd's JSON gateway (POST /v3/kv/range, /v3/kv/put, /v3/kv/txn, /v3/watch, /v3/lease/..., docs/OPERATIONS.md) on this host:port (raft mode); with --cert-file it is HTTPS with the client port's certificate and client-certificate rule.") var listenHttp: String?
    @Option(help: "Seconds between the leader's corruption checks (every member's history hashed at one revision and compared; a mismatch raises the CORRUPT alarm). 0 = off.") var corruptCheckInterval: Int = 300
    @Option(help: "Cluster id; peers with another are refused.") var clusterId: UInt64 = 1
    @Option(help: "Initial LMDB map size in MiB (it doubles whenever it fills).") var mapSizeMb: Int = 256
    @Option(help: "Longest a follower waits before applying committed entries in one batch (0 = at once; only its serializable reads lag).") var followerApplyDelayMs: Int = 50
    @Flag(help: "Serve linearizable reads from the leader's lease (opt-in; assumes bounded clock drift).") var leaseReads = false
    @Flag(help: "Join a running cluster (after `synod member add`) instead of bootstrapping a new one.") var join = false
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel: String = "info"
    @Flag(name: .customLong("unsafe-no-fsync"), help: "UNSAFE: do not fsync. A machine crash can lose acknowledged writes. Benchmarks only.")
    var unsafeNoFsync = false
    @Option(help: "Consensus: raft (crash faults) or bft (pBFT: Byzantine faults, 3f+1 replicas, needs --keys).") var mode: String = "raft"
    @Option(help: "BFT mode: this replica's key file (`synod bft keygen`).") var keys: String?
    @Option(help: "BFT mode: a checkpoint (whole state, digested) every N sequence numbers.") var checkpointInterval: UInt64 = 128
    @Flag(name: .customLong("testing-corrupt-replies"), help: .hidden) var testingCorruptReplies = false
    @Option(name: .customLong("testing-held-commit-failures"), help: .hidden) var testingHeldCommitFailures: Int = 0
    @Flag(name: .customLong("testing-corrupt-puts"), help: .hidden) var testingCorruptPuts = false
    @Option(name: .customLong("testing-raft-bug"), help: .hidden) var testingRaftBugs: [String] = []
    @Flag(name: .customLong("testing-unconfirmed-keepalives"), help: .hidden) var testingUnconfirmedKeepAlives = false
    @Option(name: .customLong("testing-stall-file"), help: .hidden) var testingStallFile: String?
    @Flag(name: .customLong("testing-damage-backups"), help: .hidden) var testingDamageBackups = false
    @Flag(name: .customLong("testing-skip-peer-identity"), help: .hidden) var testingSkipPeerIdentity = false
    @Option(name: .customLong("testing-cluster-version"), help: .hidden) var testingClusterVersion: UInt16?
    @Flag(name: .customLong("testing-apply-retries-again"), help: .hidden) var testingApplyRetriesAgain = false
    @Option(name: .customLong("testing-pbft-bug"), help: .hidden) var testingPBFTBugs: [String] = []

    /// `--peers` and `--listen-client`, parsed (both modes).
    func addresses() throws -> (peers: [(NodeID, HostPort)], client: HostPort) {
        do {
            return (try HostPort.parsePeers(peers), try HostPort(parsing: listenClient))
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func bftConfiguration() throws -> BFTConfiguration {
        guard let keys else { throw ValidationError("--mode bft needs --keys FILE (see `synod bft keygen`)") }
        for (set, name) in [(join, "--join"), (leaseReads, "--lease-reads"), (unsafeNoFsync, "--unsafe-no-fsync")] where set {
            throw ValidationError("\(name) is a Raft-mode option; BFT replicas rejoin by state transfer and keep no fsynced state (docs/PBFT.md)")
        }
        let (peerList, client) = try addresses()
        let (principal, keyset) = try readKeyFile(keys)
        guard principal == .replica(NodeID(id)) else { throw ValidationError("\(keys) holds the keys of \(principal), not of replica \(id)") }
        var c = BFTConfiguration(id: NodeID(id), dataDirectory: data, peers: peerList, clientAddress: client, keys: keyset)
        c.tickMillis = tickMs
        c.clusterID = clusterId
        c.mapSizeMiB = mapSizeMb
        c.checkpointInterval = checkpointInterval
        c.testingCorruptReplies = testingCorruptReplies
        for name in testingPBFTBugs {
            guard let bug = PBFTBugs.all.first(where: { $0.0 == name }) else {
                throw ValidationError("--testing-pbft-bug must be one of \(PBFTBugs.all.map(\.0).joined(separator: ", "))")
            }
            c.testingPBFTBugs.insert(bug.1)
        }
        do { try c.validate() } catch { throw ValidationError("\(error)") }
        return c
    }

    func configurationValue() throws -> NodeConfiguration {
        let (peerList, client) = try addresses()
        var c = NodeConfiguration(id: NodeID(id), dataDirectory: data, peers: peerList, clientAddress: client)
        c.tickMillis = tickMs
        c.electionTimeoutTicks = electionTicks
        c.heartbeatIntervalTicks = heartbeatTicks
        guard (10...86_400_000).contains(watchProgressNotifyIntervalMs) else {
            throw ValidationError("--watch-progress-notify-interval-ms must be 10 to 86,400,000 (one day)")
        }
        c.watchProgressNotifyIntervalMillis = watchProgressNotifyIntervalMs
        c.snapshotEveryEntries = snapshotEntries
        c.autoCompactRevisions = autoCompactRevisions
        c.quotaBytes = quotaBytes
        if certFile != nil || keyFile != nil || trustedCaFile != nil {
            c.clientTLS = TLSFiles(certificate: certFile, privateKey: keyFile, trustedCA: trustedCaFile)
        }
        c.clientCertAuth = clientCertAuth
        if peerCertFile != nil || peerKeyFile != nil || peerTrustedCaFile != nil {
            c.peerTLS = TLSFiles(certificate: peerCertFile, privateKey: peerKeyFile, trustedCA: peerTrustedCaFile)
        }
        if let advertiseClient {
            do { c.advertiseClientAddress = try HostPort(parsing: advertiseClient) } catch { throw ValidationError("--advertise-client: \(error)") }
        }
        c.corruptCheckIntervalSeconds = corruptCheckInterval
        c.clusterID = clusterId
        c.mapSizeMiB = mapSizeMb
        c.unsafeNoSync = unsafeNoFsync
        c.join = join
        c.leaseReads = leaseReads
        c.followerApplyDelayMillis = followerApplyDelayMs
        c.testingHeldCommitFailures = testingHeldCommitFailures
        c.testingCorruptPuts = testingCorruptPuts
        c.testingUnconfirmedKeepAlives = testingUnconfirmedKeepAlives
        c.testingStallFile = testingStallFile
        c.testingDamageBackups = testingDamageBackups
        c.testingSkipPeerIdentity = testingSkipPeerIdentity
        c.testingClusterVersion = testingClusterVersion
        c.testingApplyRetriesAgain = testingApplyRetriesAgain
        for name in testingRaftBugs {
            guard let bug = RaftBugs.all.first(where: { $0.0 == name }) else {
                throw ValidationError("--testing-raft-bug must be one of \(RaftBugs.all.map(\.0).joined(separator: ", "))")
            }
            c.testingRaftBugs.insert(bug.1)
        }
        do { try c.validate() } catch { throw ValidationError("\(error)") }
        return c
    }

    func validate() throws {
        guard ["raft", "bft"].contains(mode) else { throw ValidationError("--mode must be raft or bft") }
        if mode == "bft" { _ = try bftConfiguration() } else { _ = try configurationValue() }
        if mode == "bft", [certFile, keyFile, trustedCaFile, peerCertFile, peerKeyFile, peerTrustedCaFile].contains(where: { $0 != nil }) || clientCertAuth {
            throw ValidationError("TLS options are available in raft mode only")
        }
        if let listenMetrics {
            guard mode == "raft" else { throw ValidationError("--listen-metrics is available in raft mode only") }
            do { _ = try HostPort(parsing: listenMetrics) } catch { throw ValidationError("--listen-metrics: \(error)") }
        }
        if let listenHttp {
            guard mode == "raft" else { throw ValidationError("--listen-http is available in raft mode only") }
            do { _ = try HostPort(parsing: listenHttp) } catch { throw ValidationError("--listen-http: \(error)") }
            guard GatewayServer.requestSecondsRange.contains(httpRequestTimeout) else {
                throw ValidationError("--http-request-timeout must be within \(GatewayServer.requestSecondsRange.lowerBound)...\(GatewayServer.requestSecondsRange.upperBound) seconds")
            }
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level '\(logLevel)' is not a level") }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "synod.node\(id)")
        if unsafeNoFsync { logger.warning("running with --unsafe-no-fsync: a machine crash can lose acknowledged writes") }
        if mode == "bft" {
            let replica: BFTNode
            do { replica = try await BFTNode.start(try bftConfiguration(), logger: logger) } catch { throw fail("cannot start: \(error)", status: 1) }
            if testingCorruptReplies { logger.warning("--testing-corrupt-replies: this replica lies to clients (a test of f+1 reply voting)") }
            await Signals.waitForTermination()
            logger.info("signal received; shutting down")
            await replica.shutdown()
            return
        }
        let registry = listenMetrics == nil ? nil : MetricsServer.bootstrap()
        let node: SynodNode
        do {
            node = try await SynodNode.start(try configurationValue(), logger: logger)
        } catch let e as StoreError {
            throw fail("\(e)", status: 1)
        } catch let e as ClusterVersionUnsupported {
            throw fail("cannot start: \(e)", status: ExitStatus.clusterVersionUnsupported)
        } catch {
            throw fail("cannot start: \(error)", status: 1)
        }
        var metricsChannel: (any Channel)?
        if let listenMetrics, let registry {
            do {
                let version: @Sendable () -> String = {
                    let v = node.clusterVersion
                    return JSON.object([("synod", JSON.string(SynodVersion.string)), ("cluster_version", "\(v.inForce)"), ("cluster_version_supported", "\(v.supported)")])
                }
                metricsChannel = try await MetricsServer.start(try HostPort(parsing: listenMetrics), registry: registry, version: version) { node.knowsLeader }
                logger.info("serving metrics", metadata: ["address": "\(listenMetrics)"])
            } catch {
                await node.shutdown()
                throw fail("cannot serve metrics on \(listenMetrics): \(error)", status: 1)
            }
        }
        var gateway: (channel: any Channel, client: SynodClient)?
        if let listenHttp {
            do { gateway = try await startGateway(listenHttp, node: node, logger: logger) } catch {
                try? await metricsChannel?.close()
                await node.shutdown()
                throw fail("cannot serve the JSON gateway on \(listenHttp): \(error)", status: 1)
            }
        }
        await Signals.waitForTermination()
        logger.info("signal received; shutting down")
        try? await metricsChannel?.close()
        try? await gateway?.channel.close()
        await gateway?.client.close()
        await node.shutdown()
    }
}

extension ServeCommand {
    /// The JSON gateway: a `SynodClient` on this node's client address (TLS with the node's own
    /// certificate as its client certificate, as the corruption check dials), served over HTTP
    /// with the client port's TLS context.
    func startGateway(_ address: String, node: SynodNode, logger: Logger) async throws -> (channel: any Channel, client: SynodClient) {
        let c = node.configuration
        var clientConfig = ClientConfiguration(endpoints: [c.advertisedClientAddress])
        clientConfig.tls = c.clientTLS
        let client = SynodClient(clientConfig)
        let tls = try c.clientTLS.map { try $0.serverContext(requireClientCertificates: c.clientCertAuth) }
        let version: @Sendable () -> String = {
            let v = node.clusterVersion
            return JSON.object([("synod", JSON.string(SynodVersion.string)), ("cluster_version", "\(v.inForce)"), ("cluster_version_supported", "\(v.supported)")])
        }
        let gateway = Gateway(client: client, endpoint: c.advertisedClientAddress, clusterID: c.clusterID, memberID: c.id.rawValue,
                              term: { node.term }, healthy: { node.knowsLeader }, version: version)
        do {
            let channel = try await GatewayServer.start(try HostPort(parsing: address), gateway: gateway, tls: tls, requestSeconds: httpRequestTimeout)
            logger.info("serving the JSON gateway", metadata: ["address": "\(address)", "tls": "\(tls != nil)"])
            return (channel, client)
        } catch {
            await client.close()
            throw error
        }
    }
}

/// Waits for SIGTERM or SIGINT.
enum Signals {
    static func waitForTermination() async {
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let once = OnceFlag()
            let queue = DispatchQueue(label: "synod.signals")
            let sources = [SIGTERM, SIGINT].map { DispatchSource.makeSignalSource(signal: $0, queue: queue) }
            for s in sources {
                s.setEventHandler {
                    if once.fire() {
                        for other in sources { other.cancel() }
                        continuation.resume()
                    }
                }
                s.resume()
            }
        }
    }
}

/// True exactly once.
final class OnceFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var fired = false
    func fire() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if fired { return false }
        fired = true
        return true
    }
}
