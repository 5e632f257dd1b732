import Foundation
import NIOConcurrencyHelpers
import Logging
import NIOCore
import SynodCore
import SynodLMDB
import SynodRaft
import SynodStateMachine
import SynodTransport
import SynodWire

/// The node's logic: owns the Raft core, the state machine and all pending client work, and runs
/// only on the node's event loop (the thread that also serves its sockets), so a request, the
/// appends it causes and the response it gets cross no thread boundary.
///
/// Each pass: take queued events, tick the core as wall time requires, step it with every event,
/// then carry out `Ready`s until none is left:
/// install snapshot → send leader appends → persist (one LMDB transaction: group commit) →
/// send the rest → apply committed entries → answer writes and reads → `advance`.
///
/// `@unchecked Sendable`: closures that call it (the pass, the tick) are handed to NIO, but they
/// run only on the node's event loop, the one thread that ever touches this object.
final class NodeLoop: @unchecked Sendable {
    let configuration: NodeConfiguration
    let store: LMDBStore
    let sm: KVNodeStateMachine
    let transport: PeerTransport
    let inbox: Inbox
    let logger: Logger
    var core: RaftCore
    var clientAddress = ""
    var peerClientAddresses: [NodeID: String] = [:]
    /// The peer protocol each peer announced in its hello (absent: not heard from yet).
    var peerVersions: [NodeID: UInt16] = [:]
    /// The cluster version each peer's build supports, from its latest hello (0: a build from
    /// before cluster versions). The leader moves the cluster to the lowest (`checkClusterVersion`).
    var peerClusterVersions: [NodeID: UInt16] = [:]

