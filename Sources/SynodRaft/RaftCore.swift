import SynodCore

/// A Raft node as a value: no I/O, no clock, no threads (etcd-raft's RawNode shape).
///
/// Drive it with `tick()` (time), `step(_:)` (messages), `propose(_:)` and `readIndex(context:)`
/// (clients). Then take `ready()`, do what it says in the documented order, and call
/// `advance(_:)`. The only randomness is the injected `SeededRandom`, so the same inputs always
/// give the same outputs.
public struct RaftCore: Sendable {
    public let config: RaftConfig
    public var id: NodeID { config.id }
    var random: SeededRandom

    // Persistent state (Raft Figure 2).
    public internal(set) var term: Term
    public internal(set) var vote: NodeID
    var log: RaftLog
    public internal(set) var membership: Membership
    /// The newest local snapshot: what we send to followers that need compacted entries.
    /// Its `data` may be empty — bytes not built yet (see `snapshotDataWanted`).
    /// Invariant: `snapshot.position.index >= log.compacted.index` when the log is compacted.
    var snapshot: Snapshot?
    /// Set when a follower needs a snapshot and the newest one has no bytes: the shell builds
    /// them (from its state at some applied index at or after the compaction point) and hands
    /// them over with `attachSnapshot(at:data:)`. Cleared by it.
    public internal(set) var snapshotDataWanted = false

    // Volatile state.
    public internal(set) var role: RaftRole = .follower
    /// The leader of `term` we know of, or `.none`.
    public internal(set) var leader: NodeID = .none
    var electionElapsed = 0
    var heartbeatElapsed = 0
    var randomizedElectionTimeout = 0
    /// Ticks since this core was created; leader leases are measured in it.
    var tickCount: UInt64 = 0
    /// Lease reads only: refuse votes for the first election timeout after a restart.
    var quietAfterRestart = false
    /// Leader only: one entry per member including ourselves. Iterated only via `peers`.
    var progress: [NodeID: Progress] = [:]
    /// Candidate only: answers received.
    var votes: [NodeID: Bool] = [:]
    /// Index of the newest configuration entry in the log (or the snapshot index).
    var lastConfigIndex: LogIndex = .zero
    /// Leader only: the voter we are handing leadership to, and for how long we have been trying.
    var leadTransferee: NodeID = .none
    /// Leader only: this leader sent TimeoutNow in its term, so its lease is gone for the rest of
    /// the term (`leaseIsValid`). The target's votes pass the followers' leases, and it may act
    /// on that TimeoutNow long after this leader gave the transfer up (it froze, the message was
    /// delayed): no heartbeat acknowledgement can rule that out. ReadIndex rounds still work —
    /// a follower that acknowledges one has not voted yet.
    var leaseForfeited = false
    var transferElapsed = 0
    /// Candidate only: this campaign was asked for by a leadership transfer.
    var campaignIsTransfer = false
    var incomingSnapshot: Snapshot?
    /// The leader and term sending `incomingSnapshot`: a transfer resumes only with the same
    /// sender in the same term. A leader elected again (even the same node, perhaps restarted
    /// with another build) starts over, so bytes of two encodings are never spliced together.
    var incomingSnapshotFrom: NodeID = .none
    var incomingSnapshotTerm: Term = .zero

    // Leader reads (dissertation §6.4), its own and those followers asked for.
    var pendingReads: [PendingRead] = []
    var readsAwaitingCommit: [ReadRequest] = []
    /// Heartbeat contexts for followers' reads: `forwardedReadContextBase | n`, apart from the
    /// shell's own contexts (which stay below the base).
    var nextForwardedReadContext: UInt64 = 0

    // Output waiting for the shell.
    var messages: [Message] = []
    var readStates: [ReadState] = []
    var refusedReads: [UInt64] = []
    var snapshotToInstall: Snapshot?
    /// Counts inputs, so `advance` can tell a `Ready` taken before the latest input (a shell bug).
    var inputCount: UInt64 = 0
    var persistedHardState: HardState
    var persistedMembership: Membership

    /// Checks a snapshot gathered from the leader before it replaces anything: false (its bytes
    /// were damaged on the way, or the leader built them damaged) discards it and asks the leader
    /// to send it again from the start. A pure function of the bytes (the node checks the
    /// snapshot's SHA-256, `SnapshotSeal`); nil accepts every snapshot.
    public var snapshotCheck: (@Sendable ([UInt8]) -> Bool)?
    /// Snapshots `snapshotCheck` refused, for the shell's log.
    public internal(set) var snapshotsRefusedByCheck = 0
    /// Leader: snapshots a follower's check refused, whose bytes this core then dropped to be
    /// built again (`snapshotDataWanted`), for the shell's log.
    public internal(set) var snapshotsReportedDamaged = 0

