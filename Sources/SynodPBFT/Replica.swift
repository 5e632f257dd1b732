import SynodCore

/// A pBFT replica as a value (Castro & Liskov, OSDI '99 / TOCS '02): no I/O, no clock, no
/// randomness. The shell feeds it `tick()`, `step(_:)` and `propose(_:)`, then carries out
/// `ready()` in its documented order and calls `advance(_:)`.
///
/// Invariant: lowWatermark <= lastExecuted, except while a state transfer is under way.
/// Invariant: every slot kept has lowWatermark < sequence <= lowWatermark + L.
public struct PBFTReplica: Sendable {
    public let config: PBFTConfig
    let crypto: any PBFTCryptoProvider
    var cache = VerifiedCache()

    /// The current view, or the view being changed to while `isViewActive` is false.
    public internal(set) var view: View = .zero
    /// False between sending VIEW-CHANGE and accepting NEW-VIEW.
    public internal(set) var isViewActive = true
    /// h: the sequence number of the last stable checkpoint.
    public internal(set) var lowWatermark: SequenceNumber = .zero
    /// The last sequence number executed (handed to the shell).
    public internal(set) var lastExecuted: SequenceNumber = .zero
    /// Primary only: the last sequence number assigned.
    var lastAssigned: SequenceNumber = .zero
    /// The message log, keyed by sequence number. Only lookups and sorted walks reach output.
    var slots: [SequenceNumber: Slot] = [:]
    /// Requests received and not yet executed, in arrival order. Bounded by `pendingRequestsMax`.
    var pending: [PendingRequest] = []
    /// Digests of requests in an unexecuted pre-prepare of this view (the primary does not
    /// reorder them). Pruned on execution, cleared on view change.
    var ordered: Set<Digest> = []
    /// Highest timestamp executed per client: exactly-once and the reply cache key.
    var lastTimestamp: [ClientID: UInt64] = [:]

    // Checkpoints.
    var ownCheckpoints: [SequenceNumber: OwnCheckpoint] = [:]
    /// The client table as it was right after executing a checkpoint's batch (enters its state).
    var clientTablesAt: [SequenceNumber: [UInt8]] = [:]
    var checkpointVotes: [SequenceNumber: [NodeID: CheckpointMessage]] = [:]
    /// 2f+1 matching signed CHECKPOINT messages for `lowWatermark` (empty at 0).
    public internal(set) var stableProof: [CheckpointMessage] = []
    var fetch: StateFetch?

    // View changes.
    var viewChanges: [View: [NodeID: ViewChange]] = [:]
    /// Ticks left before this replica suspects the primary; nil when not running.
    var timerTicksLeft: Int?
    /// The current timeout; doubles with every consecutive view change (capped).
    public internal(set) var timeoutTicks: Int
    /// How long to wait for NEW-VIEW in the view being changed to.
    var newViewTimeoutTicks: Int
    var futureMessages: [PBFTEnvelope] = []
    /// What each sender holds in `futureMessages`: messages and estimated bytes.
    var futureHeld: [Principal: (count: Int, bytes: Int)] = [:]
    /// The NEW-VIEW this replica accepted or sent for the current view, to help late replicas.
    var lastNewView: NewView?
    var ticksSinceStatus = 0
    /// Read-only requests waiting until nothing this replica committed to is unexecuted.
    var deferredReads: [Request] = []
    /// While this replica changes views: what the others still decide in older views, above
    /// `lastExecuted` and inside the window (`observeOlderView`). Emptied when a view is entered.
    var observed: [SequenceNumber: ObservedSlot] = [:]

    // Output, drained by ready()/advance().
    var outbox: [PBFTEnvelope] = []
    var executedOut: [CommittedBatch] = []
    var readOnlyOut: [Request] = []
    var resendOut: [Request] = []
    var installOut: StateToInstall?

    /// What this replica may have voted for before a restart that lost it (nil: nothing
    /// forgotten, or no longer relevant). See `PBFTAmnesia`.
    public internal(set) var amnesia: PBFTAmnesia?
    /// Messages withheld because of `amnesia`, for tests and logs.
    public internal(set) var withheldMessages = 0

    /// Set when the core detects something that must never happen to a correct replica.
    public internal(set) var invariantViolation: String?
    /// Counters for traces and tests.
    public internal(set) var viewChangesStarted = 0
    public internal(set) var stateTransfers = 0

    public init(config: PBFTConfig, crypto: any PBFTCryptoProvider) {
        config.validate()
        precondition(crypto.principal == .replica(config.id), "crypto provider of another principal")
        self.config = config
        self.crypto = crypto
        timeoutTicks = config.viewChangeTimeoutTicks
        newViewTimeoutTicks = config.viewChangeTimeoutTicks
        amnesia = config.amnesia
    }

