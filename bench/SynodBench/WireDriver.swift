import Foundation
import Histogram
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import SynodClient
import SynodCore
import SynodStateMachine
import SynodTransport
import SynodWire

// The wire driver (`--driver wire`, the default for put/get/mixed/txn): a closed-loop load
// generator written directly on NIO. Each connection's handler keeps its share of the requests
// in flight and sends the next one from the event loop the moment a response arrives, so a round
// trip costs the generator one read and one write, with no task switch and no thread hop.
// It speaks the same protocol as SynodClient — writes carry a session (client id, sequence),
// reads name their consistency — but it does not retry or follow redirects: it drives the leader
// it found at the start (gets: every node, with `--read-from all`), and anything but `ok` counts
// as an error.
//
// Why it exists: on a two-core machine the generator competes with the cluster for CPU. Through
// SynodClient a request costs ~35 µs of generator CPU (two hops between the event loop and
// Swift's executor, a timer per request); the wire driver costs a fraction of that, which leaves
// the cores to the system being measured. `--driver client` keeps the library path measurable.

/// What the wire driver sends; built once per run.
struct WireRequestMaker: Sendable {
    let spec: WorkloadSpec
    let value: [UInt8]

    init(spec: WorkloadSpec, value: [UInt8]) {
        self.spec = spec
        self.value = value
    }

    func query(_ k: Int) -> [UInt8] { KVQuery.range(RangeRequest(key: keyBytes(k, size: spec.keySize))).encode() }

    /// The request body for key number `k`; `session` is used by writes.
    func body(key k: Int, session: ClientSession, read: Bool) -> ClientRequestBody {
        if read { return .read(spec.consistency, query(k)) }
        if spec.kind == .keepalive, !spec.leases.isEmpty { return .leaseKeepAlive(id: Int64(bitPattern: spec.leases[k % spec.leases.count])) }
        let key = keyBytes(k, size: spec.keySize)
        let command: Command
        switch spec.kind {
        case .txn: command = .txn(Txn(compares: [Compare(key: key, .greater, .version(-1))], success: [.put(key: key, value: value, lease: nil, prevKV: false)]))
        default: command = .put(key: key, value: value, lease: nil, prevKV: false)
        }
        return .write(CommandEnvelope(session: session, command: command).encode())
    }
}