    /// Set instead of trapping when an injected bug breaks an invariant, so the simulator can
    /// report it. Always nil when `config.bugs` is empty (the core traps instead).
    public internal(set) var invariantViolation: String?

    /// Creates a core from durable state (empty for a new node; the bootstrap membership must be in it).
    public init(config: RaftConfig, random: SeededRandom, restart state: RaftRestartState) {
        config.validate()
        self.config = config
        self.random = random
        term = state.hardState.term
        vote = state.hardState.vote
        log = RaftLog(compacted: state.compacted, entries: state.entries, committed: state.hardState.commit)
        log.applied = max(state.applied, state.compacted.index)
        precondition(log.applied <= log.committed || log.applied == state.compacted.index, "applied past commit")
        membership = state.membership
        snapshot = state.snapshot
        persistedHardState = state.hardState
        persistedMembership = state.membership
        precondition(state.compacted.index == .zero || state.snapshot?.position == state.compacted, "compacted log needs its snapshot")
        resetElectionTimer()
        quietAfterRestart = config.leaseReads
        lastConfigIndex = findLastConfigIndex(before: log.lastIndex.next)
    }

    // MARK: Inspection (tests, checkers, traces)

    public var commitIndex: LogIndex { log.committed }
    public var appliedIndex: LogIndex { log.applied }
    public var firstIndex: LogIndex { log.firstIndex }
    public var lastIndex: LogIndex { log.lastIndex }
    public var lastTerm: Term { log.lastTerm }
    public var compactedPosition: LogPosition { log.compacted }
    public var persistedLastIndex: LogIndex { log.stableLast }
    public func term(at index: LogIndex) -> Term? { log.term(at: index) }
    public func entry(at index: LogIndex) -> Entry? { log.entry(at: index) }
    /// Entries held in memory (since the last snapshot).
    public var entries: [Entry] { log.entries }
    public var hardState: HardState { HardState(term: term, vote: vote, commit: log.committed) }
    public func replicationState(of peer: NodeID) -> ReplicationState? { progress[peer]?.state }
    public func matchIndex(of peer: NodeID) -> LogIndex? { progress[peer]?.match }
    public func inflightCount(of peer: NodeID) -> Int? { progress[peer]?.inflights.count }
    public var latestSnapshot: Snapshot? { snapshot }
    /// Leader: the lowest index of a snapshot being sent to a follower right now, if any. A shell
    /// that compacts past it makes the transfer start over with newer bytes (see
    /// `NodeLoop.maybeSnapshot`, which holds compaction back for a while).
    public var snapshotTransferFloor: LogIndex? {
        progress.values.filter { $0.state == .snapshot && !$0.snapshotRefused }.map(\.pendingSnapshot).min()
    }
    /// Leader: followers that refused the snapshot being sent as larger than they gather
    /// (`RaftConfig.snapshotBytesMax`), sorted; they get nothing more until a newer snapshot.
    public var peersRefusingSnapshot: [NodeID] {
        progress.filter { $0.value.state == .snapshot && $0.value.snapshotRefused }.map(\.key).sorted()
    }
    /// True while the newest configuration entry is not yet committed, or the membership is joint.
    public var membershipChangePending: Bool { membership.isJoint || lastConfigIndex > log.committed }
    public var transferTarget: NodeID { leadTransferee }

    /// Every other member, sorted: the only way the core iterates over peers, so no hash order leaks.
    var peers: [NodeID] { membership.allMembers.filter { $0 != id } }

    // MARK: Inputs

    /// Advances logical time by one tick.
    public mutating func tick() {
        inputCount &+= 1
        tickCount += 1
        if role == .leader { tickLeader() } else { tickElection() }
    }

    /// Reports `count` ticks of wall time the shell did not deliver through `tick()`: a shell
    /// caps the ticks it delivers at once (after a long fsync or a paused process, a burst
    /// would fire needless elections) and reports the rest here. No timer fires for them, but
    /// lease reads count them, so a lease never outlives the time that really passed: a leader
    /// that was frozen past its lease confirms its leadership with a heartbeat round before it
    /// answers another read, instead of answering from a state a newer leader has overtaken.
    public mutating func ticksMissed(_ count: Int) {
        inputCount &+= 1
        guard count > 0, !config.bugs.contains(.leaseIgnoresMissedTicks) else { return }
        tickCount &+= UInt64(count)
    }

    /// Proposes a command. Only a leader accepts; the entry is committed later (or lost if this
    /// node stops leading first). Returns the position it was appended at.
    @discardableResult
    public mutating func propose(_ payload: [UInt8]) throws(RaftError) -> LogPosition {
        inputCount &+= 1
        let position = try appendProposal(payload)
        broadcastAppend(sendIfEmpty: false)
        return position
    }

