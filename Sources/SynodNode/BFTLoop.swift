import Foundation
import Logging
import NIOCore
import SynodCore
import SynodCrypto
import SynodLMDB
import SynodPBFT
import SynodStateMachine
import SynodTransport
import SynodWire

/// A BFT replica's logic, confined to its event loop like `NodeLoop`: each pass takes queued
/// envelopes, ticks the core as wall time requires, steps it, then carries out every `PBFTReady`
/// in its documented order — install fetched state → send → execute committed batches (one
/// LMDB transaction per Ready) and reply → answer read-only requests → resend cached replies →
/// `advance` → report checkpoints.
///
/// `@unchecked Sendable`: only the loop's thread touches it (see `NodeLoop`).
final class BFTLoop: @unchecked Sendable {
    let configuration: BFTConfiguration
    let store: LMDBStore
    let sm: KVNodeStateMachine
    let transport: PeerTransport
    let inbox: Inbox
    let logger: Logger
    var core: PBFTReplica
    /// The connection each client's newest authenticated request came on: where its replies go.
    /// Bounded by the clients the key file names.
    var clientConnections: [ClientID: ClientConnection] = [:]
    /// The last ordered reply sent to each client: resends of what the session table does not
    /// cache (ordered reads, refusals). Bounded by the clients the key file names.
    var lastReplies: [ClientID: (timestamp: UInt64, result: [UInt8])] = [:]
    var outbound = OutboundWrites()
    var clock = TickClock(millis: 10, now: 0)
    var tickTask: RepeatedTask?
    var onStop: (@Sendable () -> Void)?
    var stopped = false
    var lastView: View = .zero
    /// True until a restarted replica's amnesia has cleared (logged once, for operators).
    var recovering: Bool
    /// The durable promise record as last written (see `BFTPromises`).
    var promised: (sequence: SequenceNumber, view: View)
    /// Bytes of the shell state at the newest checkpoint, and write payload bytes executed since:
    /// together a deterministic estimate of the state's size (every correct replica computes the
    /// same numbers at the same sequence number), used to refuse growth before the state outgrows
    /// what one state transfer carries (`stateBytesSoftMax`).
    var stateBytesAtCheckpoint = 0
    var writtenSinceCheckpoint = 0

    /// Above this estimated state size, writes that can grow the state are refused (deletes and
    /// compaction still run): one state transfer must carry the whole state (`PBFTLimits.stateBytesMax`).
    static let stateBytesSoftMax = 12 << 20
    /// A put costs the snapshot about its bytes twice (the key table and the history) plus overhead.
    static let growthFactor = 3
    /// Per-write bookkeeping records (session, LRU, revision index) counted on top.
    static let recordOverheadBytes = 256
    /// Largest range result a BFT reply carries (client frames are at most 4 MiB).
    static let resultBytesMax = 3 << 20

    /// The state's size as every correct replica estimates it at this point of the order.
    var stateEstimate: Int { stateBytesAtCheckpoint + writtenSinceCheckpoint }

    init(configuration: BFTConfiguration, store: LMDBStore, stateMachine: KVNodeStateMachine, transport: PeerTransport, inbox: Inbox, logger: Logger) throws {
        self.configuration = configuration
        self.store = store
        self.sm = stateMachine
        // BFT mode serves no watches: events need no previous values (each costs a history lookup).
        stateMachine.kv.prevValuesInEvents = false
        self.transport = transport
        self.inbox = inbox
        self.logger = logger
        var config = PBFTConfig(id: configuration.id, replicas: configuration.peers.map(\.0))
        config.checkpointInterval = configuration.checkpointInterval
        config.logWindow = 2 * configuration.checkpointInterval
        config.batchRequestsMax = configuration.batchRequestsMax
        config.batchBytesMax = 1 << 20
        config.inflightBatchesMax = configuration.inflightBatchesMax
        config.pendingRequestsMax = 8192
        config.viewChangeTimeoutTicks = configuration.viewChangeTimeoutTicks
        config.bugs = configuration.testingPBFTBugs
        config.viewChangeTimeoutTicksMax = configuration.viewChangeTimeoutTicks * 16
        config.futureMessagesMax = 8192
        config.futureBytesMax = 64 << 20
        config.stateFetchRetryTicks = 100
        config.statusIntervalTicks = 10
        config.deferredReadsMax = 4096
        config.amnesia = configuration.amnesia
        promised = BFTPromises.read(in: configuration.dataDirectory) ?? (.zero, .zero)
        recovering = configuration.amnesia != nil
        let crypto = Ed25519HMACAuthenticator(principal: .replica(configuration.id), keys: configuration.keys)
        core = PBFTReplica(config: config, crypto: crypto)
    }

