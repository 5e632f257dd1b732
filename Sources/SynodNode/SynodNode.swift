import Foundation
import Logging
import NIOCore
import NIOPosix
import SynodCore
import SynodLMDB
import SynodRaft
import SynodTransport
import SynodWire

/// A running Synod node: one Raft core driven by one thread, LMDB on disk, NIO for the network.
///
/// Threading: the core, the state machine and every pending-request table are confined to the
/// node thread (`NodeLoop`); NIO threads only decode frames and put events in the inbox. That is
/// what makes the `@unchecked Sendable` sound.
public final class SynodNode: @unchecked Sendable {
    public let configuration: NodeConfiguration
    let logger: Logger
    let group: MultiThreadedEventLoopGroup
    let peers: PeerTransport
    let clients: ClientServer
    let inbox = Inbox()
    let loop: NodeLoop
    private var thread: Thread?
    let stopped = NSCondition()
    var running = true
    /// The port clients connect to (resolved when the configuration asked for port 0).
    public private(set) var clientPort: Int = 0

    init(configuration: NodeConfiguration, store: LMDBStore, stateMachine: KVNodeStateMachine, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        peers = PeerTransport(id: configuration.id, clusterID: configuration.clusterID, clientAddress: configuration.clientAddress.description,
                              peers: configuration.peers, group: group, logger: logger)
        clients = ClientServer(group: group, logger: logger)
        loop = try NodeLoop(configuration: configuration, store: store, stateMachine: stateMachine, transport: peers, inbox: inbox, logger: logger)
    }

    func bind() async throws {
        let delegate = InboxDelegate(inbox: inbox)
        try await peers.start(listen: configuration.peerAddress!, delegate: delegate)
        clientPort = try await clients.start(listen: configuration.clientAddress, service: delegate)
        loop.clientAddress = "\(configuration.clientAddress.host):\(clientPort)"
        logger.info("node started", metadata: ["id": "\(configuration.id.rawValue)", "peer": "\(configuration.peerAddress!)", "client": "\(loop.clientAddress)"])
    }

    func startThread() {
        let t = Thread { [self] in
            loop.run()
            stopped.lock()
            running = false
            stopped.broadcast()
            stopped.unlock()
        }
        t.name = "synod-node-\(configuration.id.rawValue)"
        t.stackSize = 8 << 20
        thread = t
        t.start()
    }

    /// Stops serving: closes the ports, stops the node thread (after it finishes the current
    /// Ready, so nothing half-done reaches disk), and shuts the event loops down.
    public func shutdown() async {
        await clients.shutdown()
        inbox.put(.stop)
        waitUntilStopped()
        await peers.shutdown()
        try? await group.shutdownGracefully()
        logger.info("node stopped", metadata: ["id": "\(configuration.id.rawValue)"])
    }
}

extension SynodNode {
    /// Blocks until the node thread has returned (it finishes its current pass first).
    func waitUntilStopped() {
        stopped.lock()
        while running { stopped.wait() }
        stopped.unlock()
    }
}

/// Bridges NIO callbacks into the node's inbox.
final class InboxDelegate: PeerTransportDelegate, ClientService, Sendable {
    let inbox: Inbox
    init(inbox: Inbox) { self.inbox = inbox }

    func peerTransport(received message: Message) { inbox.put(.raft(message)) }
    func peerTransport(peer: NodeID, clientAddress: String) { inbox.put(.peerClientAddress(peer, clientAddress)) }

    func handle(_ request: ClientRequest, from connection: ClientConnection) {
        if !inbox.put(.request(request, connection)) {
            connection.send(ClientResponse(id: request.id, status: .busy, message: "node inbox full; retry"))
        }
    }

    func closed(_ connection: ClientConnection) { inbox.put(.connectionClosed(connection)) }
}
