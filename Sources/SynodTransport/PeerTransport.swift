import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import NIOPosix
import SynodCore
import SynodRaft
import SynodWire

/// Receives what peer links deliver. Called on NIO event-loop threads.
public protocol PeerTransportDelegate: AnyObject, Sendable {
    func peerTransport(received message: Message)
    /// A peer's hello (from an accepted link): who it is, where it serves clients, the peer
    /// protocol it speaks and the cluster version its build supports.
    func peerTransport(hello: PeerHello)
    /// One pBFT envelope's bytes from `peer`'s link (BFT mode). Return false to refuse the frame
    /// (the link is closed); the default refuses, so a Raft node drops BFT peers.
    func peerTransport(receivedPBFT bytes: [UInt8], from peer: NodeID) -> Bool
}

extension PeerTransportDelegate {
    public func peerTransport(receivedPBFT bytes: [UInt8], from peer: NodeID) -> Bool { false }
    public func peerTransport(received message: Message) {}
}

/// TCP links between cluster members. Each node dials every peer and sends only on the links it
/// dialled; it receives on the links others dialled. A link's messages stay in order (one TCP
/// stream); a message for a peer that is not connected is dropped (Raft retransmits), and the
/// link reconnects with exponential backoff.
public final class PeerTransport: Sendable {
    public let id: NodeID
    private let group: any EventLoopGroup
    private let logger: Logger
    private let links: NIOLockedValueBox<[NodeID: PeerLink]>
    private let started = NIOLockedValueBox(false)
    private let server: NIOLockedValueBox<(any Channel)?> = NIOLockedValueBox(nil)
    private let hello: PeerHello
    private let tls: PeerTLS?
    private let checksPeerIdentity: Bool
    /// Inbound links closed because the certificate did not back the member id claimed.
    private let identityRefusals = NIOLockedValueBox(0)

    /// `testingSkipPeerIdentity` (tests only) accepts any member id a TLS peer claims: the hole
    /// `PeerIdentity` closes, so a test can show it is caught.
    public init(id: NodeID, clusterID: UInt64, clientAddress: String, peers: [(NodeID, HostPort)], group: any EventLoopGroup, logger: Logger,
                tls: PeerTLS? = nil, testingSkipPeerIdentity: Bool = false, clusterVersion: UInt16 = 0) {
        self.id = id
        self.group = group
        self.logger = logger
        self.tls = tls
        self.checksPeerIdentity = !testingSkipPeerIdentity
        let hello = PeerHello(from: id, clusterID: clusterID, clientAddress: clientAddress, clusterVersion: clusterVersion)
        self.hello = hello
        var links: [NodeID: PeerLink] = [:]
        for (peer, address) in peers where peer != id {
            links[peer] = PeerLink(peer: peer, address: address, hello: hello, group: group, logger: logger, tls: tls?.client)
        }
        self.links = NIOLockedValueBox(links)
    }

    /// Adds (or moves) a peer: a member added while the cluster runs.
    public func setPeer(_ peer: NodeID, address: HostPort) {
        guard peer != id else { return }
        let (old, link) = links.withLockedValue { l -> (PeerLink?, PeerLink?) in
            if let existing = l[peer], existing.address == address { return (nil, nil) }
            let link = PeerLink(peer: peer, address: address, hello: hello, group: group, logger: logger, tls: tls?.client)
            let old = l[peer]
            l[peer] = link
            return (old, link)
        }
        old?.close()
        if let link, started.withLockedValue({ $0 }) { link.connect() }
    }

    /// The peer addresses known, sorted by id.
    public var peerAddresses: [(NodeID, HostPort)] {
        links.withLockedValue { $0.map { ($0.key, $0.value.address) } }.sorted { $0.0 < $1.0 }
    }