    func start(on eventLoop: any EventLoop, onStop: @escaping @Sendable () -> Void) {
        clock = TickClock(millis: configuration.tickMillis, now: ProcessInfo.processInfo.systemUptime)
        self.onStop = onStop
        tickTask = inbox.drive(eventLoop, tickMillis: configuration.tickMillis) { [self] in pass() }
    }

    func pass() {
        guard !stopped else { return }
        let events = inbox.takeAll()
        // pBFT has no leases: time a stalled loop skipped is simply not ticked.
        for _ in 0..<clock.due(at: ProcessInfo.processInfo.systemUptime).fire { core.tick() }
        for event in events {
            switch event {
            case .stop:
                stopped = true
                tickTask?.cancel()
                outbound.flush()
                onStop?()
                return
            case let .pbftPeer(bytes, from): stepPeer(bytes, from)
            case let .pbftClient(bytes, c): stepClient(bytes, c)
            case let .connectionClosed(c):
                clientConnections = clientConnections.filter { $0.value != c }
            case let .request(r, c):
                c.send([ClientResponse(id: r.id, status: .ok, body: status().encode())], into: &outbound)
            default: break
            }
        }
        do { try drainReady() } catch {
            logger.critical("storage failure; stopping the replica", metadata: ["error": "\(error)"])
            fatalError("synod: storage failure: \(error)")
        }
        outbound.flush()
        if let v = core.invariantViolation { logger.critical("pBFT invariant violated", metadata: ["why": "\(v)"]) }
        if recovering && core.amnesia == nil {
            recovering = false
            logger.notice("voting again: past every view and sequence number it may have voted on before the restart",
                          metadata: ["view": "\(core.view.rawValue)", "stable": "\(core.lowWatermark.rawValue)"])
        }
        if core.view != lastView {
            lastView = core.view
            logger.notice("view changed", metadata: ["view": "\(core.view.rawValue)", "primary": "\(core.primary.rawValue)"])
        }
    }

    /// What `synod status` shows for a BFT replica: its role, the view as the term, the primary
    /// as the leader, the last executed sequence number as commit and applied.
    func status() -> NodeStatus {
        let role = core.amnesia != nil ? "bft-recovering" : !core.isViewActive ? "bft-view-change" : core.isPrimary ? "bft-primary" : "bft-backup"
        return NodeStatus(id: configuration.id, clientAddress: "\(configuration.clientAddress.host):\(configuration.clientAddress.port)", role: role,
                          term: core.view.rawValue, leader: core.primary, commit: core.lastExecuted.rawValue, applied: core.lastExecuted.rawValue,
                          lastIndex: core.lowWatermark.rawValue, revision: sm.revision, voters: core.config.replicas, learners: [])
    }

    /// A peer's envelope: it must name the link's replica as its sender (the core then checks the
    /// MAC or signatures); malformed bytes are dropped with a debug line.
    func stepPeer(_ bytes: [UInt8], _ from: NodeID) {
        do {
            let env = try PBFTCodec.decode(bytes)
            guard env.from == .replica(from) else { return }
            core.step(env)
        } catch {
            logger.debug("dropping a malformed pBFT message", metadata: ["peer": "\(from)", "error": "\(error)"])
        }
    }