    struct Pending {
        var term: Term
        var connection: ClientConnection
        var requestID: UInt64
    }
    struct PendingRead {
        var query: [UInt8]
        var connection: ClientConnection
        var requestID: UInt64
        /// A lease keep-alive instead of a query: answered, like a read, only once a ReadIndex
        /// round has confirmed this node still leads (`answerKeepAlive`).
        var keepAlive: LeaseID? = nil
        /// An `authenticate` instead of a query: answered at a read index too (`authenticate`).
        var authenticate: (user: String, password: [UInt8])? = nil
    }
    /// Leader only: writes proposed and not yet applied, by log index.
    var pendingWrites: [UInt64: Pending] = [:]
    /// Writes received during one pass, proposed together (one append per follower per pass).
    var proposals: [(payload: [UInt8], id: UInt64, connection: ClientConnection)] = []
    /// Linearizable reads collected during one pass, sent as one ReadIndex request.
    var readBatch: [PendingRead] = []
    /// One ReadIndex request in flight: its reads, when it was asked, and (on a follower, which
    /// asks its leader) the term and leader it was asked of.
    struct ReadRound {
        var reads: [PendingRead]
        var started: Double
        var term: Term
        var leader: NodeID
    }
    /// ReadIndex requests in flight, by context.
    var readBatches: [UInt64: ReadRound] = [:]
    /// Read contexts never repeat, not even across restarts (a leader's answer to a request of
    /// the previous process could still arrive: `RaftCore.handleReadIndexResponse`), so they
    /// start at a random point below `RaftCore.forwardedReadContextBase`.
    var nextReadContext = UInt64.random(in: 1...(1 << 62))
    /// When the newest ReadIndex round started (system uptime).
    var readRoundStarted: Double = 0
    /// When the next Raft tick is due.
    var clock = TickClock(millis: 10, now: 0)
    var tickTask: RepeatedTask?
    var onStop: (@Sendable () -> Void)?
    var stopped = false
    /// Reads whose read index is known, waiting for the state machine to apply through it.
    var readyReads: [(index: LogIndex, reads: [PendingRead], since: Double)] = []
    /// Responses gathered during a pass, sent per connection in one write each.
    var outbox: [ClientConnection: [ClientResponse]] = [:]
    /// Encoded peer messages and client responses waiting for the end of the pass.
    var outbound = OutboundWrites()
    var wasLeader = false
    /// A `move-leader` request waiting for its target to lead (`checkLeaderTransfer`).
    var leaderTransfer: (target: NodeID, connection: ClientConnection, requestID: UInt64, deadline: Double)?
    /// Index of the newest snapshot taken (a checkpoint of the state tables): what the log is
    /// compacted to one interval later.
    var lastSnapshotIndex: LogIndex = .zero
    /// Set while a background snapshot build runs (at most one at a time).
    var snapshotBuilding = false
    /// After a failed build, no new one starts before this time (system uptime).
    var snapshotRetryAfter: Double = 0
    /// Watches served by this node, by (connection, request id).
    var watchers: [WatchKey: Watcher] = [:]
    /// When `notifyWatchProgress` next looks at the watches (uptime seconds).
    var progressCheckAt: Double = 0
    /// True when some watch may be lagging (see `Watcher.lagging`).
    var anyWatcherLagging = false
    /// Leader only: when each lease runs out (system uptime, seconds), and expiries proposed.
    var leaseDeadlines: [LeaseID: (ttlMillis: Int64, deadline: Double)] = [:]
    var expiryProposed: [LeaseID: Double] = [:]
    var lastLeaseCheck: Double = 0
    /// Where this leader's last auto-compaction went in the log: no other is proposed until that
    /// entry is applied, or the term moved on (then it may have been lost).
    var autoCompactInFlight: LogPosition?
    /// When this node last measured its state's pages (`checkQuota`), and the NOSPACE alarm it
    /// proposed as leader and has not seen applied yet.
    /// Client-requested background reads running (`claimClientRead`); released off the loop thread.
    let clientBackgroundReads = NIOLockedValueBox(0)
    /// Password checks queued or running (`authenticate`), and the queue they run on.
    let authChecks = NIOLockedValueBox(0)
    let authQueue = DispatchQueue(label: "synod-auth-check")
    /// The auth revision the watches were last checked under (`recheckWatchers`).
    var watchersAuthRevision: UInt64 = 0
    /// The term this node last led and its last log index when it first proposed in it: below
    /// cluster version 2, client writes wait until it has applied through there (`propose`).
    var leaderCaughtUp: (term: Term, index: LogIndex)?
    var lastQuotaCheck: Double = 0
    /// The state's pages in use at that measurement (`synod status`).
    var lastStateBytes: Int64 = 0
    var quotaAlarmInFlight: LogPosition?
    /// When the leader last compared the members' cluster versions (`checkClusterVersion`),
    /// and its proposal still being applied.
    var lastClusterVersionCheck: Double = 0
    var clusterVersionInFlight: LogPosition?
    /// Followers already logged as refusing the snapshot they need (`noticeSnapshotRefusals`).
    var snapshotRefusalsLogged: [NodeID] = []
    var damagedSnapshotsLogged = 0
    var damagedSnapshotsReported = 0
    var lastReplicationLog: Double = 0
    var passStats = PassStats()
    /// Metrics (`NodeMetrics`) and the counters the loop keeps for them between publications.
    let metrics = NodeMetrics()
    var lastMetricsPublish: Double = 0
    var lastLeaderSeen: NodeID = .none
    var clientRequestsSincePublish: Int64 = 0
    /// Committed entries applied in the held write transaction (see `persistAndApply`), in order.
    var heldEntries: [Entry] = []
    var heldSince: Double = 0
    /// Follower only: committed entries handed over by the core and not yet applied, in order
    /// (see `deferApplies`). Invariant: empty whenever this node leads.
    var deferredApplies: [Entry] = []
    /// When the deferred entries must be applied (system uptime; see `applyDeadline`).
    var deferredDue: Double = 0
    /// The hard state last written (held or committed).
    var persistedHardState = HardState()