    /// Listens for peers on `address`, delivering to `delegate`.
    public func start(listen address: HostPort, delegate: any PeerTransportDelegate) async throws {
        let logger = self.logger
        let clusterID = hello.clusterID
        let serverTLS = tls?.server
        // Under TLS a hello's member id must be backed by the certificate (`PeerIdentity`).
        let identity: PeerInboundHandler.IdentityCheck? = serverTLS == nil || !checksPeerIdentity ? nil : Self.identityCheck(links, refusals: identityRefusals)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addServerTLS(serverTLS)
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(frameBytesMax: WireProtocol.peerFrameBytesMax)))
                    try channel.pipeline.syncOperations.addHandler(PeerInboundHandler(clusterID: clusterID, delegate: delegate, logger: logger, identity: identity))
                }
            }
            .bind(host: address.host, port: address.port).get()
        server.withLockedValue { $0 = channel }
        started.withLockedValue { $0 = true }
        for link in links.withLockedValue({ Array($0.values) }) { link.connect() }
    }

    /// Checks a hello's member id against the certificate, by the address known for that member.
    private static func identityCheck(_ links: NIOLockedValueBox<[NodeID: PeerLink]>, refusals: NIOLockedValueBox<Int>) -> PeerInboundHandler.IdentityCheck {
        { (peer: NodeID, certificate: NIOSSLCertificate?) -> String? in
            let address: HostPort? = links.withLockedValue { $0[peer]?.address }
            let why = address.map { PeerIdentity.refusal(certificate: certificate, host: $0.host) } ?? "no peer address is known for member \(peer)"
            if why != nil { refusals.withLockedValue { $0 += 1 } }
            return why
        }
    }

    /// Inbound peer links refused so far because the certificate did not back the member id
    /// claimed (`PeerIdentity`): a misconfigured member, or someone else with a certificate of
    /// the peer CA (`synod_network_peer_links_refused_total`).
    public var peerLinksRefused: Int { identityRefusals.withLockedValue { $0 } }

    /// Sends messages now: one write per peer, one event-loop hop per loop.
    public func send(_ messages: [Message]) {
        var writes = OutboundWrites()
        send(messages, into: &writes)
        writes.flush()
    }

    /// Encodes messages into `writes`, grouped per peer (each peer's messages keep their order;
    /// peers' messages may interleave in `messages`): one buffer per peer, sent when the caller
    /// flushes `writes`.
    public func send(_ messages: [Message], into writes: inout OutboundWrites) {
        byPeer(messages, to: \.to) { link, ms in link.send(ms, into: &writes) }
    }

    /// Queues encoded frames of `type` for each peer into `writes` (in order per peer); frames for
    /// a peer whose link is down are dropped (the protocol retransmits).
    public func send(frames: [(to: NodeID, payload: [UInt8])], type: FrameType, into writes: inout OutboundWrites) {
        byPeer(frames, to: \.to) { link, fs in link.send(frames: fs.map(\.payload), type: type, into: &writes) }
    }

    /// Groups `items` by destination, keeping each peer's items in order, and hands each group to
    /// its link (peers in first-seen order; unknown peers skipped).
    private func byPeer<T>(_ items: [T], to destination: (T) -> NodeID, _ body: (PeerLink, [T]) -> Void) {
        guard !items.isEmpty else { return }
        var peers: [NodeID] = []
        var grouped: [NodeID: [T]] = [:]
        for item in items {
            let to = destination(item)
            if grouped[to] == nil { peers.append(to) }
            grouped[to, default: []].append(item)
        }
        let current = links.withLockedValue { $0 }
        for peer in peers {
            if let link = current[peer] { body(link, grouped[peer]!) }
        }
    }

    /// Number of messages dropped because a link was down or not writable.
    public var droppedCount: Int { links.withLockedValue { Array($0.values) }.reduce(0) { $0 + $1.dropped } }

    public func shutdown() async {
        for link in links.withLockedValue({ Array($0.values) }) { link.close() }
        if let ch = server.withLockedValue({ $0 }) { try? await ch.close() }
    }
}

/// One outbound link to a peer, reconnecting with backoff.
final class PeerLink: Sendable {
    let peer: NodeID
    let address: HostPort
    let hello: PeerHello
    let group: any EventLoopGroup
    let logger: Logger
    let tls: NIOSSLContext?
    static let backoffMillisMin: Int64 = 50
    static let backoffMillisMax: Int64 = 1000
    /// Bytes queued on a link beyond which messages are dropped instead of buffered.
    static let pendingBytesMax = 32 << 20

    private struct State {
        var channel: (any Channel)?
        var connecting = false
        var closed = false
        var backoffMillis = PeerLink.backoffMillisMin
        var dropped = 0
    }
    private let state = NIOLockedValueBox(State())

    init(peer: NodeID, address: HostPort, hello: PeerHello, group: any EventLoopGroup, logger: Logger, tls: NIOSSLContext?) {
        self.tls = tls
        self.peer = peer
        self.address = address
        self.hello = hello
        self.group = group
        self.logger = logger
    }

    var dropped: Int { state.withLockedValue { $0.dropped } }

    func send(_ messages: [Message], into writes: inout OutboundWrites) {
        guard let channel = activeChannel(orDrop: messages.count) else { return }
        var buffer = channel.allocator.buffer(capacity: 256 * messages.count)
        for m in messages { buffer.writeFrame(.raft) { RaftCodec.encode(m, into: &$0) } }
        writes.add(buffer, to: channel)
    }

    func send(frames: [[UInt8]], type: FrameType, into writes: inout OutboundWrites) {
        guard let channel = activeChannel(orDrop: frames.count) else { return }
        writes.add(channel.allocator.frames(type, frames), to: channel)
    }

    /// The connected channel; or nil after counting `count` messages as dropped and starting a
    /// reconnect.
    private func activeChannel(orDrop count: Int) -> (any Channel)? {
        if let channel = state.withLockedValue({ $0.channel }), channel.isActive { return channel }
        state.withLockedValue { $0.dropped += count }
        connect()
        return nil
    }