    public var id: NodeID { config.id }
    public var primary: NodeID { config.primary(of: view) }
    public var isPrimary: Bool { primary == config.id && isViewActive }
    /// H = h + L: no sequence number above this is accepted.
    public var highWatermark: SequenceNumber { lowWatermark.adding(config.logWindow) }
    public var pendingCount: Int { pending.count }
    /// Messages of later views held until this replica enters their view, for tests of its bounds.
    public var heldFutureMessages: Int { futureMessages.count }
    /// Sequence numbers with log state kept, for tests of garbage collection.
    public var slotCount: Int { slots.count }
    /// The digest certified by `stableProof`.
    public var stableDigest: Digest { stableProof.first?.stateDigest ?? .empty }

    // MARK: Inputs

    /// Time passes by one tick: view-change timers, state-transfer retries, batching.
    public mutating func tick() {
        if let left = timerTicksLeft {
            if left <= 1 {
                timerTicksLeft = nil
                startViewChange(to: view.next)
            } else {
                timerTicksLeft = left - 1
            }
        }
        tickStateFetch()
        proposeBatches()
        ticksSinceStatus += 1
        if ticksSinceStatus >= config.statusIntervalTicks {
            ticksSinceStatus = 0
            broadcast(.status(Status(view: view, viewActive: isViewActive, lowWatermark: lowWatermark,
                                     lastExecuted: lastExecuted, replica: config.id)))
        }
    }

    /// A request from a client, handed over directly by the shell.
    public mutating func propose(_ request: Request) {
        handleRequest(request, fromClient: true)
    }

    /// One message from the network. Anything malformed, unauthenticated or stale is dropped.
    public mutating func step(_ env: PBFTEnvelope) {
        guard env.to == .replica(config.id) else { return }
        if case let .replica(from) = env.from, !config.replicas.contains(from) { return }
        if env.message.isMACed {
            guard env.mac.count <= PBFTLimits.authenticatorBytesMax,
                  crypto.verifyMAC(env.mac, of: env.message.signedBytes, from: env.from) else { return }
        }
        switch env.message {
        case let .request(r): handleRequest(r, fromClient: env.from.replicaID == nil)
        case let .prePrepare(m): if admit(env, view: m.view) { onPrePrepare(m) }
        case let .prepare(m): if admit(env, view: m.view) { onPrepare(m) }
        case let .commit(m): if env.from == .replica(m.replica), admit(env, view: m.view) { onCommit(m) }
        case let .checkpoint(m): onCheckpoint(m)
        case let .viewChange(m): onViewChange(m)
        case let .newView(m): onNewView(m)
        case let .fetchState(m): if env.from == .replica(m.replica) { onFetchState(m) }
        case let .stateTransfer(m): if env.from == .replica(m.replica) { onStateTransfer(m) }
        case let .status(m): if env.from == .replica(m.replica) { onStatus(m) }
        case .reply: break
        }
    }

    /// Normal-case messages count only in the current, active view. Messages of a later view (or
    /// of this view while it is not yet installed) wait, bounded; older views are dropped, which
    /// is what makes replayed old-view messages harmless.
    mutating func admit(_ env: PBFTEnvelope, view v: View) -> Bool {
        if v == view && isViewActive { return true }
        if v < view {
            // A replica whose view change nobody joined still follows what the others decide.
            if !isViewActive && !config.bugs.contains(.ignoreOlderViews) { observeOlderView(env.message) }
            return false
        }
        if v > view || (v == view && !isViewActive) {
            // Held before their signatures are checked (they are checked in their view), so bounded
            // per sender in count and bytes, and only a view-change horizon ahead: a faulty peer
            // cannot fill memory or crowd out the others' messages.
            guard v.rawValue - view.rawValue <= Self.viewChangeHorizon else { return false }
            var size = 256
            if case let .prePrepare(m) = env.message { size += m.requests.reduce(0) { $0 + $1.sizeBytes } }
            let held = futureHeld[env.from] ?? (0, 0)
            guard held.count < max(1, config.futureMessagesMax / config.n), held.bytes + size <= config.futureBytesMax / config.n else { return false }
            futureHeld[env.from] = (held.count + 1, held.bytes + size)
            futureMessages.append(env)
        }
        return false
    }

    // MARK: Output

    /// What the shell must do now, in field order (see `PBFTReady`).
    public func ready() -> PBFTReady {
        PBFTReady(stateToInstall: installOut, messages: outbox, committed: executedOut,
                  readOnly: readOnlyOut, replyResends: resendOut)
    }

    /// The shell has carried out `rd` (everything `ready()` returned).
    public mutating func advance(_ rd: PBFTReady) {
        precondition(rd.messages.count <= outbox.count && rd.committed.count <= executedOut.count, "advance with a stale Ready")
        outbox.removeFirst(rd.messages.count)
        executedOut.removeFirst(rd.committed.count)
        readOnlyOut.removeFirst(rd.readOnly.count)
        resendOut.removeFirst(rd.replyResends.count)
        if rd.stateToInstall != nil { installOut = nil }
    }