    /// Proposes several commands at once, in order. Each is accepted or refused on its own (the
    /// same checks as `propose(_:)`); the accepted ones leave in one append per follower instead
    /// of one append per command, which is what keeps a loaded leader's message count per pass
    /// independent of the number of clients.
    public mutating func propose(batch payloads: [[UInt8]]) -> [Result<LogPosition, RaftError>] {
        inputCount &+= 1
        var results: [Result<LogPosition, RaftError>] = []
        results.reserveCapacity(payloads.count)
        var appended = false
        for p in payloads {
            do throws(RaftError) {
                results.append(.success(try appendProposal(p)))
                appended = true
            } catch {
                results.append(.failure(error))
            }
        }
        if appended { broadcastAppend(sendIfEmpty: false) }
        return results
    }

    private mutating func appendProposal(_ payload: [UInt8]) throws(RaftError) -> LogPosition {
        guard role == .leader else { throw .notLeader(leaderHint: leader) }
        guard leadTransferee.isNone else { throw .leadershipTransferInProgress }
        guard payload.count <= Limits.entryPayloadBytesMax else { throw .tooLarge }
        guard log.lastIndex.rawValue - log.committed.rawValue < UInt64(config.uncommittedEntriesMax) else { throw .busy }
        let e = Entry(index: log.lastIndex.next, term: term, kind: .command, payload: payload)
        log.append(e)
        return e.position
    }

    /// Compacts the log through `index`, which the shell has applied and captured as
    /// `snapshotData` (log compaction, Raft §7). The shell then deletes the same prefix from its
    /// log store and keeps the snapshot durably.
    ///
    /// `snapshotData` may be empty when the shell's state is its own snapshot and bytes are
    /// built only when a follower needs them (`snapshotDataWanted`, `attachSnapshot(at:data:)`).
    public mutating func compact(upTo index: LogIndex, snapshotData: [UInt8]) {
        inputCount &+= 1
        precondition(index <= log.applied, "compact beyond applied")
        precondition(index <= log.stableLast, "compact beyond persisted")
        guard index > log.compacted.index else { return }
        let t = log.term(at: index)!
        if snapshotData.isEmpty, let kept = snapshot, !kept.data.isEmpty, kept.position.index >= index {
            // Bytes built for a follower at or after this point still serve: keep sending them.
        } else {
            snapshot = Snapshot(position: LogPosition(index: index, term: t), membership: membership(at: index), data: snapshotData)
        }
        log.compact(upTo: index)
    }

    /// Bytes of the state machine exactly as of `index` (applied, at or after the compaction
    /// point), built because `snapshotDataWanted`: they become the snapshot sent to followers
    /// that need compacted entries — possibly newer than the compaction point, which is fine: such
    /// a follower continues from `index`, and the log holds every entry after it. The log is not
    /// compacted further. False (nothing changed) when `index` is below the compaction point.
    @discardableResult
    public mutating func attachSnapshot(at index: LogIndex, data: [UInt8]) -> Bool {
        inputCount &+= 1
        precondition(index <= log.applied, "snapshot beyond applied")
        precondition(!data.isEmpty, "attach snapshot bytes, not an empty snapshot")
        guard index >= log.compacted.index, let t = log.term(at: index) else { return false }
        snapshot = Snapshot(position: LogPosition(index: index, term: t), membership: membership(at: index), data: data)
        snapshotDataWanted = false
        for p in peers where progress[p]?.state == .snapshot { sendSnapshotChunk(to: p) }
        return true
    }

    // MARK: Output

    /// True when `ready()` has something to do.
    public var hasReady: Bool { !ready().isEmpty }

    /// What the shell must do now, in field order (see `Ready`). Does not change the core; call
    /// `advance(_:)` once it is done, before any other input.
    public func ready() -> Ready {
        var hs: HardState? = hardState == persistedHardState ? nil : hardState
        if config.bugs.contains(.voteWithoutPersisting), var h = hs {
            // Injected bug: the vote never reaches the disk.
            h.vote = h.term == persistedHardState.term ? persistedHardState.vote : .none
            hs = h
        }
        return Ready(
            snapshot: snapshotToInstall,
            truncateFrom: log.pendingTruncate,
            entries: log.unstableEntries,
            hardState: hs,
            membership: membership == persistedMembership ? nil : membership,
            messages: messages,
            committedEntries: log.committedUnapplied(countMax: config.committedEntriesPerReadyMax),
            readStates: readStates,
            refusedReads: refusedReads,
            inputCount: inputCount)
    }