    /// A client's request envelope: remembered as the way back to that client, then stepped (the
    /// core verifies the client's signature before the request is ordered).
    func stepClient(_ bytes: [UInt8], _ c: ClientConnection) {
        guard let env = try? PBFTCodec.decode(bytes), case let .client(cid) = env.from,
              case let .request(r) = env.message, r.client == cid,
              configuration.keys.publicKeys[.client(cid)] != nil else { return }
        // Only a request the client signed may redirect its replies (the core's check of the same
        // signature is then a cache hit).
        guard core.authenticates(r) else { return }
        clientConnections[cid] = c
        core.step(env)
    }

    func drainReady() throws {
        var rounds = 0
        while rounds < 64 {
            rounds += 1
            let rd = core.ready()
            if rd.isEmpty { break }
            if let s = rd.stateToInstall { try install(s) }
            try promise(rd.messages)
            send(rd.messages)
            var checkpoints: [(SequenceNumber, [UInt8])] = []
            // Batches up to each checkpoint run in one transaction; the checkpoint reads the state
            // right after its own batch.
            var segment: [CommittedBatch] = []
            for b in rd.committed {
                segment.append(b)
                if b.checkpointAfter {
                    try execute(segment)
                    segment = []
                    try autoCompact()
                    checkpoints.append((b.sequence, try checkpointState()))
                }
            }
            if !segment.isEmpty { try execute(segment) }
            for r in rd.readOnly { reply(r, result: read(r), readOnly: true) }
            for r in rd.replyResends {
                // From the session table (replicated: right after a state transfer too), else from
                // the last reply this replica sent that client (ordered reads, refusals).
                if let cached = try? sm.kv.cachedResponse(client: r.client.rawValue, sequence: r.timestamp) {
                    reply(r, result: cached, readOnly: false)
                } else if let last = lastReplies[r.client], last.timestamp == r.timestamp {
                    reply(r, result: last.result, readOnly: false)
                }
            }
            core.advance(rd)
            for (n, state) in checkpoints { core.checkpointTaken(n, state: state) }
        }
    }

    /// Raises the durable promise record (`BFTPromises`) before sending votes past it.
    func promise(_ envelopes: [PBFTEnvelope]) throws {
        var seq = promised.sequence, view = promised.view
        for env in envelopes {
            switch env.message {
            case let .prePrepare(m): (seq, view) = (max(seq, m.sequence), max(view, m.view))
            case let .prepare(m): (seq, view) = (max(seq, m.sequence), max(view, m.view))
            case let .commit(m): (seq, view) = (max(seq, m.sequence), max(view, m.view))
            case let .viewChange(m): view = max(view, m.newView)
            case let .newView(m): view = max(view, m.view)
            default: break
            }
        }
        guard seq > promised.sequence || view > promised.view else { return }
        // A checkpoint interval ahead, so the record is written about once per interval, not per
        // batch (the slack is how far a restarted replica waits before voting in the same view).
        let next = (sequence: seq > promised.sequence ? seq.adding(core.config.checkpointInterval) : promised.sequence, view: view)
        try BFTPromises.write(sequence: next.sequence, view: next.view, in: configuration.dataDirectory)
        promised = next
    }

    func send(_ envelopes: [PBFTEnvelope]) {
        var frames: [(to: NodeID, payload: [UInt8])] = []
        for env in envelopes {
            guard case let .replica(to) = env.to else { continue }
            frames.append((to, PBFTCodec.encode(env)))
        }
        transport.send(frames: frames, type: .pbft, into: &outbound)
    }

    /// Executes the committed batches in one LMDB transaction, then replies.
    func execute(_ batches: [CommittedBatch]) throws {
        var results: [(Request, [UInt8])] = []
        let writtenBefore = writtenSinceCheckpoint
        _ = try store.write(LogWrite(), binding: sm.combined) { isRetry in
            if isRetry { try sm.kv.reload() }
            // A map growth runs this again from the start: everything it counts starts over too,
            // or this replica's size estimate (and so its refusals) would differ from the others'.
            results = []
            writtenSinceCheckpoint = writtenBefore
            var index = sm.appliedIndex
            for batch in batches {
                for r in batch.requests { results.append((r, try executeOne(r, &index))) }
            }
        }
        for (r, result) in results { reply(r, result: result, readOnly: false) }
    }

