import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import NIOPosix
import SynodCore
import SynodWire

/// A user a connection authenticated as, and the generation of the credential it used.
public struct ConnectionIdentity: Sendable, Hashable {
    public var user: String
    public var generation: UInt64
    public init(user: String, generation: UInt64) {
        self.user = user
        self.generation = generation
    }
}

/// Handles client requests. Called on NIO event-loop threads; must not block.
public protocol ClientService: AnyObject, Sendable {
    func handle(_ request: ClientRequest, from connection: ClientConnection)
    /// The connection closed: drop its watches and pending work.
    func closed(_ connection: ClientConnection)
    /// One pBFT envelope's bytes from a BFT client. Return false to refuse the frame (the
    /// connection is closed); the default refuses, so a Raft node drops BFT clients.
    func handlePBFT(_ bytes: [UInt8], from connection: ClientConnection) -> Bool
}

extension ClientService {
    public func handlePBFT(_ bytes: [UInt8], from connection: ClientConnection) -> Bool { false }
}

/// One client connection. Sendable: responses may be sent from any thread; several responses
/// sent together go out in one write and one flush.
public final class ClientConnection: Sendable, Hashable {
    public let number: UInt64
    let channel: any Channel
    private let identityBox = NIOLockedValueBox<ConnectionIdentity?>(nil)

    /// Who this connection authenticated as (`ClientRequestBody.authenticate`); nil until it
    /// did. Safe from any thread (the node sets it after checking a password off its loop).
    public var identity: ConnectionIdentity? {
        get { identityBox.withLockedValue { $0 } }
        set { identityBox.withLockedValue { $0 = newValue } }
    }

    init(number: UInt64, channel: any Channel) {
        self.number = number
        self.channel = channel
    }

    public func send(_ response: ClientResponse) { send([response]) }

    public func send(_ responses: [ClientResponse]) {
        guard !responses.isEmpty else { return }
        var buffer = channel.allocator.buffer(capacity: 64 * responses.count)
        for r in responses { r.encode(into: &buffer) }
        channel.writeAndFlush(buffer, promise: nil)
    }

    public var isActive: Bool { channel.isActive }

    /// Queues whole frames of `type` (BFT replies) into `writes`.
    public func send(frames: [[UInt8]], type: FrameType, into writes: inout OutboundWrites) {
        guard !frames.isEmpty else { return }
        writes.add(channel.allocator.frames(type, frames), to: channel)
    }

    /// False while more than the channel's high watermark (64 KiB, NIO's default) of responses
    /// waits to be written: the client is not reading. Safe from any thread. Server-pushed
    /// output (watch events) should wait for it; requests from such a client are not read
    /// meanwhile (`ClientRequestHandler.channelWritabilityChanged`).
    public var isWritable: Bool { channel.isWritable }

    /// Encodes `responses` into `writes` (sent when the caller flushes them, in one hop per loop
    /// shared with whatever else the caller queued).
    public func send(_ responses: [ClientResponse], into writes: inout OutboundWrites) {
        guard !responses.isEmpty else { return }
        var buffer = channel.allocator.buffer(capacity: 96 * responses.count)
        for r in responses { r.encode(into: &buffer) }
        writes.add(buffer, to: channel)
    }

    public static func == (a: ClientConnection, b: ClientConnection) -> Bool { a.number == b.number }
    public func hash(into h: inout Hasher) { h.combine(number) }
}

/// The client-facing TCP server.
public final class ClientServer: Sendable {
    private let group: any EventLoopGroup
    private let logger: Logger
    private let channel: NIOLockedValueBox<(any Channel)?> = NIOLockedValueBox(nil)
    private let counter = NIOLockedValueBox<UInt64>(0)

    public init(group: any EventLoopGroup, logger: Logger) {
        self.group = group
        self.logger = logger
    }

    /// Binds `address` and serves `service`. Returns the bound port (useful with port 0).
    @discardableResult
    public func start(listen address: HostPort, service: any ClientService, tls: NIOSSLContext? = nil) async throws -> Int {
        let logger = self.logger
        let counter = self.counter
        let ch = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                let number = counter.withLockedValue { n -> UInt64 in n += 1; return n }
                let connection = ClientConnection(number: number, channel: channel)
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addServerTLS(tls)
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(frameBytesMax: WireProtocol.clientFrameBytesMax)))
                    try channel.pipeline.syncOperations.addHandler(ClientRequestHandler(connection: connection, service: service, logger: logger))
                }
            }
            .bind(host: address.host, port: address.port).get()
        channel.withLockedValue { $0 = ch }
        return ch.localAddress?.port ?? address.port
    }

    public func shutdown() async {
        if let ch = channel.withLockedValue({ $0 }) { try? await ch.close() }
    }
}

/// Decodes requests on one connection and hands them to the service. Bad input closes the
/// connection (logged); the node keeps serving everyone else — except a well-framed request of
/// a kind this build does not know (a newer client): that one is answered `badRequest` under
/// its id, so the client can fall back to an older request.
final class ClientRequestHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    let connection: ClientConnection
    let service: any ClientService
    let logger: Logger

    init(connection: ClientConnection, service: any ClientService, logger: Logger) {
        self.connection = connection
        self.service = service
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var frame = unwrapInboundIn(data)
        do {
            switch frame.type {
            case .clientRequest:
                let id: UInt64? = frame.payload.getInteger(at: frame.payload.readerIndex)
                let request: ClientRequest
                do { request = try ClientRequest.decode(&frame.payload) } catch {
                    guard case let .unknownValue(what, kind) = error, what == "request kind", let id else { throw error }
                    connection.send(ClientResponse(id: id, status: .badRequest, message: "unknown request kind \(kind): this node's build is older than the client's"))
                    return
                }
                service.handle(request, from: connection)
            case .pbft:
                guard service.handlePBFT(Array(frame.payload.readableBytesView), from: connection) else { throw WireError.unexpectedFrame(frame.type) }
            default: throw WireError.unexpectedFrame(frame.type)
            }
        } catch {
            errorCaught(context: context, error: error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        service.closed(connection)
        context.fireChannelInactive()
    }

    /// Backpressure: a client that does not read its responses is not read from either, so the
    /// node's buffers for it stay bounded (requests in flight stop growing; watch events wait
    /// in the history, see `NodeLoop.deliver`).
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.warning("dropping client connection after bad input", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}

