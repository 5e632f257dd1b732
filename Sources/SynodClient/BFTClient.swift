#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import SynodCore
import SynodCrypto
import SynodPBFT
import SynodStateMachine
import SynodTransport
import SynodWire

/// A client of a BFT-mode cluster (`synod serve --mode bft`). It signs each request with its own
/// key, sends it to every replica (again after a timeout), and accepts a result only
/// when f+1 replicas sent the same bytes under valid MACs — so up to f lying replicas cannot make
/// it accept a wrong answer (`PBFTClient`, paper §4.1). One request at a time per client id, as
/// pBFT's exactly-once rule requires; calls made meanwhile wait their turn.
///
/// Threading: all state lives on one event loop of the group it is given.
public final class SynodBFTClient: @unchecked Sendable {
    public struct Configuration: Sendable {
        /// Every replica's client address, in replica-id order (the ids the key file names).
        public var endpoints: [HostPort]
        /// This client's keys (`synod bft keygen`'s `client-N.key`) and its id.
        public var keys: PBFTKeys
        public var id: ClientID
        /// How often the client's timers run.
        public var tickMillis: Int = 10
        /// Resend to every replica after this long without f+1 matching replies.
        public var retransmitMillis: Int = 500
        /// Give up on a request after this long (its outcome is then unknown).
        public var timeoutMillis: Int = 10_000
        /// Reads answered by 2f+1 matching replicas without ordering (falls back to an ordered
        /// read on timeout). Off by default: ordered reads need only f+1 replies.
        public var readOnlyOptimization = false
        /// Matching replies that accept a result; nil means f+1 (the paper's rule). Tests only:
        /// 2f+1 proves every live replica holds the same state, and 1 injects the bug f+1
        /// voting exists to prevent (one lying replica decides what the client believes).
        public var testingRepliesRequired: Int?
        /// Matching replies that accept a read-only answer; nil means 2f+1. Tests only: 1 injects
        /// the bug the read quorum exists to prevent (a stale replica's answer is believed).
        public var testingReadOnlyRepliesRequired: Int?

        public init(endpoints: [HostPort], keys: PBFTKeys, id: ClientID) {
            self.endpoints = endpoints
            self.keys = keys
            self.id = id
        }
    }

    struct Call {
        var operation: [UInt8]
        var readOnly: Bool
        var promise: EventLoopPromise<[UInt8]>
    }

    public let configuration: Configuration
    let loop: any EventLoop
    let replicas: [NodeID]
    var core: PBFTClient
    var channels: [NodeID: any Channel] = [:]
    var connecting: Set<NodeID> = []
    /// Frames for a replica whose link is still connecting, sent when it is up (bounded).
    var undelivered: [NodeID: [[UInt8]]] = [:]
    static let undeliveredMax = 64
    var current: (call: Call, deadline: NIODeadline)?
    var queue: [Call] = []
    var timer: RepeatedTask?
    var closed = false