    /// One ordered request. Writes consume the next apply index (term 1 everywhere: correct
    /// replicas must build identical state whatever view they executed a batch in) and run under
    /// the session (client id, timestamp): the state machine's exactly-once table then answers a
    /// request a Byzantine primary orders again (or a client signs twice under one timestamp)
    /// from its cache, or as stale, without applying it twice — the same on every replica.
    func executeOne(_ r: Request, _ index: inout LogIndex) throws -> [UInt8] {
        switch try? BFTOperation.decode(r.operation) {
        case let .write(bytes)?:
            guard var envelope = try? CommandEnvelope.decode(bytes) else {
                return Response.failure(.malformedCommand("not a command envelope")).encode()
            }
            if case .leaseExpire = envelope.command {
                return Response.failure(.invalidRequest("lease expiry is not a client command")).encode()
            }
            // Auth is Raft mode's: a BFT client is its key, and may not claim a user or change auth.
            if envelope.principal != nil {
                return Response.failure(.invalidRequest("a client does not stamp its own commands")).encode()
            }
            if case .auth = envelope.command {
                return Response.failure(.invalidRequest("auth is not used in BFT mode (clients are identified by their keys)")).encode()
            }
            if case let .txn(t) = envelope.command, t.needsVersion3 {
                // Gated by the cluster version, which BFT mode does not move (docs/PBFT.md).
                return Response.failure(.invalidRequest("sorted or filtered ranges and lease compares inside a transaction are not available in BFT mode")).encode()
            }
            if case .putIgnoring = envelope.command {
                return Response.failure(.invalidRequest("ignore_value and ignore_lease are not available in BFT mode")).encode()
            }
            if case .alarm = envelope.command {
                // BFT mode bounds its state itself (below); a Byzantine client must not be able
                // to raise an alarm that refuses everyone's writes.
                return Response.failure(.invalidRequest("alarms are not used in BFT mode (its state bound is fixed)")).encode()
            }
            guard envelope.session == nil else {
                return Response.failure(.invalidRequest("BFT mode sets the session itself (client id, timestamp)")).encode()
            }
            if stateEstimate > Self.stateBytesSoftMax, Self.grows(envelope.command) {
                return Response.failure(.invalidRequest("BFT mode holds at most \(Self.stateBytesSoftMax >> 20) MiB of state (one state transfer carries it all): delete keys or compact history first")).encode()
            }
            envelope.session = ClientSession(clientID: r.client.rawValue, sequence: r.timestamp)
            let payload = envelope.encode()
            index = index.next
            let applied = try sm.apply([Entry(index: index, term: Term(1), kind: .command, payload: payload)])
            let response = applied.first?.response?.encode() ?? Response.failure(.invalidRequest("not a command")).encode()
            // Growth: the command's bytes in the key table and the history, the response the
            // session table caches, and per-record overhead.
            writtenSinceCheckpoint += Self.growthFactor * payload.count + min(response.count, KVLimits.sessionResponseBytesMax) + Self.recordOverheadBytes
            return response
        case let .read(query)?:
            return answer(query)
        case nil:
            return Response.failure(.invalidRequest("not a BFT operation")).encode()
        }
    }