    init(configuration: NodeConfiguration, store: LMDBStore, stateMachine: KVNodeStateMachine, transport: PeerTransport, inbox: Inbox, logger: Logger) throws {
        self.configuration = configuration
        self.store = store
        store.environment.testingHeldCommitFailures = configuration.testingHeldCommitFailures
        self.sm = stateMachine
        self.transport = transport
        self.inbox = inbox
        self.logger = logger
        var raft = RaftConfig(id: configuration.id)
        raft.electionTimeoutTicks = configuration.electionTimeoutTicks
        raft.heartbeatIntervalTicks = configuration.heartbeatIntervalTicks
        raft.entriesPerMessageMax = 512
        raft.bytesPerMessageMax = 1 << 20
        raft.inflightMessagesMax = 64
        raft.committedEntriesPerReadyMax = 4096
        raft.uncommittedEntriesMax = 65_536
        raft.pendingReadsMax = 4096
        raft.snapshotChunkBytesMax = 1 << 20
        raft.snapshotBytesMax = configuration.snapshotBytesMax
        raft.leaseReads = configuration.leaseReads
        raft.bugs = configuration.testingRaftBugs
        raft.validate()
        let restart = try Self.restartState(configuration: configuration, store: store, stateMachine: stateMachine, logger: logger)
        persistedHardState = restart.hardState
        core = RaftCore(config: raft, random: SeededRandom(seed: configuration.randomSeed ?? (0x5EED &+ configuration.id.rawValue &* 7919)), restart: restart)
        core.snapshotCheck = { SnapshotSeal.isIntact($0) }
        if restart.compacted.index > .zero {
            // The state on disk (applied through A >= the compaction point) is the snapshot the
            // next interval compacts to.
            lastSnapshotIndex = stateMachine.appliedIndex
        }
        loadMemberDirectory()
        store.environment.redoLostHeld = { [weak self] in try self?.redoLostHeldApplies() }
    }

    /// Rebuilds what the core needs from disk; bootstraps the membership of a brand-new cluster.
    static func restartState(configuration: NodeConfiguration, store: LMDBStore, stateMachine sm: KVNodeStateMachine, logger: Logger) throws -> RaftRestartState {
        var membership = try store.membership()
        let lastIndex = try store.lastIndex()
        if membership.voters.isEmpty && membership.learners.isEmpty && lastIndex == .zero && !configuration.join {
            membership = try Membership(voters: configuration.peers.map { $0.0 })
            try store.write(LogWrite(membership: membership))
            logger.info("bootstrapped a new cluster", metadata: ["voters": "\(membership)"])
        }
        let compacted = try store.compactedPosition()
        var snapshot: Snapshot?
        if compacted.index > .zero {
            if sm.appliedIndex < compacted.index, let legacy = try store.snapshotData(at: compacted.index) {
                // Format-1 data: a crash between resetting the log and installing the state.
                try sm.install(legacy, at: compacted.index)
            }
            guard let cp = try store.checkpoint(at: compacted.index) else {
                throw StoreError.corrupt("log compacted through \(compacted.index.rawValue) but its checkpoint is missing")
            }
            // The state tables are the snapshot (docs/STORAGE.md): bytes for a follower that needs
            // entries this node no longer has are built when one does (`snapshotDataWanted`).
            guard sm.appliedIndex >= compacted.index else {
                throw StoreError.corrupt("log compacted through \(compacted.index.rawValue) but state applied only through \(sm.appliedIndex.rawValue)")
            }
            snapshot = Snapshot(position: compacted, membership: cp.membership, data: [])
        }
        var hs = try store.hardState()
        // Everything compacted was committed; a snapshot install commits before the hard state
        // that follows it is written, so the stored commit index can lag the compaction point.
        if hs.commit < compacted.index { hs.commit = compacted.index }
        var entries: [Entry] = []
        let last = try store.lastIndex()
        var from = compacted.index.next
        while from <= last {
            let chunk = try store.entries(from: from, upTo: last.next, maxBytes: 16 << 20)
            entries += chunk
            from = chunk.last!.index.next
        }
        var applied = sm.appliedIndex
        if applied > hs.commit && applied > compacted.index {
            throw StoreError.corrupt("applied index \(applied.rawValue) is past the durable commit index \(hs.commit.rawValue)")
        }
        applied = max(applied, compacted.index)
        return RaftRestartState(hardState: hs, compacted: compacted, entries: entries, membership: membership, snapshot: snapshot, applied: applied)
    }

    // MARK: the loop

    /// Starts driving the node from `eventLoop`: a pass runs after each batch of events the loop
    /// delivers (the inbox schedules it), and at least once a tick. Everything below runs on that
    /// loop's thread — the one thread that owns this object.
    func start(on eventLoop: any EventLoop, onStop: @escaping @Sendable () -> Void) {
        clock = TickClock(millis: configuration.tickMillis, now: ProcessInfo.processInfo.systemUptime)
        self.onStop = onStop
        tickTask = inbox.drive(eventLoop, tickMillis: configuration.tickMillis) { [self] in pass() }
    }