    /// Records that the shell carried out `ready` (obtained from `ready()` with no input since).
    ///
    /// With `entriesInFlight` the shell has *started* writing `ready`'s log write but not waited
    /// for it (etcd-raft's asynchronous storage writes, dissertation §10.2.1): allowed only for a
    /// leader whose write changes no term or vote and truncates nothing (`mayWriteAsynchronously`).
    /// The entries are not handed out again, but the leader counts itself toward their commit
    /// only once the shell reports them durable with `persisted(through:)`. The shell must
    /// carry out its writes in order: a later write starts after an earlier one is durable.
    public mutating func advance(_ ready: Ready, entriesInFlight: Bool = false) {
        precondition(ready.inputCount == inputCount, "advance with a Ready taken before the latest input")
        precondition(ready.messages.count <= messages.count, "advance with a stale Ready")
        precondition(!entriesInFlight || mayWriteAsynchronously(ready), "asynchronous write of a Ready that must be durable first")
        snapshotToInstall = nil
        if let last = ready.entries.last {
            precondition(last.index <= log.lastIndex, "advance with a stale Ready")
            if entriesInFlight {
                log.inFlightLast = last.index
            } else {
                log.stableLast = last.index
            }
        }
        if ready.truncateFrom != nil { log.pendingTruncate = nil }
        persistedHardState = hardState
        if let m = ready.membership { persistedMembership = m }
        messages.removeFirst(ready.messages.count)
        readStates.removeFirst(ready.readStates.count)
        refusedReads.removeFirst(ready.refusedReads.count)
        if let applied = ready.committedEntries.last {
            precondition(applied.index <= log.committed, "applied an uncommitted entry")
            precondition(applied.index > log.applied, "applied twice")
            log.applied = applied.index
        }
        if role == .leader {
            progress[id]?.match = log.stableLast
            progress[id]?.next = log.lastIndex.next
            if maybeCommit() { broadcastAppend(sendIfEmpty: true) }
            maybeFinishMembershipChange()
        }
    }

    /// True when the shell may write `ready`'s log write without waiting for it
    /// (`advance(_:entriesInFlight: true)`): this node leads, and the write installs no
    /// snapshot, truncates nothing and changes no term or vote — nothing in it is a promise made
    /// to another node, so its messages (appends and heartbeats) may go out first.
    public func mayWriteAsynchronously(_ ready: Ready) -> Bool {
        guard role == .leader, ready.snapshot == nil, ready.truncateFrom == nil else { return false }
        if let hs = ready.hardState, hs.term != persistedHardState.term || hs.vote != persistedHardState.vote { return false }
        return true
    }

    /// The shell's asynchronous write ending at `position` is durable. Ignored when the log no
    /// longer holds that entry (a newer leader replaced it meanwhile) or it is already known durable.
    public mutating func persisted(through position: LogPosition) {
        inputCount &+= 1
        guard position.index > log.stableLast, position.index <= log.lastIndex,
              log.term(at: position.index) == position.term else { return }
        log.stableLast = position.index
        if role == .leader {
            progress[id]?.match = log.stableLast
            if maybeCommit() { broadcastAppend(sendIfEmpty: true) }
            maybeFinishMembershipChange()
        }
    }

    /// A leader's queued messages (appends, heartbeats, snapshot chunks), handed out while a write
    /// is in flight: none of them promises durable state (dissertation §10.2.1). Empty unless leading.
    public mutating func takeLeaderMessages() -> [Message] {
        guard role == .leader, !messages.isEmpty else { return [] }
        inputCount &+= 1
        defer { messages.removeAll(keepingCapacity: true) }
        return messages
    }

    /// A message from us in our current term.
    func message(_ type: MessageType, to: NodeID) -> Message {
        Message(type: type, from: id, to: to, term: term)
    }

    mutating func send(_ m: Message) {
        precondition(m.to != id, "message to self")
        precondition(m.from == id, "message from someone else")
        messages.append(m)
    }

    /// Records an invariant broken by an injected bug; traps when no bug is injected.
    mutating func brokenInvariant(_ what: String) {
        precondition(!config.bugs.isEmpty, what)
        if invariantViolation == nil { invariantViolation = "\(id): \(what)" }
    }
}

/// A ReadIndex request: from the shell (`requester` is this node) or from a follower.
struct ReadRequest: Sendable {
    var requester: NodeID
    /// The requester's id for it.
    var context: UInt64
}

/// A ReadIndex request waiting for a heartbeat round (dissertation §6.4).
struct PendingRead: Sendable {
    /// The heartbeat context confirming it: the request's own for this node's reads, a
    /// leader-chosen one for a follower's.
    var heartbeatContext: UInt64
    var index: LogIndex
    var acks: [NodeID]
    var request: ReadRequest
}