    /// Drops the history (past revisions) once the state estimate passes half the soft limit, at
    /// a checkpoint — the same point in the order on every correct replica, so their states stay
    /// identical. etcd's revision auto-compaction, with the state-transfer bound as the trigger:
    /// without it, any steady write load would reach `stateBytesSoftMax` and be refused.
    func autoCompact() throws {
        guard stateEstimate > Self.stateBytesSoftMax / 2,
              sm.kv.revision > sm.kv.compactedRevision else { return }
        let revision = sm.kv.revision
        _ = try store.write(LogWrite(), binding: sm.combined) { isRetry in
            if isRetry { try sm.kv.reload() }
            let index = sm.appliedIndex.next
            _ = try sm.apply([Entry(index: index, term: Term(1), kind: .command, payload: CommandEnvelope(command: .compact(revision: revision)).encode())])
        }
        logger.info("history compacted at a checkpoint (BFT state bound)", metadata: ["revision": "\(revision)"])
    }

    /// Whether a command can add to the state (puts, transactions, lease grants); deletes,
    /// revokes and compaction only shrink it. Undecodable payloads fail in the state machine.
    static func grows(_ command: Command) -> Bool {
        switch command {
        case .delete, .deleteRange, .leaseRevoke, .leaseExpire, .compact, .alarm, .clusterVersion, .auth: return false
        case .put, .putIgnoring, .txn, .leaseGrant, .mesh: return true
        }
    }

    func read(_ r: Request) -> [UInt8] {
        guard case let .read(query)? = try? BFTOperation.decode(r.operation) else {
            return Response.failure(.invalidRequest("a read-only request must be a read")).encode()
        }
        return answer(query)
    }

    func answer(_ query: [UInt8]) -> [UInt8] {
        guard case let .range(request)? = try? KVQuery.decode(query) else {
            return Response.failure(.invalidRequest("BFT mode answers range queries only")).encode()
        }
        let bytes = sm.range(request).encode()
        guard bytes.count <= Self.resultBytesMax else {
            return Response.failure(.invalidRequest("a range result of \(bytes.count) bytes exceeds what a BFT reply carries (\(Self.resultBytesMax)); ask with a limit")).encode()
        }
        return bytes
    }

    func reply(_ r: Request, result: [UInt8], readOnly: Bool) {
        if !readOnly { lastReplies[r.client] = (r.timestamp, result) }
        var result = result
        if configuration.testingCorruptReplies { result = Response.failure(.invalidRequest("a lie from replica \(configuration.id.rawValue)")).encode() }
        // A client that does not read its replies gets no more (retransmissions would pile up).
        guard let c = clientConnections[r.client], c.isActive, c.isWritable else { return }
        let env = core.reply(to: r, result: result, readOnly: readOnly)
        c.send(frames: [PBFTCodec.encode(env)], type: .pbft, into: &outbound)
    }

    /// The state a checkpoint digests and state transfer ships: the applied index, then every
    /// state table in key order (deterministic: identical on every correct replica).
    func checkpointState() throws -> [UInt8] {
        let (index, data) = try KVNodeStateMachine.buildSnapshot(store, sealed: false)
        var w = ByteWriter(capacity: data.count + 8)
        w.u64(index.rawValue)
        w.raw(data)
        // The soft limit keeps the state well below this (the estimate bounds each write's
        // growth); past it, a replica that needs this checkpoint could not receive it. Say so,
        // but keep serving: stopping every correct replica at once would be worse.
        if w.bytes.count > PBFTLimits.stateBytesMax - (1 << 20) {
            logger.critical("BFT state exceeds what one state transfer carries; a replica that falls behind cannot catch up until it shrinks",
                            metadata: ["bytes": "\(w.bytes.count)", "limit": "\(PBFTLimits.stateBytesMax)"])
        }
        stateBytesAtCheckpoint = w.bytes.count
        writtenSinceCheckpoint = 0
        return w.bytes
    }

    /// Replaces the state with a certified checkpoint fetched from other replicas.
    func install(_ s: StateToInstall) throws {
        var r = ByteReader(s.state)
        let index = LogIndex(try r.u64("applied index"))
        try sm.install(r.rest(), at: index)
        stateBytesAtCheckpoint = s.state.count
        writtenSinceCheckpoint = 0
        logger.notice("installed state by state transfer", metadata: ["sequence": "\(s.sequence.rawValue)", "bytes": "\(s.state.count)"])
    }
}