    /// Connects lazily; the first request waits for the links it needs.
    public init(_ configuration: Configuration, group: any EventLoopGroup) throws {
        let replicas = configuration.keys.publicKeys.keys.compactMap(\.replicaID).sorted()
        guard replicas.count >= 4 else { throw ClientError.rejected(status: .badRequest, message: "the key file names \(replicas.count) replicas; BFT mode needs at least 4") }
        guard replicas.count == configuration.endpoints.count else {
            throw ClientError.rejected(status: .badRequest, message: "\(configuration.endpoints.count) endpoints for \(replicas.count) replicas in the key file")
        }
        self.configuration = configuration
        self.replicas = replicas
        loop = group.next()
        var config = PBFTClient.Config(id: configuration.id, replicas: replicas)
        config.retransmitTicks = max(1, configuration.retransmitMillis / configuration.tickMillis)
        config.readOnlyOptimization = configuration.readOnlyOptimization
        config.sendToAll = true
        if let n = configuration.testingRepliesRequired { config.writeReplies = n }
        if let n = configuration.testingReadOnlyRepliesRequired { config.readOnlyReplies = n }
        // Wall-clock microseconds: above every timestamp an earlier run of this client id used
        // (it would have had to send over a million requests a second to get ahead of the clock).
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let micros = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec / 1000)
        core = PBFTClient(config: config, crypto: Ed25519HMACAuthenticator(principal: .client(configuration.id), keys: configuration.keys), startingAfter: micros)
        loop.execute { [self] in
            for r in replicas { connect(r) }
            timer = loop.scheduleRepeatedTask(initialDelay: .milliseconds(Int64(configuration.tickMillis)),
                                              delay: .milliseconds(Int64(configuration.tickMillis))) { [self] _ in tick() }
        }
    }

    /// f, the number of faulty replicas the cluster (and this client) tolerates.
    public var faultsTolerated: Int { (replicas.count - 1) / 3 }

    // MARK: KV calls

    public func put(_ key: [UInt8], _ value: [UInt8], lease: LeaseID? = nil, prevKV: Bool = false) async throws -> PutResult {
        guard case let .put(r) = try await write(.put(key: key, value: value, lease: lease, prevKV: prevKV)) else { throw ClientError.badResponse("not a put result") }
        return r
    }

    public func delete(_ key: [UInt8]) async throws -> DeleteResult {
        guard case let .delete(r) = try await write(.delete(key: key, prevKV: false)) else { throw ClientError.badResponse("not a delete result") }
        return r
    }

    public func txn(_ t: Txn) async throws -> TxnResult {
        guard case let .txn(r) = try await write(.txn(t)) else { throw ClientError.badResponse("not a txn result") }
        return r
    }

    /// The key's value, ordered with the writes (linearizable).
    public func get(_ key: [UInt8]) async throws -> KeyValue? {
        try await range(RangeRequest(key: key)).kvs.first
    }

    public func range(_ request: RangeRequest) async throws -> RangeResult {
        let response = try await execute(.read(KVQuery.range(request).encode()), readOnly: configuration.readOnlyOptimization)
        guard case let .range(r) = response else { throw ClientError.badResponse("not a range result") }
        return r
    }

    /// A mesh proposal, decided by the replicas' state machines (see `SynodClient.mesh`).
    @discardableResult
    public func mesh(_ command: MeshCommand, ifVersion: Int64? = nil) async throws -> MeshResult {
        guard case let .mesh(r) = try await write(.mesh(command.normalized, ifVersion: ifVersion)) else { throw ClientError.badResponse("not a mesh result") }
        return r
    }

    /// The mesh, ordered with the writes.
    public func meshView() async throws -> MeshView {
        do { return try MeshView.decode(try await range(RangeRequest.prefix(MeshKeys.prefix)).kvs) } catch let e as DecodeError { throw ClientError.badResponse("mesh record: \(e)") }
    }

    /// Runs a command; a failure the state machine reported is thrown as `ClientError.kv`.
    public func write(_ command: Command) async throws -> Response {
        try await execute(.write(CommandEnvelope(command: command).encode()), readOnly: false)
    }

    /// Sends one operation and returns the result f+1 replicas agreed on (2f+1 for a read-only one).
    public func execute(_ operation: BFTOperation, readOnly: Bool) async throws -> Response {
        let promise = loop.makePromise(of: [UInt8].self)
        let call = Call(operation: operation.encode(), readOnly: readOnly, promise: promise)
        loop.execute { [self] in
            guard !closed else { return promise.fail(ClientError.connectionLost) }
            queue.append(call)
            startNext()
        }
        let bytes = try await promise.futureResult.get()
        let response: Response
        do { response = try Response.decode(bytes) } catch { throw ClientError.badResponse("\(error)") }
        if case let .failure(e) = response { throw ClientError.kv(e) }
        return response
    }

    /// Closes the links; calls still waiting fail.
    public func close() async {
        let done = loop.makePromise(of: Void.self)
        loop.execute { [self] in
            closed = true
            timer?.cancel()
            let closing = channels.values.map { $0.close() }
            channels = [:]
            current?.call.promise.fail(ClientError.connectionLost)
            current = nil
            for c in queue { c.promise.fail(ClientError.connectionLost) }
            queue = []
            EventLoopFuture.andAllComplete(closing, on: loop).whenComplete { _ in done.succeed(()) }
        }
        try? await done.futureResult.get()
    }

    // MARK: on the loop

    func startNext() {
        guard current == nil, !queue.isEmpty else { return }
        let call = queue.removeFirst()
        _ = core.invoke(call.operation, readOnly: call.readOnly)
        current = (call, .now() + .milliseconds(Int64(configuration.timeoutMillis)))
        flush()
    }

    func received(_ bytes: [UInt8]) {
        guard let env = try? PBFTCodec.decode(bytes), let cur = current, let result = core.step(env) else { return }
        current = nil
        cur.call.promise.succeed(result)
        startNext()
    }

    func tick() {
        guard let cur = current else { return }
        if NIODeadline.now() >= cur.deadline {
            core.abandon()
            current = nil
            cur.call.promise.fail(ClientError.unknownOutcome("no \(core.config.writeReplies) matching replies within \(configuration.timeoutMillis) ms"))
            startNext()
            return
        }
        core.tick()
        flush()
    }

    func flush() {
        for env in core.takeMessages() {
            guard let to = env.to.replicaID else { continue }
            let bytes = PBFTCodec.encode(env)
            guard let ch = channels[to], ch.isActive else {
                // Kept for when the link is up; beyond the bound, the retransmission after
                // `retransmitMillis` (to every replica) covers it.
                if undelivered[to, default: []].count < Self.undeliveredMax { undelivered[to, default: []].append(bytes) }
                connect(to)
                continue
            }
            write([bytes], to: ch)
        }
    }

    func write(_ frames: [[UInt8]], to ch: any Channel) {
        ch.writeAndFlush(ch.allocator.frames(.pbft, frames), promise: nil)
    }

    func connect(_ replica: NodeID) {
        guard !closed, channels[replica] == nil, !connecting.contains(replica), let i = replicas.firstIndex(of: replica) else { return }
        connecting.insert(replica)
        let endpoint = configuration.endpoints[i]
        let bootstrap = ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.milliseconds(1000))
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(frameBytesMax: WireProtocol.clientFrameBytesMax)))
                    try channel.pipeline.syncOperations.addHandler(BFTReplyHandler(client: self, replica: replica))
                }
            }
        Dial.connect(bootstrap, host: endpoint.host, port: endpoint.port)
            .whenComplete { [self] result in
                connecting.remove(replica)
                if case let .success(ch) = result {
                    if closed { return ch.close(promise: nil) }
                    channels[replica] = ch
                    if let frames = undelivered.removeValue(forKey: replica) { write(frames, to: ch) }
                } else {
                    undelivered[replica] = nil
                }
            }
    }

    func lost(_ replica: NodeID) { channels[replica] = nil }
}

/// Hands a replica's reply frames to the client (on the client's loop).
final class BFTReplyHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    let client: SynodBFTClient
    let replica: NodeID
    init(client: SynodBFTClient, replica: NodeID) {
        self.client = client
        self.replica = replica
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard frame.type == .pbft else { return context.close(promise: nil) }
        client.received(Array(frame.payload.readableBytesView))
    }

    func channelInactive(context: ChannelHandlerContext) {
        client.lost(replica)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}
