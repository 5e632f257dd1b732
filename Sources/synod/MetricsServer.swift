import Foundation
import Metrics
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import Synod
import SynodTransport

/// `synod serve --listen-metrics HOST:PORT`: an HTTP endpoint for monitoring, as etcd's
/// `--listen-metrics-urls`. `GET /metrics` is the node's swift-metrics (`NodeMetrics`) in
/// Prometheus' text format; `GET /health` answers 200 `{"health":"true"}` while the node knows
/// a leader and 503 otherwise (for load balancers); `GET /version` answers, as etcd's does, the
/// build's version and the cluster version in force and supported
/// (`{"synod":"…","cluster_version":1,"cluster_version_supported":1}`). Anything else is 404 (405 for other
/// methods). Each connection gets one answer and is closed; request heads are bounded by NIO's
/// HTTP parser, bodies are ignored.
enum MetricsServer {
    /// Bootstraps swift-metrics with a Prometheus registry. Must run before the node starts (its
    /// metrics are created with it).
    static func bootstrap() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // LMDB commits take 0.1-10 ms here: etcd's backend-commit buckets (1 ms doubling to 8 s),
        // with two finer ones below.
        factory.durationHistogramBuckets["synod_disk_backend_commit_duration_seconds"] =
            [.microseconds(250), .microseconds(500)] + (0...13).map { .milliseconds(1 << $0) }
        MetricsSystem.bootstrap(factory)
        return registry
    }

    /// `version`: the body of `/version` (etcd's: the server's and the cluster's versions).
    static func start(_ address: HostPort, registry: PrometheusCollectorRegistry, version: @escaping @Sendable () -> String = { "{}" },
                      healthy: @escaping @Sendable () -> Bool) async throws -> any Channel {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 16)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(registry: registry, version: version, healthy: healthy))
                }
            }
            .bind(host: address.host, port: address.port).get()
    }
}

final class MetricsHTTPHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let registry: PrometheusCollectorRegistry
    let healthy: @Sendable () -> Bool
    let version: @Sendable () -> String
    var head: HTTPRequestHead?

    init(registry: PrometheusCollectorRegistry, version: @escaping @Sendable () -> String, healthy: @escaping @Sendable () -> Bool) {
        self.registry = registry
        self.version = version
        self.healthy = healthy
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .head(h): head = h
        case .body: break
        case .end:
            guard let h = head else { return }
            head = nil
            let (status, type, body) = answer(h)
            var headers = HTTPHeaders([("Content-Type", type), ("Content-Length", "\(body.count)"), ("Connection", "close")])
            if status == .methodNotAllowed { headers.add(name: "Allow", value: "GET") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
        }
    }

    func answer(_ h: HTTPRequestHead) -> (HTTPResponseStatus, String, [UInt8]) {
        guard h.method == .GET else { return (.methodNotAllowed, "text/plain", Array("GET only\n".utf8)) }
        switch h.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? "" {
        case "/metrics": return (.ok, "text/plain; version=0.0.4", registry.emitToBuffer())
        case "/health":
            return healthy() ? (.ok, "application/json", Array(#"{"health":"true"}"#.utf8))
                             : (.serviceUnavailable, "application/json", Array(#"{"health":"false","reason":"no leader"}"#.utf8))
        case "/version": return (.ok, "application/json", Array(version().utf8))
        default: return (.notFound, "text/plain", Array("not found: try /metrics, /health or /version\n".utf8))
        }
    }
}
