import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SynodTransport

/// `synod serve --listen-http HOST:PORT`: etcd's JSON gateway (`Gateway`) over HTTP/1.1, with
/// keep-alive and pipelining (NIO's server pipeline answers requests in order), and TLS with the
/// client port's certificate — and its client-certificate requirement — when the node has one.
/// Limits: request bodies of `bodyBytesMax` (413 above), `connectionsMax` open connections
/// (more are closed at once), `streamPendingBytesMax` unsent bytes per watch stream (a client
/// that stops reading is disconnected rather than buffered for), and `requestSeconds`: a
/// connection with no request in flight — just opened (its TLS handshake included), or its last
/// answer sent — is closed unless a whole request (head and body) arrives within it. Without that
/// bound, `connectionsMax` idle or byte-by-byte connections would lock every client out.
enum GatewayServer {
    static let bodyBytesMax = 3 << 20
    static let connectionsMax = 1_024
    static let streamPendingBytesMax = 16 << 20
    /// Default of `synod serve --http-request-timeout`, in seconds.
    static let requestSecondsDefault = 30
    /// Bounds of `--http-request-timeout`.
    static let requestSecondsRange = 1...3_600

    static func start(_ address: HostPort, gateway: Gateway, tls: NIOSSLContext?, requestSeconds: Int = requestSecondsDefault) async throws -> any Channel {
        let connections = NIOLockedValueBox(0)
        return try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(GatewayHTTPHandler(gateway: gateway, connections: connections,
                                                                                      requestTimeout: .seconds(Int64(requestSeconds))))
                }
            }
            .bind(host: address.host, port: address.port).get()
    }
}

/// One HTTP connection. Confined to its channel's event loop; answers are computed in tasks and
/// written back on the loop (`NIOLoopBound`), which is what makes `@unchecked Sendable` sound.
final class GatewayHTTPHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let gateway: Gateway
    let connections: NIOLockedValueBox<Int>
    var counted = false
    var head: HTTPRequestHead?
    var body: [UInt8] = []
    var tooLarge = false
    /// The request being answered (a watch runs until the connection closes).
    var task: Task<Void, Never>?
    let requestTimeout: TimeAmount
    /// Closes the connection unless a whole request arrives first (armed while none is in flight).
    var deadline: Scheduled<Void>?

    init(gateway: Gateway, connections: NIOLockedValueBox<Int>, requestTimeout: TimeAmount) {
        self.gateway = gateway
        self.connections = connections
        self.requestTimeout = requestTimeout
    }

    func channelActive(context: ChannelHandlerContext) {
        counted = connections.withLockedValue { n in
            guard n < GatewayServer.connectionsMax else { return false }
            n += 1
            return true
        }
        guard counted else { return context.close(promise: nil) }
        armDeadline(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if counted { connections.withLockedValue { $0 -= 1 } }
        counted = false
        deadline?.cancel()
        deadline = nil
        task?.cancel()
        task = nil
        context.fireChannelInactive()
    }

    /// Starts the wait for the next whole request (`GatewayServer.requestSeconds`).
    private func armDeadline(_ context: ChannelHandlerContext) {
        deadline?.cancel()
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: requestTimeout) { channel.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .head(h):
            head = h
            body = []
            tooLarge = false
        case var .body(chunk):
            guard !tooLarge else { return }
            if body.count + chunk.readableBytes > GatewayServer.bodyBytesMax {
                tooLarge = true
                body = []
            } else {
                body += chunk.readBytes(length: chunk.readableBytes) ?? []
            }
        case .end:
            deadline?.cancel()
            deadline = nil
            dispatch(context)
        }
    }

    private func dispatch(_ context: ChannelHandlerContext) {
        guard let head else { return }
        self.head = nil
        let request = body
        body = []
        if tooLarge {
            let e = GatewayError(status: .payloadTooLarge, code: 8, message: "the request body exceeds \(GatewayServer.bodyBytesMax) bytes")
            return send(context, head, gateway.reply(e), keepAlive: false)
        }
        let path = String(head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
        let loop = context.eventLoop
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: loop)
        let gateway = self.gateway
        if head.method == .POST && path == "/v3/watch" {
            let plan: GatewayWatchPlan
            do throws(GatewayError) {
                guard case let .watch(p) = try GatewayCall.decode(path: path, body: request) else { throw .invalid("not a watch") }
                plan = p
            } catch {
                return send(context, head, gateway.reply(error), keepAlive: head.isKeepAlive)
            }
            let token = head.headers["authorization"].first
            if let token, !token.isEmpty {
                do throws(GatewayError) { _ = try gateway.tokens.client(for: token) } catch {
                    return send(context, head, gateway.reply(error), keepAlive: head.isKeepAlive)
                }
            }
            return startStream(context, head, plan, token: token)
        }
        task = Task {
            let reply = await gateway.handle(method: head.method, path: path, body: request, token: head.headers["authorization"].first)
            loop.execute { bound.value.handler.send(bound.value.context, head, reply, keepAlive: head.isKeepAlive) }
        }
    }

    private func send(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ reply: Gateway.Reply, keepAlive: Bool) {
        task = nil
        guard context.channel.isActive else { return }
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: "\(reply.body.count)")
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: reply.status, headers: headers))), promise: nil)
        var buffer = context.channel.allocator.buffer(capacity: reply.body.count)
        buffer.writeBytes(reply.body)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        let channel = context.channel
        // Armed before the end goes out: writing it hands over a pipelined next request at once
        // (NIO's pipeline handler), whose end must find the deadline there to cancel.
        if keepAlive { armDeadline(context) }
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { channel.close(promise: nil) }
        }
    }

    /// A watch: the head now, then one line per message as the watch yields them (chunked for
    /// HTTP/1.1, raw until close for 1.0), and the connection closes when the watch ends.
    private func startStream(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ plan: GatewayWatchPlan, token: String?) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "connection", value: "close")
        if head.version.major == 1 && head.version.minor == 0 {
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
        } else {
            headers.add(name: "transfer-encoding", value: "chunked")
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
        }
        let channel = context.channel
        let loop = context.eventLoop
        let bound = NIOLoopBound(context, eventLoop: loop)
        let pending = NIOLockedValueBox(0)
        let gateway = self.gateway
        let wrap: @Sendable ([UInt8], ChannelHandlerContext) -> Void = { bytes, context in
            var buffer = context.channel.allocator.buffer(capacity: bytes.count)
            buffer.writeBytes(bytes)
            context.writeAndFlush(NIOAny(HTTPServerResponsePart.body(.byteBuffer(buffer)))).whenComplete { _ in
                pending.withLockedValue { $0 -= bytes.count }
            }
        }
        task = Task {
            await gateway.asTokenUser(token, { await gateway.runWatch(plan) { bytes in
                guard channel.isActive else { return false }
                let over = pending.withLockedValue { p -> Bool in
                    p += bytes.count
                    return p > GatewayServer.streamPendingBytesMax
                }
                if over {
                    channel.close(promise: nil)
                    return false
                }
                loop.execute { wrap(bytes, bound.value) }
                return true
            } }, refused: { _ in })
            loop.execute {
                let context = bound.value
                guard context.channel.isActive else { return }
                context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).whenComplete { _ in channel.close(promise: nil) }
            }
        }
    }
}