    /// One pass: take queued events, tick the core as wall time requires, step it with every
    /// event, propose and start reads, then carry out every Ready and send what it produced.
    func pass() {
        guard !stopped else { return }
        if let stall = configuration.testingStallFile { Self.stallWhileExists(stall) }
        let events = inbox.takeAll()
        let now = ProcessInfo.processInfo.systemUptime
        let due = clock.due(at: now)
        for _ in 0..<due.fire { core.tick() }
        // Read after the events were taken: every read among them began before `now`, the
        // time the lease is measured at.
        if due.missed > 0 { core.ticksMissed(due.missed) }
        for event in events {
            if case .stop = event {
                finish()
                stopped = true
                tickTask?.cancel()
                onStop?()
                return
            }
            handle(event)
        }
        proposeBatch()
        startReadBatch()
        checkLeases()
        checkAutoCompaction()
        checkQuota(now)
        checkClusterVersion(now)
        logReplication(now)
        do {
            try drainReady()
            if !readBatch.isEmpty && readBatches.isEmpty {
                // The round in flight finished during this pass: start the waiting reads' round now.
                startReadBatch()
                try drainReady()
            }
            try applyDeferredIfDue(now)
            try commitHeldApplies(force: false)
        } catch { storageFailed(error) }
        checkLeaderTransfer(now)
        publishMetrics(now)
        expireForwardedReads(now)
        catchUpLaggingWatchers()
        notifyWatchProgress(now)
        flushOutbox()
        if holding { inbox.wake(at: heldSince + Self.heldSecondsMax) }
        if !deferredApplies.isEmpty { inbox.wake(at: deferredDue) }
        passStats.pass(events: events.count, started: now, now: ProcessInfo.processInfo.systemUptime, id: configuration.id)
    }

    /// Tests only (`NodeConfiguration.testingStallFile`): blocks this thread while `path` exists, at most 10 s.
    static func stallWhileExists(_ path: String) {
        var waited = 0
        while waited < 2_000 && FileManager.default.fileExists(atPath: path) {
            usleep(5_000)
            waited += 1
        }
    }

    func handle(_ event: NodeEvent) {
        switch event {
        case let .raft(m): core.step(m)
        case let .request(r, c): handle(r, from: c)
        case let .peerHello(hello):
            peerClientAddresses[hello.from] = hello.clientAddress
            peerVersions[hello.from] = hello.version
            peerClusterVersions[hello.from] = hello.clusterVersion
        case let .connectionClosed(c): dropConnection(c)
        case let .snapshotBuilt(result):
            do { try snapshotBuilt(result) } catch { storageFailed(error) }
        case .pbftPeer, .pbftClient, .stop: break
        }
    }

    func handle(_ request: ClientRequest, from c: ClientConnection) {
        clientRequestsSincePublish += 1
        if let needed = access(request.body), let refusal = denial(c, needed, request.id) { return respond(c, refusal) }
        switch request.body {
        case let .write(payload): propose(payload, request.id, c)
        case let .read(.serializable, query):
            // Everything this node knows to be committed is visible to its serializable reads.
            do { try applyDeferred() } catch { storageFailed(error) }
            respond(c, answer(query, request.id, c))
        case let .read(.linearizable, query):
            // Lease queries report the time left, which only the leader tracks (its clock alone
            // decides expiry): a follower sends the client to it.
            if core.role != .leader, Self.asksLeaseTime(query) { return respond(c, notLeader(request.id)) }
            // Any node batches them; `startReadBatch` asks the core (a follower's core asks the
            // leader) or sends the client to the leader.
            readBatch.append(PendingRead(query: query, connection: c, requestID: request.id))
        case .status: respond(c, ClientResponse(id: request.id, status: .ok, body: status().encode()))
        case .statusDetail:
            var s = status()
            s.storage = NodeStatus.StorageStatus(stateBytes: lastStateBytes, quotaBytes: configuration.quotaBytes, alarms: sm.kv.alarms)
            respond(c, ClientResponse(id: request.id, status: .ok, body: s.encode()))
        case let .leaseKeepAlive(id):
            // A keep-alive's answer promises the lease a TTL from now, which only a leader that
            // still leads can keep: it waits for the same ReadIndex round as the reads (a leader
            // that was frozen may not know yet that another took over and restarted every TTL).
            guard core.role == .leader else { return respond(c, notLeader(request.id)) }
            let lease = LeaseID(UInt64(bitPattern: id))
            renewLease(lease)
            if configuration.testingUnconfirmedKeepAlives { return answerKeepAlive(lease, request.id, c) }
            readBatch.append(PendingRead(query: [], connection: c, requestID: request.id, keepAlive: lease))
        case let .watch(body): startWatch(body, request.id, c)
        case let .cancelWatch(id): cancelWatch(WatchKey(connection: c.number, request: id), c)
        case let .requestWatchProgress(id): requestWatchProgress(WatchKey(connection: c.number, request: id), request.id, c)
        case let .member(body): handleMember(body, request.id, c)
        case .snapshot: streamSnapshot(request.id, c)
        case let .hashKV(revision): hashKV(revision, request.id, c)
        case .defragment: defragment(request.id, c)
        case let .authenticate(user, password):
            readBatch.append(PendingRead(query: [], connection: c, requestID: request.id, authenticate: (user, password)))
        }
    }