    func connect() {
        let go = state.withLockedValue { s -> Bool in
            guard !s.closed, !s.connecting, s.channel == nil else { return false }
            s.connecting = true
            return true
        }
        guard go else { return }
        let hello = self.hello
        let (tls, host) = (self.tls, address.host)
        let bootstrap = ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.milliseconds(500))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addClientTLS(tls, host: host)
                    try channel.pipeline.syncOperations.addHandler(DiscardInboundHandler())
                }
            }
        Dial.connect(bootstrap, host: address.host, port: address.port)
            .whenComplete { result in
                switch result {
                case let .success(channel):
                    var buffer = channel.allocator.buffer(capacity: 64)
                    hello.encode(into: &buffer)
                    channel.writeAndFlush(buffer, promise: nil)
                    self.state.withLockedValue { s in
                        s.channel = channel
                        s.connecting = false
                        s.backoffMillis = PeerLink.backoffMillisMin
                    }
                    self.logger.debug("peer link up", metadata: ["peer": "\(self.peer)"])
                    channel.closeFuture.whenComplete { _ in
                        self.state.withLockedValue { $0.channel = nil }
                        self.retryLater()
                    }
                case .failure:
                    self.state.withLockedValue { $0.connecting = false }
                    self.retryLater()
                }
            }
    }

    private func retryLater() {
        let delay = state.withLockedValue { s -> Int64? in
            guard !s.closed else { return nil }
            let d = s.backoffMillis
            s.backoffMillis = min(s.backoffMillis * 2, PeerLink.backoffMillisMax)
            return d
        }
        guard let delay else { return }
        group.next().scheduleTask(in: .milliseconds(delay)) { self.connect() }
    }

    func close() {
        let ch = state.withLockedValue { s -> (any Channel)? in
            s.closed = true
            return s.channel
        }
        ch?.close(promise: nil)
    }
}

/// Inbound side of a peer link: a hello, then Raft messages. A Raft message of a type this build
/// does not know is dropped; anything else malformed closes the link.
final class PeerInboundHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    let clusterID: UInt64
    let delegate: any PeerTransportDelegate
    let logger: Logger
    /// Why the TLS peer's certificate does not back the member id it claims, or nil if it does.
    typealias IdentityCheck = @Sendable (NodeID, NIOSSLCertificate?) -> String?
    let identity: IdentityCheck?
    var peer: NodeID?
    /// Raft messages of unknown types dropped on this link.
    var unknownTypesDropped = 0
    /// Message types above this are a newer build's (0 and gaps below it are malformed).
    static let newestMessageType: UInt8 = MessageType.allCases.map(\.rawValue).max()!

    init(clusterID: UInt64, delegate: any PeerTransportDelegate, logger: Logger, identity: IdentityCheck? = nil) {
        self.clusterID = clusterID
        self.delegate = delegate
        self.logger = logger
        self.identity = identity
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var frame = unwrapInboundIn(data)
        do {
            switch (frame.type, peer) {
            case (.peerHello, nil):
                let hello = try PeerHello.decode(&frame.payload)
                guard hello.clusterID == clusterID else {
                    logger.warning("peer from another cluster; closing", metadata: ["cluster": "\(hello.clusterID)"])
                    context.close(promise: nil)
                    return
                }
                if let identity {
                    let certificate = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate
                    if let why = identity(hello.from, certificate) {
                        logger.warning("peer refused: its certificate does not back the member id it claims; closing",
                                       metadata: ["claimed": "\(hello.from)", "why": "\(why)", "remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")"])
                        context.close(promise: nil)
                        return
                    }
                }
                peer = hello.from
                delegate.peerTransport(hello: hello)
            case let (.raft, .some(from)):
                if let type = frame.payload.getInteger(at: frame.payload.readerIndex, as: UInt8.self), type > Self.newestMessageType {
                    // A newer peer's message kind: Raft tolerates a lost message, so drop it and
                    // keep the link (closing it would cut the peer's replication too).
                    unknownTypesDropped += 1
                    if unknownTypesDropped == 1 || unknownTypesDropped % 10_000 == 0 {
                        logger.notice("dropping peer messages of a type this build does not know (a newer peer?)",
                                      metadata: ["peer": "\(from)", "type": "\(type)", "dropped": "\(unknownTypesDropped)"])
                    }
                    return
                }
                let m = try RaftCodec.decode(&frame.payload)
                guard m.from == from else { throw DecodeError.invalid("message from \(m.from) on \(from)'s link") }
                delegate.peerTransport(received: m)
            case let (.pbft, .some(from)):
                guard delegate.peerTransport(receivedPBFT: Array(frame.payload.readableBytesView), from: from) else {
                    throw WireError.unexpectedFrame(frame.type)
                }
            default:
                throw WireError.unexpectedFrame(frame.type)
            }
        } catch {
            errorCaught(context: context, error: error)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.warning("dropping peer connection after bad input", metadata: ["error": "\(error)", "remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")"])
        context.close(promise: nil)
    }
}

/// Outbound links ignore anything the peer sends back.
final class DiscardInboundHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}
