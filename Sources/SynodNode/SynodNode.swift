import Foundation
import Synchronization
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import SynodCore
import SynodLMDB
import SynodRaft
import SynodTransport
import SynodWire

/// A running Synod node: one Raft core, LMDB on disk, NIO for the network, all driven by one
/// event-loop thread.
///
/// Threading: the core, the state machine and every pending-request table are confined to the
/// node's event loop (`NodeLoop`); handlers put events in the inbox, which runs a pass on that
/// loop after each batch. That is what makes the `@unchecked Sendable` sound.
public final class SynodNode: @unchecked Sendable {
    public let configuration: NodeConfiguration
    let logger: Logger
    /// The node's own loop: its logic, LMDB commits and peer links.
    let group: MultiThreadedEventLoopGroup
    /// Client connections, on a second loop: response writes to many clients then overlap the
    /// node loop's fsync instead of delaying it.
    let clientGroup: MultiThreadedEventLoopGroup
    let peers: PeerTransport
    let clients: ClientServer
    let inbox = Inbox()
    let loop: NodeLoop
    let stopped = StopLatch()
    /// The client port's TLS context, if `configuration.clientTLS` is set.
    let clientTLS: NIOSSLContext?
    /// The port clients connect to (resolved when the configuration asked for port 0).
    public private(set) var clientPort: Int = 0
    /// Held from before the store opened until `shutdown` has stopped the loop.
    var dataLock: DataDirectoryLock?
    /// The cluster version in force as this node last published its metrics (at most half a
    /// second old), and the highest its build supports (docs/OPERATIONS.md, "Upgrades"). Safe
    /// from any thread.
    public var clusterVersion: (inForce: UInt16, supported: UInt16) {
        (UInt16(clamping: loop.metrics.clusterVersionInForce.load(ordering: .relaxed)), configuration.supportedClusterVersion)
    }

    /// The node's Raft term as of its last metrics publication (at most half a second old).
    /// Safe from any thread.
    public var term: UInt64 { loop.metrics.termPublished.load(ordering: .relaxed) }

    /// Whether this node knows a leader (as of its last metrics publication, at most half a
    /// second old) and its loop still publishes (a loop silent for 3 s counts as unhealthy):
    /// what `/health` reports. Safe from any thread.
    public var knowsLeader: Bool {
        let m = loop.metrics
        let age = Int64(ProcessInfo.processInfo.systemUptime * 1000) - m.publishedAtMillis.load(ordering: .relaxed)
        return m.healthy.load(ordering: .relaxed) && age <= NodeMetrics.healthStaleMillis
    }

    init(configuration: NodeConfiguration, store: LMDBStore, stateMachine: KVNodeStateMachine, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        peers = PeerTransport(id: configuration.id, clusterID: configuration.clusterID, clientAddress: configuration.advertisedClientAddress.description,
                              peers: configuration.peers, group: group, logger: logger, tls: try configuration.peerTLS.map { try PeerTLS($0) },
                              testingSkipPeerIdentity: configuration.testingSkipPeerIdentity, clusterVersion: configuration.supportedClusterVersion)
        clientTLS = try configuration.clientTLS.map { try $0.serverContext(requireClientCertificates: configuration.clientCertAuth) }
        clients = ClientServer(group: clientGroup, logger: logger)
        loop = try NodeLoop(configuration: configuration, store: store, stateMachine: stateMachine, transport: peers, inbox: inbox, logger: logger)
    }

    func bind() async throws {
        let delegate = InboxDelegate(inbox: inbox)
        try await peers.start(listen: configuration.peerAddress!, delegate: delegate)
        clientPort = try await clients.start(listen: configuration.clientAddress, service: delegate, tls: clientTLS)
        loop.clientAddress = configuration.advertiseClientAddress?.description ?? "\(configuration.clientAddress.host):\(clientPort)"
        logger.info("node started", metadata: ["id": "\(configuration.id.rawValue)", "peer": "\(configuration.peerAddress!)", "client": "\(loop.clientAddress)"])
    }

    /// The leader's periodic corruption check (`CorruptionChecker`), if configured.
    var corruptionCheck: Task<Void, Never>?

    func startCorruptionChecks() {
        let interval = configuration.corruptCheckIntervalSeconds
        guard interval > 0 else { return }
        let checker = CorruptionChecker(node: self, interval: interval, logger: logger)
        corruptionCheck = Task { await checker.run() }
    }

    func startThread() {
        let eventLoop = group.next()
        eventLoop.execute { [self] in
            loop.start(on: eventLoop) { [stopped] in stopped.signal() }
        }
    }

    /// Stops serving: closes the ports, stops the node loop (after it finishes the current
    /// Ready, so nothing half-done reaches disk), and shuts the event loops down.
    public func shutdown() async {
        corruptionCheck?.cancel()
        await clients.shutdown()
        inbox.put(.stop)
        stopped.wait()
        await peers.shutdown()
        try? await group.shutdownGracefully()
        try? await clientGroup.shutdownGracefully()
        dataLock?.release()
        logger.info("node stopped", metadata: ["id": "\(configuration.id.rawValue)"])
    }
}

/// Bridges NIO callbacks into the node's inbox.
final class InboxDelegate: PeerTransportDelegate, ClientService, Sendable {
    let inbox: Inbox
    init(inbox: Inbox) { self.inbox = inbox }

    func peerTransport(received message: Message) { inbox.put(.raft(message)) }
    func peerTransport(hello: PeerHello) { inbox.putAlways(.peerHello(hello)) }

    func handle(_ request: ClientRequest, from connection: ClientConnection) {
        if !inbox.put(.request(request, connection)) {
            connection.send(ClientResponse(id: request.id, status: .busy, message: "node inbox full; retry"))
        }
    }

    func closed(_ connection: ClientConnection) { inbox.put(.connectionClosed(connection)) }
}