    func propose(_ payload: [UInt8], _ id: UInt64, _ c: ClientConnection) {
        guard core.role == .leader else { return respond(c, notLeader(id)) }
        guard !CommandEnvelope.movesClusterVersion(payload) else {
            return respond(c, ClientResponse(id: id, status: .badRequest, message: "the cluster version is moved by the leader only, once every member supports it"))
        }
        // Clients send unstamped envelopes; the stamp (who sent it) is the leader's to add.
        guard payload.first == CommandEnvelope.encodingVersion else {
            return respond(c, ClientResponse(id: id, status: .badRequest, message: "a client sends command envelopes of version \(CommandEnvelope.encodingVersion)"))
        }
        let stamped = sm.kv.clusterVersion >= KVStateMachine.authClusterVersion
        if !stamped {
            // Whether to stamp follows the applied cluster version; a new leader may not have
            // applied all it holds (a version-2 entry and an auth enable could sit unapplied
            // behind its own first entry), so below version 2 it takes client writes only once
            // it has applied everything from before its term.
            if leaderCaughtUp?.term != core.term { leaderCaughtUp = (core.term, core.lastIndex) }
            if let start = leaderCaughtUp?.index, sm.appliedIndex < start {
                return respond(c, ClientResponse(id: id, status: .busy, message: "the new leader is applying its log; retry"))
            }
        }
        if !stamped, CommandEnvelope.isAuthCommand(payload) {
            return respond(c, ClientResponse(id: id, status: .badRequest, message: "auth needs cluster version \(KVStateMachine.authClusterVersion); the cluster runs \(sm.kv.clusterVersion) (it moves once every member runs a build that supports it)"))
        }
        if sm.kv.clusterVersion < KVStateMachine.version3ClusterVersion, CommandEnvelope.needsVersion3(payload) {
            return respond(c, ClientResponse(id: id, status: .badRequest, message: "sorted or filtered ranges and lease compares in a transaction, and ignore_value or ignore_lease, need cluster version \(KVStateMachine.version3ClusterVersion); the cluster runs \(sm.kv.clusterVersion) (it moves once every member runs a build that supports it)"))
        }
        guard pendingWrites.count + proposals.count < configuration.pendingRequestsMax else {
            return respond(c, ClientResponse(id: id, status: .busy, message: "too many writes in flight"))
        }
        let raised = CommandEnvelope.raisingLeaseTTL(payload, toAtLeast: configuration.minimumLeaseTTLMillis)
        // Every client command is stamped once the cluster can read stamps, whether or not auth
        // is on: one proposed before an `enable` may apply after it, and must be checked then.
        proposals.append((stamped ? CommandEnvelope.stamping(raised, with: principal(of: c)) : raised, id, c))
    }

    /// Proposes the writes collected this pass as one batch.
    func proposeBatch() {
        guard !proposals.isEmpty else { return }
        let batch = proposals
        proposals.removeAll(keepingCapacity: true)
        let results = core.propose(batch: batch.map(\.payload))
        for (p, result) in zip(batch, results) {
            switch result {
            case let .success(position): pendingWrites[position.index.rawValue] = Pending(term: position.term, connection: p.connection, requestID: p.id)
            case let .failure(error): respond(p.connection, refusal(error, p.id))
            }
        }
    }