/// One connection's share of a run: `slots` requests in flight, each slot a simulated client
/// with its own key sequence and write session. Runs entirely on its channel's event loop.
final class WireLoadHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = ByteBuffer

    struct Slot {
        var seq: Int
        var session: ClientSession
        var sentAt: UInt64 = 0
        var done = 0
        var read = false
    }

    let maker: WireRequestMaker
    // Set by `begin`, once every connection is ready.
    var deadline: UInt64?
    var perSlot: Int?
    var progress = Progress()
    var finished: EventLoopPromise<Histogram<UInt64>>?
    /// Succeeds once the connection is up (and authenticated, with credentials).
    let ready: OnceReady
    var context: ChannelHandlerContext?
    var slots: [Slot]
    var active: Int
    var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    var rng = SystemRandomNumberGenerator()
    var pendingOK = 0
    let credentials: Credentials?
    /// The request id of the authenticate request (never a slot's).
    static let authenticateID = UInt64.max

    init(maker: WireRequestMaker, firstClient: Int, slots: Int, sessionBase: UInt64, ready: OnceReady, credentials: Credentials? = nil) {
        self.credentials = credentials
        self.maker = maker
        self.ready = ready
        self.slots = (0..<slots).map { i in Slot(seq: firstClient + i, session: ClientSession(clientID: sessionBase + UInt64(firstClient + i), sequence: 1)) }
        self.active = slots
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func channelActive(context: ChannelHandlerContext) {
        if let credentials {
            var buffer = context.channel.allocator.buffer(capacity: 64)
            ClientRequest(id: Self.authenticateID, body: .authenticate(user: credentials.user, password: Array(credentials.password.utf8))).encode(into: &buffer)
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        } else {
            ready.complete(nil)
        }
        context.fireChannelActive()
    }

    /// Starts the load (on the channel's loop), once every connection is ready: connecting and
    /// authenticating stay out of the measured window.
    func begin(progress: Progress, deadline: UInt64?, perSlot: Int?, finished: EventLoopPromise<Histogram<UInt64>>) {
        (self.progress, self.deadline, self.perSlot, self.finished) = (progress, deadline, perSlot, finished)
        guard let context, context.channel.isActive else {
            active = 0
            progress.add(ok: false, error: BenchError("connection closed before the run"))
            return finished.succeed(histogram)
        }
        for i in slots.indices { send(slot: i, context: context) }
        context.flush()
    }

    func send(slot i: Int, context: ChannelHandlerContext) {
        let spec = maker.spec
        let k = spec.nextKey(&slots[i].seq, &rng)
        let read = spec.nextIsRead(&rng)
        slots[i].read = read
        var buffer = context.channel.allocator.buffer(capacity: 64 + spec.valueSize + spec.keySize)
        ClientRequest(id: UInt64(i), body: maker.body(key: k, session: slots[i].session, read: read)).encode(into: &buffer)
        slots[i].sentAt = now()
        context.write(wrapOutboundOut(buffer), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var frame = unwrapInboundIn(data)
        guard frame.type == .clientResponse, let r = try? ClientResponse.decode(&frame.payload) else {
            progress.add(ok: false, error: BenchError("bad response frame"))
            context.close(promise: nil)
            return
        }
        if r.id == Self.authenticateID, credentials != nil {
            guard r.status == .ok else {
                ready.complete(BenchError("authenticate: \(r.status) \(r.message)"))
                return context.close(promise: nil)
            }
            return ready.complete(nil)
        }
        guard r.id < UInt64(slots.count) else {
            progress.add(ok: false, error: BenchError("bad response frame"))
            context.close(promise: nil)
            return
        }
        let i = Int(r.id)
        let t = now()
        var ok = r.status == .ok
        if ok, case .failure(let e)? = try? Response.decode(r.body) {
            ok = false
            progress.add(ok: false, error: BenchError("state machine refused: \(e)"))
        } else if !ok {
            progress.add(ok: false, error: BenchError("status \(r.status): \(r.message)"))
        }
        if ok {
            histogram.record((t - slots[i].sentAt) / 1000)
            pendingOK += 1
            if !slots[i].read { slots[i].session.sequence += 1 }
        } else if !slots[i].read {
            // Outcome unknown: never reuse the session (as SynodClient does).
            slots[i].session = ClientSession(clientID: slots[i].session.clientID &+ (1 << 40), sequence: 1)
        }
        slots[i].done += 1
        if let deadline, t >= deadline { return retire(context: context) }
        if let perSlot, slots[i].done >= perSlot { return retire(context: context) }
        send(slot: i, context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if pendingOK > 0 {
            progress.add(okCount: pendingOK)
            pendingOK = 0
        }
        context.flush()
    }

    func retire(context: ChannelHandlerContext) {
        active -= 1
        if active == 0 {
            if pendingOK > 0 { progress.add(okCount: pendingOK); pendingOK = 0 }
            finished?.succeed(histogram)
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if active > 0 {
            progress.add(ok: false, error: BenchError("connection lost with \(active) requests in flight"))
            active = 0
            finished?.succeed(histogram)
        }
        ready.complete(BenchError("connection closed"))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}

/// A promise completed at most once, from any thread (later completions are ignored).
final class OnceReady: Sendable {
    private let promise: EventLoopPromise<Void>
    private let done = NIOLockedValueBox(false)
    init(_ promise: EventLoopPromise<Void>) { self.promise = promise }
    var future: EventLoopFuture<Void> { promise.futureResult }
    /// Succeeds with nil, fails with an error; only the first call counts.
    func complete(_ error: (any Error)?) {
        guard done.withLockedValue({ d in defer { d = true }; return !d }) else { return }
        if let error { promise.fail(error) } else { promise.succeed(()) }
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Where the wire driver connects: connection c to `targets[c % count]`, on `group`, over TLS
/// when `tls` is set (verifying each node's certificate against the address dialled).
struct WireTargets {
    var targets: [HostPort]
    var group: any EventLoopGroup
    var tls: NIOSSLContext?
    /// Each connection authenticates first (auth enabled), its load starting on the answer.
    var credentials: Credentials? = nil
}

/// Runs `spec` with the wire driver against `wire` and returns its measurements.
func measureWire(_ spec: WorkloadSpec, _ wire: WireTargets, value: [UInt8], pids: [Int32], live: Bool) async -> RunResult {
    let (targets, group, tls, credentials) = (wire.targets, wire.group, wire.tls, wire.credentials)
    let maker = WireRequestMaker(spec: spec, value: value)
    var seed = SystemRandomNumberGenerator()
    let sessionBase = UInt64.random(in: 1...(UInt64.max >> 24), using: &seed) << 20
    // Connect (and authenticate) every connection first, outside the measured window.
    var handlers: [(NIOLoopBound<WireLoadHandler>, any EventLoop)] = []
    var first = 0
    var setupErrors: [any Error] = []
    for c in 0..<spec.conns {
        let slots = spec.clients / spec.conns + (c < spec.clients % spec.conns ? 1 : 0)
        guard slots > 0 else { continue }
        let loop = group.next()
        let firstClient = first
        first += slots
        let target = targets[c % targets.count]
        let ready = OnceReady(loop.makePromise(of: Void.self))
        let bootstrap = ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(2))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addClientTLS(tls, host: target.host)
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(frameBytesMax: WireProtocol.clientFrameBytesMax)))
                    try channel.pipeline.syncOperations.addHandler(WireLoadHandler(maker: maker, firstClient: firstClient, slots: slots, sessionBase: sessionBase,
                                                                                  ready: ready, credentials: credentials))
                }
            }
        do {
            let channel = try await Dial.connect(bootstrap, host: target.host, port: target.port).get()
            try await ready.future.get()
            let bound = try await loop.submit { NIOLoopBound(try channel.pipeline.syncOperations.handler(type: WireLoadHandler.self), eventLoop: loop) }.get()
            handlers.append((bound, loop))
        } catch {
            ready.complete(error)
            setupErrors.append(error)
        }
    }
    return await measured(spec, pids: pids, live: live) { progress, deadline, perSlot in
        for e in setupErrors { progress.add(ok: false, error: e) }
        var futures: [EventLoopFuture<Histogram<UInt64>>] = []
        for (bound, loop) in handlers {
            let finished = loop.makePromise(of: Histogram<UInt64>.self)
            futures.append(finished.futureResult)
            loop.execute { bound.value.begin(progress: progress, deadline: deadline, perSlot: perSlot, finished: finished) }
        }
        var all: [Histogram<UInt64>] = []
        for f in futures { if let h = try? await f.get() { all.append(h) } }
        return all
    }
}
