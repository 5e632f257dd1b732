import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import SynodCore
import SynodTransport
import SynodWire

/// One TCP connection to one node, multiplexing requests by id.
final class Connection: Sendable {
    let endpoint: HostPort
    let channel: any Channel
    private let state: NIOLockedValueBox<(next: UInt64, waiting: [UInt64: EventLoopPromise<ClientResponse>], streams: [UInt64: @Sendable (ClientResponse) -> Void])>

    private init(endpoint: HostPort, channel: any Channel, state: NIOLockedValueBox<(next: UInt64, waiting: [UInt64: EventLoopPromise<ClientResponse>], streams: [UInt64: @Sendable (ClientResponse) -> Void])>) {
        self.endpoint = endpoint
        self.channel = channel
        self.state = state
    }

    static func connect(_ endpoint: HostPort, group: any EventLoopGroup, timeoutMillis: Int64, tls: NIOSSLContext? = nil) async throws -> Connection {
        let state = NIOLockedValueBox<(next: UInt64, waiting: [UInt64: EventLoopPromise<ClientResponse>], streams: [UInt64: @Sendable (ClientResponse) -> Void])>((1, [:], [:]))
        let bootstrap = ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.milliseconds(timeoutMillis))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addClientTLS(tls, host: endpoint.host)
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(frameBytesMax: WireProtocol.clientFrameBytesMax)))
                    try channel.pipeline.syncOperations.addHandler(ResponseHandler(state: state))
                }
            }
        let channel = try await Dial.connect(bootstrap, host: endpoint.host, port: endpoint.port).get()
        return Connection(endpoint: endpoint, channel: channel, state: state)
    }

    /// Sends one request and waits for its response (or the connection's failure).
    func request(_ body: ClientRequestBody) -> EventLoopFuture<ClientResponse> {
        let promise = channel.eventLoop.makePromise(of: ClientResponse.self)
        let id = register { $0.waiting[$1] = promise }
        write(ClientRequest(id: id, body: body)).whenFailure { error in
            if let p = self.state.withLockedValue({ $0.waiting.removeValue(forKey: id) }) { p.fail(error) }
        }
        return promise.futureResult
    }

    /// Sends a streaming request (a watch): every response under its id goes to `onResponse`.
    func stream(_ body: ClientRequestBody, _ onResponse: @escaping @Sendable (ClientResponse) -> Void) -> UInt64 {
        let id = register { $0.streams[$1] = onResponse }
        _ = write(ClientRequest(id: id, body: body))
        return id
    }

    /// Takes the next request id and records what waits for it, under the lock.
    private func register(_ waiter: (inout (next: UInt64, waiting: [UInt64: EventLoopPromise<ClientResponse>], streams: [UInt64: @Sendable (ClientResponse) -> Void]), UInt64) -> Void) -> UInt64 {
        state.withLockedValue { s -> UInt64 in
            let id = s.next
            s.next += 1
            waiter(&s, id)
            return id
        }
    }

    private func write(_ request: ClientRequest) -> EventLoopFuture<Void> {
        var buffer = channel.allocator.buffer(capacity: 64)
        request.encode(into: &buffer)
        return channel.writeAndFlush(buffer)
    }

    func endStream(_ id: UInt64) { _ = state.withLockedValue { $0.streams.removeValue(forKey: id) } }

    /// Sends a request whose answer nobody waits for (a watch's cancellation: the node answers
    /// under the watch's id, whose stream has ended).
    func post(_ body: ClientRequestBody) {
        let id = register { _, _ in }
        _ = write(ClientRequest(id: id, body: body))
    }

    var isActive: Bool { channel.isActive }

    func close() { channel.close(promise: nil) }
}

/// Matches responses to waiting requests; fails them all when the connection goes away.
private final class ResponseHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    let state: NIOLockedValueBox<(next: UInt64, waiting: [UInt64: EventLoopPromise<ClientResponse>], streams: [UInt64: @Sendable (ClientResponse) -> Void])>

    init(state: NIOLockedValueBox<(next: UInt64, waiting: [UInt64: EventLoopPromise<ClientResponse>], streams: [UInt64: @Sendable (ClientResponse) -> Void])>) {
        self.state = state
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var frame = unwrapInboundIn(data)
        guard frame.type == .clientResponse, let response = try? ClientResponse.decode(&frame.payload) else {
            context.close(promise: nil)
            return
        }
        let (promise, stream) = state.withLockedValue { s in (s.waiting.removeValue(forKey: response.id), s.streams[response.id]) }
        if let promise { promise.succeed(response) } else if let stream { stream(response) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let (waiting, streams) = state.withLockedValue { s -> ([EventLoopPromise<ClientResponse>], [(UInt64, @Sendable (ClientResponse) -> Void)]) in
            defer { s.waiting.removeAll(); s.streams.removeAll() }
            return (Array(s.waiting.values), s.streams.map { ($0.key, $0.value) })
        }
        for p in waiting { p.fail(ClientError.connectionLost) }
        // `.shuttingDown` tells a stream its connection went away (resume elsewhere), as opposed
        // to `.watchEnded`, which the node sends when the watch itself is over.
        for (id, s) in streams { s(ClientResponse(id: id, status: .shuttingDown, message: "connection lost")) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}