    /// A ReadIndex round older than this no longer holds back the next one (its heartbeats or
    /// their answers may have been lost; the core keeps trying, but reads should not queue behind it).
    static let readRoundStaleSeconds = 0.02

    /// Sends the reads collected so far as one ReadIndex request (one heartbeat round) — unless a
    /// round is already in flight: then they wait for it to finish and go together in the next.
    /// One round at a time (as etcd's read loop does) puts more reads behind each heartbeat
    /// round under load, which is what the followers and the leader's sockets pay for.
    func startReadBatch() {
        guard !readBatch.isEmpty else { return }
        let now = ProcessInfo.processInfo.systemUptime
        if !readBatches.isEmpty, now - readRoundStarted < Self.readRoundStaleSeconds { return }
        let batch = readBatch
        readBatch = []
        if core.role != .leader && (peerVersions[core.leader] ?? 0) < PeerHello.followerReadsVersion {
            // A follower serves linearizable reads with a read index from its leader
            // (`RaftConfig.followerReads`) only if the leader's build takes such requests; a
            // candidate, or a follower of an older leader, sends the client to the leader.
            for r in batch { respond(r.connection, notLeader(r.requestID)) }
            return
        }
        let context = nextReadContext
        nextReadContext += 1
        do {
            try core.readIndex(context: context)
            readBatches[context] = ReadRound(reads: batch, started: now, term: core.term, leader: core.leader)
            readRoundStarted = now
        } catch {
            for r in batch { respond(r.connection, refusal(error, r.requestID)) }
        }
    }

    /// Longest a follower waits for its leader's answer to a ReadIndex request (the request or
    /// the answer may be lost, or the leader busy) before failing its reads with `busy`.
    static let forwardedReadSecondsMax = 1.0

    /// Fails the reads whose ReadIndex request to a leader can no longer be answered — the term or
    /// leader changed since it was asked (`notLeader`, with the new leader), or it waited too
    /// long (`busy`). Clients retry. Reads whose index already arrived stay while the answer
    /// holds — unless a follower cannot reach that index in `2 × forwardedReadSecondsMax` (cut
    /// off from its leader): then they fail with `busy` too.
    func expireForwardedReads(_ now: Double) {
        if core.role != .leader {
            // `readyReads` is in arrival order, so the stale ones are a prefix.
            let stale = readyReads.prefix { now - $0.since >= 2 * Self.forwardedReadSecondsMax }.count
            for (_, reads, _) in readyReads.prefix(stale) {
                for r in reads { respond(r.connection, ClientResponse(id: r.requestID, status: .busy, message: "this node has not caught up with the read index; retry")) }
            }
            readyReads.removeFirst(stale)
        }
        guard !readBatches.isEmpty else { return }
        for (context, round) in readBatches where round.leader != configuration.id {
            // (A leader's own rounds stay: its core keeps them until confirmed or it steps down.)
            let moved = round.term != core.term || round.leader != core.leader
            guard moved || now - round.started >= Self.forwardedReadSecondsMax else { continue }
            readBatches[context] = nil
            for r in round.reads {
                if moved {
                    respond(r.connection, notLeader(r.requestID))
                } else {
                    respond(r.connection, ClientResponse(id: r.requestID, status: .busy, message: "the leader did not confirm the read index in time; retry"))
                }
            }
        }
    }

    /// Leader only, at debug level every 2 s: where each follower stands (for operators chasing a lagging node).
    func logReplication(_ now: Double) {
        guard logger.logLevel <= .debug, core.role == .leader, now - lastReplicationLog >= 2 else { return }
        lastReplicationLog = now
        for p in core.membership.allMembers where p != configuration.id {
            logger.debug("replication", metadata: ["peer": "\(p)", "state": "\(core.replicationState(of: p).map { "\($0)" } ?? "-")",
                                                    "match": "\(core.matchIndex(of: p)?.rawValue ?? 0)", "inflight": "\(core.inflightCount(of: p) ?? 0)",
                                                    "last": "\(core.lastIndex.rawValue)", "dropped": "\(transport.droppedCount)"])
        }
    }