    /// A reply to `request` carrying `result`, MAC'd for its client.
    public func reply(to request: Request, result: [UInt8], readOnly: Bool = false) -> PBFTEnvelope {
        let r = Reply(view: view, timestamp: request.timestamp, client: request.client, replica: config.id,
                      result: result, readOnly: readOnly)
        let msg = PBFTMessage.reply(r)
        let to = Principal.client(request.client)
        return PBFTEnvelope(from: .replica(config.id), to: to, message: msg, mac: crypto.mac(msg.signedBytes, to: to))
    }

    // MARK: Sending

    mutating func send(_ m: PBFTMessage, to replica: NodeID) {
        guard replica != config.id else { return }
        if amnesia != nil && !mayVote(m) {
            withheldMessages += 1
            return
        }
        let to = Principal.replica(replica)
        let mac = m.isMACed ? crypto.mac(m.signedBytes, to: to) : []
        outbox.append(PBFTEnvelope(from: .replica(config.id), to: to, message: m, mac: mac))
    }

    /// Whether a replica with `amnesia` may send `m` (see `PBFTAmnesia`); clears the amnesia once
    /// nothing it forgot can matter any more.
    mutating func mayVote(_ m: PBFTMessage) -> Bool {
        guard let a = amnesia else { return true }
        let caughtUp = lowWatermark >= a.sequenceThrough
        if caughtUp && view > a.viewThrough {
            amnesia = nil
            // A VIEW-CHANGE or NEW-VIEW built while votes were withheld was never sent and may
            // lack what the replica forgot: forget it, so the next view change builds afresh.
            let me = config.id
            for v in Array(viewChanges.keys) { viewChanges[v]?[me] = nil }
            if let nv = lastNewView, nv.primary == me { lastNewView = nil }
            return true
        }
        // A (view, sequence) pair above either bound was never voted on before the restart.
        switch m {
        case let .prePrepare(x): return x.view > a.viewThrough || x.sequence > a.sequenceThrough
        case let .prepare(x): return x.view > a.viewThrough || x.sequence > a.sequenceThrough
        case let .commit(x): return x.view > a.viewThrough || x.sequence > a.sequenceThrough
        case let .viewChange(x): return caughtUp && x.newView > a.viewThrough
        case let .newView(x): return caughtUp && x.view > a.viewThrough
        default: return true
        }
    }

    mutating func broadcast(_ m: PBFTMessage) {
        for r in config.replicas where r != config.id { send(m, to: r) }
    }

    mutating func verify(_ signature: [UInt8], of bytes: [UInt8], by signer: Principal) -> Bool {
        cache.verify(crypto, signature, of: bytes, by: signer)
    }

    mutating func fail(_ why: String) {
        if invariantViolation == nil { invariantViolation = "\(config.id): \(why)" }
    }

    // MARK: Timers

    /// Starts the view-change timer if a request waits and it is not running. The primary runs
    /// it too: a primary left behind (its view's quorum gone, its requests stuck) must be able to
    /// vote for a view change, or the replicas still in the view may all wait forever (found by
    /// the simulator: primary and one backup left in a view, the other correct backup ahead).
    mutating func armTimerIfNeeded() {
        guard timerTicksLeft == nil, !pending.isEmpty, isViewActive else { return }
        timerTicksLeft = timeoutTicks
    }

    /// Progress in this view: restart the timer for what still waits, and end the back-off.
    mutating func restartTimerAfterExecution() {
        timeoutTicks = config.viewChangeTimeoutTicks
        timerTicksLeft = nil
        armTimerIfNeeded()
    }
}

extension PBFTReplica {
    /// The digest of this replica's own checkpoint at `n`, while it keeps one.
    public func checkpointDigest(at n: SequenceNumber) -> Digest? { ownCheckpoints[n]?.digest }
    /// True while a state transfer is under way.
    public var isFetchingState: Bool { fetch != nil }
}

extension PBFTReplica {
    /// A state transfer in progress, for diagnosis (it holds execution back).
    var fetchSummary: String {
        fetch.map { " fetching \($0.sequence) from \($0.proof.map(\.replica.description).joined(separator: ",")) (attempt \($0.attempt))" } ?? ""
    }

    /// What this replica holds for sequence number `n`, for traces and debugging.
    public func slotSummary(_ n: SequenceNumber) -> String {
        guard let s = slots[n] else { return "\(n): none\(fetchSummary)" }
        let pp = s.prePrepare.map { "pp \($0.view) \($0.digest)" } ?? "no pp"
        let prepares = s.prepares.values.sorted { $0.replica < $1.replica }.map { "\($0.replica)@\($0.view)/\($0.digest)" }
        let commits = s.commits.values.sorted { $0.replica < $1.replica }.map { "\($0.replica)@\($0.view)/\($0.digest)" }
        return "\(n): \(pp) prepares[\(prepares.joined(separator: " "))] commits[\(commits.joined(separator: " "))] sentCommit=\(s.sentCommit) cert=\(s.certificate.map { "\($0.prePrepare.view)" } ?? "-")\(fetchSummary)"
    }
}
