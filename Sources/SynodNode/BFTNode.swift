import Foundation
import Logging
import NIOCore
import NIOPosix
import SynodCore
import SynodCrypto
import SynodLMDB
import SynodPBFT
import SynodTransport
import SynodWire

/// A running BFT-mode replica (`synod serve --mode bft`): one pBFT core (`PBFTReplica`), Synod's
/// KV state machine in LMDB, real TCP links and real crypto (Ed25519 + HMAC-SHA256), driven by one
/// event-loop thread exactly as `SynodNode` drives Raft.
///
/// Recovery model (BFT-SMaRt's default, docs/PBFT.md "The networked replica"): the protocol state
/// lives in memory and the LMDB state is a working copy; a replica that restarts starts empty and
/// rejoins by state transfer from the others (2f+1-certified checkpoint), counting against f
/// until it has. Acknowledged writes survive any f replicas failing at once (crash or Byzantine),
/// not the loss of every replica at once — that needs the durable protocol state of a later
/// version. The working copy is therefore written without fsync.
public final class BFTNode: @unchecked Sendable {
    public let configuration: BFTConfiguration
    let logger: Logger
    let group: MultiThreadedEventLoopGroup
    let clientGroup: MultiThreadedEventLoopGroup
    let peers: PeerTransport
    let clients: ClientServer
    let inbox = Inbox()
    let loop: BFTLoop
    let stopped = StopLatch()
    public private(set) var clientPort: Int = 0
    /// Held from before the directory was prepared until `shutdown` has stopped the loop.
    var dataLock: DataDirectoryLock?

    /// Starts a replica: empties its working directory, binds its ports, starts its loop.
    public static func start(_ configuration: BFTConfiguration, logger: Logger = Logger(label: "synod-bft")) async throws -> BFTNode {
        try configuration.validate()
        var configuration = configuration
        // Before the directory is touched, and until shutdown: one replica per directory.
        let lock = try DataDirectoryLock.acquire(configuration.dataDirectory, fileName: BFTPromises.lockFile)
        configuration.amnesia = try BFTPromises.prepareDirectory(configuration.dataDirectory)
        if let a = configuration.amnesia {
            logger.notice("restarted without protocol state: voting again from the next view, and in view changes once past the sequence numbers it may have voted on (if every replica restarted, the cluster's data is gone: start them all on empty directories)",
                          metadata: ["view_through": "\(a.viewThrough.rawValue)", "sequence_through": "\(a.sequenceThrough.rawValue)"])
        }
        var options = LMDBOptions()
        options.unsafeNoSync = true // a working copy, rebuilt by state transfer after a restart (above)
        options.mapSizeBytes = configuration.mapSizeMiB << 20
        let store = try LMDBStore(directory: configuration.dataDirectory, tables: KVNodeStateMachine.tables, options: options)
        let node = try BFTNode(configuration: configuration, store: store, logger: logger)
        node.dataLock = lock
        do { try await node.bind() } catch {
            lock.release()
            throw error
        }
        node.startThread()
        return node
    }

    init(configuration: BFTConfiguration, store: LMDBStore, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        peers = PeerTransport(id: configuration.id, clusterID: configuration.clusterID, clientAddress: configuration.clientAddress.description,
                              peers: configuration.peers, group: group, logger: logger)
        clients = ClientServer(group: clientGroup, logger: logger)
        loop = try BFTLoop(configuration: configuration, store: store, stateMachine: try KVNodeStateMachine(store: store), transport: peers, inbox: inbox, logger: logger)
    }

    func bind() async throws {
        let delegate = BFTInboxDelegate(inbox: inbox)
        try await peers.start(listen: configuration.peerAddress!, delegate: delegate)
        clientPort = try await clients.start(listen: configuration.clientAddress, service: delegate)
        logger.info("BFT replica started", metadata: ["id": "\(configuration.id.rawValue)", "peer": "\(configuration.peerAddress!)",
                                                      "client": "\(configuration.clientAddress.host):\(clientPort)", "replicas": "\(configuration.peers.count)"])
    }

    func startThread() {
        let eventLoop = group.next()
        eventLoop.execute { [self] in
            loop.start(on: eventLoop) { [stopped] in stopped.signal() }
        }
    }

    /// Stops serving and shuts the event loops down (after the current pass).
    public func shutdown() async {
        await clients.shutdown()
        inbox.putAlways(.stop)
        stopped.wait()
        await peers.shutdown()
        try? await group.shutdownGracefully()
        try? await clientGroup.shutdownGracefully()
        dataLock?.release()
        logger.info("BFT replica stopped", metadata: ["id": "\(configuration.id.rawValue)"])
    }
}

/// Bridges NIO callbacks into the replica's inbox.
final class BFTInboxDelegate: PeerTransportDelegate, ClientService, Sendable {
    let inbox: Inbox
    init(inbox: Inbox) { self.inbox = inbox }

    func peerTransport(hello: PeerHello) {}
    func peerTransport(receivedPBFT bytes: [UInt8], from peer: NodeID) -> Bool {
        inbox.put(.pbftPeer(bytes, peer)) // a full inbox drops it: pBFT retransmits
        return true
    }

    func handle(_ request: ClientRequest, from connection: ClientConnection) {
        // `status` is informational (one replica's word, unauthenticated), for operators.
        if case .status = request.body, inbox.put(.request(request, connection)) { return }
        connection.send(ClientResponse(id: request.id, status: .badRequest,
                                       message: "this node runs BFT mode: use a BFT client (synod bft ..., SynodBFTClient)"))
    }

    func handlePBFT(_ bytes: [UInt8], from connection: ClientConnection) -> Bool {
        inbox.put(.pbftClient(bytes, connection)) // a full inbox drops it: the client retransmits
        return true
    }

    func closed(_ connection: ClientConnection) { inbox.put(.connectionClosed(connection)) }
}