    func status() -> NodeStatus {
        NodeStatus(id: configuration.id, clientAddress: clientAddress, role: core.role.description, term: core.term.rawValue,
                   leader: core.leader, commit: core.commitIndex.rawValue, applied: sm.appliedIndex.rawValue,
                   lastIndex: core.lastIndex.rawValue, revision: sm.revision, voters: core.membership.voters, learners: core.membership.learners)
    }

    func finish() {
        do {
            try applyDeferred()
            try commitHeldApplies()
        } catch { logger.error("could not commit held applies at shutdown (the log replays them)", metadata: ["error": "\(error)"]) }
        for p in proposals { respond(p.connection, ClientResponse(id: p.id, status: .shuttingDown, message: "node is shutting down; the write was not proposed")) }
        proposals.removeAll()
        for (_, p) in pendingWrites { respond(p.connection, ClientResponse(id: p.requestID, status: .shuttingDown, message: "node is shutting down; outcome unknown")) }
        pendingWrites.removeAll()
        failReads(.shuttingDown, "node is shutting down")
        flushOutbox()
    }

    func storageFailed(_ error: any Error) {
        // A node that cannot persist must not answer anyone: its promises would be lies.
        // LMDB reports a disk that filled part-way through a commit as a short write, EIO; the
        // free space tells the operator which it was.
        if let unsupported = error as? ClusterVersionUnsupported {
            // Not a damaged disk: the log moved the cluster past this build. Nothing of the
            // batch was applied; a newer build takes over from here.
            logger.critical("stopping: \(unsupported)", metadata: ["cluster_version": "\(unsupported.clusterVersion)", "supported": "\(unsupported.supported)"])
            exit(78)   // ExitStatus.clusterVersionUnsupported
        }
        let disk = Self.diskSpace(configuration.dataDirectory)
        logger.critical("storage failure; stopping the node", metadata: ["error": "\(error)", "disk": "\(disk)"])
        fatalError("synod: storage failure: \(error); \(disk)")
    }

    /// "the disk holding DIR is full (N bytes free)" below 1 MiB free, else its free bytes.
    static func diskSpace(_ directory: String) -> String {
        var fs = statvfs()
        guard statvfs(directory, &fs) == 0 else { return "free space of \(directory) unknown" }
        let free = UInt64(fs.f_bavail) * UInt64(fs.f_frsize)
        return free < 1 << 20 ? "the disk holding \(directory) is full (\(free) bytes free)" : "\(free) bytes free on the disk holding \(directory)"
    }
}

/// Diagnostics for performance work: with `SYNOD_PASS_STATS=1` in its environment a node prints,
/// once a second on stderr, how many passes it ran, events it took, LMDB commits it made,
/// entries it wrote and applied, and milliseconds spent in the write path (apply included).
/// docs/BENCHMARKS.md shows how the figures were used. Off by default: one flag test per pass.
struct PassStats {
    static let enabled = ProcessInfo.processInfo.environment["SYNOD_PASS_STATS"] != nil
    var passes = 0, events = 0, commits = 0, entriesWritten = 0, entriesApplied = 0
    var commitSeconds = 0.0
    var last = 0.0
    /// The longest pass in the interval, and the longest gap between two passes.
    var passMax = 0.0, gapMax = 0.0
    var passEnd = 0.0
    mutating func pass(events n: Int, started: Double, now: Double, id: NodeID) {
        guard Self.enabled else { return }
        passes += 1
        events += n
        passMax = max(passMax, now - started)
        if passEnd > 0 { gapMax = max(gapMax, started - passEnd) }
        passEnd = now
        if now - last >= 1 {
            FileHandle.standardError.write(("stats \(id) passes=\(passes) events=\(events) commits=\(commits) written=\(entriesWritten) applied=\(entriesApplied) "
                + "commit_ms=\(Int(commitSeconds * 1000)) pass_max_ms=\(Int(passMax * 1000)) gap_max_ms=\(Int(gapMax * 1000))\n").data(using: .utf8)!)
            let end = passEnd
            self = PassStats(last: now)
            passEnd = end
        }
    }
    init(last: Double = 0) { self.last = last }
}
