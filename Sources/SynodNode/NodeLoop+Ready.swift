import Foundation
import Logging
import SynodCore
import SynodLMDB
import SynodRaft
import SynodStateMachine
import SynodTransport
import SynodWire

extension NodeLoop {
    /// Carries out every pending `Ready`, in the order `Ready` documents.
    func drainReady() throws {
        var rounds = 0
        while core.hasReady && rounds < 64 {
            rounds += 1
            let rd = core.ready()
            if let snapshot = rd.snapshot { try installSnapshot(snapshot) }
            // Dissertation §10.2.1: a leader may send appends before its own write is durable; it
            // counts itself toward commit only for what it has persisted. Everything else
            // (votes, acknowledgements) promises durable state, so it goes out after the write.
            let leading = core.role == .leader
            if leading { transport.send(rd.messages) }
            // One LMDB transaction for the whole Ready: the log batch and the apply of the
            // committed entries commit together (one sync instead of two).
            let write = rd.logWrite
            let committed = deferApplies(rd.committedEntries, leading: leading)
            if !write.isEmpty || !committed.isEmpty { try persistAndApply(write, committed) }
            if !leading { transport.send(rd.messages, into: &outbound) }
            for rs in rd.readStates {
                if let round = readBatches.removeValue(forKey: rs.context) { readyReads.append((rs.index, round.reads, ProcessInfo.processInfo.systemUptime)) }
            }
            for context in rd.refusedReads {
                guard let round = readBatches.removeValue(forKey: context) else { continue }
                for r in round.reads { respond(r.connection, ClientResponse(id: r.requestID, status: .busy, message: "the leader has too many reads in flight; retry")) }
            }
            core.advance(rd)
            try serveReadyReads()
        }
        noticeLeadershipChange()
        noticeLeaderForMetrics()
        noticeSnapshotRefusals()
        noticeDamagedSnapshots()
        try maybeSnapshot()
    }

    /// Most committed entries a follower keeps waiting to be applied (see `deferApplies`).
    static let deferredAppliesMax = 4096
    var deferredApplySeconds: Double { Double(configuration.followerApplyDelayMillis) / 1000 }

    /// What to apply now of the committed entries a Ready hands over.
    ///
    /// A follower holds them back (up to `followerApplyDelayMillis`) and applies them in one
    /// batch, committed on its own (`applyDeferred`), so its log writes — what the leader waits
    /// for — carry log pages only, not the B-tree paths of every state table (measured: put@100
    /// on three nodes +15-30 %, docs/BENCHMARKS.md). Safe because nothing on a follower answers
    /// from the state without applying first: serializable reads and watches flush the queue,
    /// and a node that becomes leader applies everything before its own entries. The core
    /// counts these entries as applied; a crash loses only the queue, which the restart re-applies
    /// from the log (compaction never passes the state's own applied index).
    func deferApplies(_ committed: [Entry], leading: Bool) -> [Entry] {
        // Enough queued for one batch also applies now (a catching-up follower takes many Readys per pass).
        if leading || configuration.followerApplyDelayMillis == 0 || !watchers.isEmpty || !readyReads.isEmpty
            || deferredApplies.count + committed.count >= Self.deferredAppliesMax {
            guard !deferredApplies.isEmpty else { return committed }
            let all = deferredApplies + committed
            deferredApplies = []
            return all
        }
        if deferredApplies.isEmpty && !committed.isEmpty { deferredDue = applyDeadline(after: ProcessInfo.processInfo.systemUptime) }
        deferredApplies += committed
        return []
    }

    /// When entries deferred at `t` are applied: the end of the delay-long slot containing `t`,
    /// slots shifted by a fraction of the delay that differs per node id. Two followers of one
    /// leader then never apply (and stall their acknowledgements) at the same moment — the leader
    /// needs only one of them — and a batch waits at most one delay.
    func applyDeadline(after t: Double) -> Double {
        let slot = deferredApplySeconds
        let phase = slot * (Double(configuration.id.rawValue) * 0.618_033_988_75).truncatingRemainder(dividingBy: 1)
        return ((t + phase) / slot).rounded(.down) * slot + slot - phase
    }

    /// Applies the deferred entries when they have waited long enough, or this node now leads
    /// (it may become leader in a pass that hands over no committed entries).
    func applyDeferredIfDue(_ now: Double) throws {
        guard !deferredApplies.isEmpty else { return }
        if core.role == .leader || now >= deferredDue {
            try applyDeferred()
            try commitHeldApplies()
        }
    }

    /// Applies every deferred entry now (in the held transaction; see `persistAndApply`).
    func applyDeferred() throws {
        guard !deferredApplies.isEmpty else { return }
        let entries = deferredApplies
        deferredApplies = []
        try persistAndApply(LogWrite(), entries)
    }

    /// Test-only (`SYNOD_TESTING_SKIP_HELD_REDO`): the redo above is skipped — the bug
    /// `StorageGrowthTests.heldCommitFailuresAreRedone` exists to catch.
    static let testingSkipHeldRedo = ProcessInfo.processInfo.environment["SYNOD_TESTING_SKIP_HELD_REDO"] != nil

    /// Most committed entries applied in a held (uncommitted) transaction before it must commit.
    static let heldEntriesMax = 8192
    /// Longest a held apply waits for a log write to commit with, in seconds.
    static let heldSecondsMax = 0.005

    /// One LMDB transaction for this Ready's log write and the apply of its committed entries.
    ///
    /// Applying alone (no log write) does not commit: the transaction is held open and commits
    /// with the next log write, or after `heldSecondsMax` (`commitHeldApplies`). That is safe
    /// because applied state is derived — committed entries are durable in the log on a quorum,
    /// and a restart re-applies from the log whatever a crash took away — and it saves a leader
    /// one commit (two syncs) per round of acknowledgements. Reads on this thread see the held
    /// state (the state store reads through the held transaction).
    func persistAndApply(_ write: LogWrite, _ committed: [Entry]) throws {
        let wasHolding = holding
        if !wasHolding { heldEntries = [] }
        var write = write
        // A map growth rolls the held transaction back, its commit index included: rewrite the
        // newest hard state with every write that continues a held one, so the re-run has it.
        if wasHolding && write.hardState == nil { write.hardState = persistedHardState }
        let hold = write.onlyAdvancesCommit(from: persistedHardState) && heldEntries.count + committed.count <= Self.heldEntriesMax
        // Previous values in events only for this node's watchers (each costs a history lookup).
        sm.kv.prevValuesInEvents = !watchers.isEmpty
        let t0 = ProcessInfo.processInfo.systemUptime
        var answered = false
        _ = try store.write(write, binding: sm.combined, hold: hold) { isRetry in
            if isRetry {
                // The map grew: the transaction, held applies included, was rolled back.
                try sm.kv.reload()
                if !heldEntries.isEmpty { _ = try sm.apply(heldEntries) }
            }
            guard !committed.isEmpty else { return }
            let applied = try sm.apply(committed)
            if !answered {
                // These entries are committed (durable on a quorum), so their outcomes are final
                // whatever happens to this transaction: answer now, not after the commit's syncs.
                // A re-run after map growth applies again with the same results: answer once.
                answered = true
                finishApply(committed, applied)
                flushOutbox()
            }
        }
        if let hs = write.hardState { persistedHardState = hs }
        if !hold { metrics.commitDuration.recordSeconds(ProcessInfo.processInfo.systemUptime - t0) }
        if hold {
            if !wasHolding { heldSince = ProcessInfo.processInfo.systemUptime }
            heldEntries += committed
        } else {
            heldEntries = []
        }
        if PassStats.enabled {
            let took = ProcessInfo.processInfo.systemUptime - t0
            if took > 0.05 { FileHandle.standardError.write("slow write \(Int(took * 1000)) ms: entries=\(write.entries.count) applied=\(committed.count) hold=\(hold)\n".data(using: .utf8)!) }
            if !hold { passStats.commits += 1 }
            passStats.entriesWritten += write.entries.count
            passStats.entriesApplied += committed.count
            passStats.commitSeconds += ProcessInfo.processInfo.systemUptime - t0
        }
    }

    /// True while a write transaction is held open (see `persistAndApply`).
    var holding: Bool { store.environment.heldTransaction != nil }

    /// Commits applies held open (one sync: they can be redone from the log, see
    /// `LMDBEnvironment.commitHeld`). Called when they have waited `heldSecondsMax`, and before
    /// anything that writes or streams the state outside the Ready path.
    func commitHeldApplies(force: Bool = true) throws {
        guard holding else {
            heldEntries = []
            return
        }
        guard force || ProcessInfo.processInfo.systemUptime - heldSince >= Self.heldSecondsMax else { return }
        let t0 = ProcessInfo.processInfo.systemUptime
        do { try store.environment.commitHeld(metaSync: false) } catch let e as LMDBError { throw StoreError(e) }
        metrics.commitDuration.recordSeconds(ProcessInfo.processInfo.systemUptime - t0)
        heldEntries = []
        if PassStats.enabled { passStats.commits += 1 }
    }

    /// `LMDBEnvironment.redoLostHeld`: a held transaction's commit failed for want of map pages
    /// and LMDB dropped it — the held applies (committed log entries, already answered) and the
    /// hard state written with them are gone from the files. The map has grown; write them again,
    /// silently. Runs wherever the held transaction was committed: here, or inside the
    /// environment before another write or a growth.
    func redoLostHeldApplies() throws {
        let redo = heldEntries
        heldEntries = []
        logger.notice("held applies lost to a full map at commit; applying them again", metadata: ["entries": "\(redo.count)"])
        guard !Self.testingSkipHeldRedo else { return }
        try sm.kv.reload()
        _ = try store.write(LogWrite(hardState: persistedHardState), binding: sm.combined, hold: false) { isRetry in
            if isRetry { try sm.kv.reload() }
            if !redo.isEmpty { _ = try sm.apply(redo) }
        }
    }

    /// Answers the writes, watches and lease tracking that applied entries complete.
    func finishApply(_ entries: [Entry], _ results: [AppliedEntry]) {
        // Only a leader answers writes: a follower encodes no responses, and events are gathered
        // only for watchers (the member directory looks at them one result at a time).
        let answering = !pendingWrites.isEmpty
        let leading = core.role == .leader
        let watching = !watchers.isEmpty
        var byIndex: [UInt64: [UInt8]] = [:]
        var events: [WatchEvent] = []
        for r in results {
            if let response = r.response {
                if answering { byIndex[r.index.rawValue] = response.encode() }
                if leading { trackLeases(response) }
            }
            if !r.events.isEmpty {
                noticeMemberEvents(r.events)
                if watching { events += r.events }
            }
        }
        if watching { recheckWatchers() }
        if !events.isEmpty { deliver(events) }
        guard answering else { return }
        for e in entries {
            guard let p = pendingWrites.removeValue(forKey: e.index.rawValue) else { continue }
            if e.term == p.term, e.kind != .command || byIndex[e.index.rawValue] != nil {
                // Configuration entries have no state-machine response: committing is the answer.
                respond(p.connection, ClientResponse(id: p.requestID, status: .ok, body: byIndex[e.index.rawValue] ?? []))
            } else {
                // Another leader's entry took this index: ours was never committed.
                respond(p.connection, ClientResponse(id: p.requestID, status: .unknownOutcome, message: "leadership changed before the write committed; retry"))
            }
        }
    }

    /// Answers the reads whose read index the state has reached (a follower first applies what
    /// it deferred: its reads must not wait for the apply delay).
    func serveReadyReads() throws {
        guard !readyReads.isEmpty else { return }
        try applyDeferred()
        let applied = sm.appliedIndex
        var keep: [(index: LogIndex, reads: [PendingRead], since: Double)] = []
        for (index, reads, since) in readyReads {
            if index <= applied {
                for r in reads {
                    if let lease = r.keepAlive {
                        answerKeepAlive(lease, r.requestID, r.connection)
                    } else if let a = r.authenticate {
                        authenticate(a.user, a.password, r.requestID, r.connection)
                    } else {
                        respond(r.connection, answer(r.query, r.requestID, r.connection))
                    }
                }
            } else {
                keep.append((index, reads, since))
            }
        }
        readyReads = keep
    }

    /// A leader that stops leading cannot finish what it promised: tell the clients so they
    /// retry elsewhere (writes carry a session, so a retry never applies twice).
    func noticeLeadershipChange() {
        let leading = core.role == .leader
        defer { wasLeader = leading }
        if leading && !wasLeader { startTrackingLeases() }
        guard wasLeader && !leading else { return }
        leaseDeadlines = [:]
        expiryProposed = [:]
        for (_, p) in pendingWrites {
            respond(p.connection, ClientResponse(id: p.requestID, status: .unknownOutcome, leader: core.leader,
                                                 leaderAddress: address(of: core.leader), message: "leadership lost; outcome unknown, retry"))
        }
        pendingWrites.removeAll()
        failReads(.notLeader, "leadership lost")
    }

    func failReads(_ status: ClientStatus, _ message: String) {
        var all: [PendingRead] = readBatch
        for (_, round) in readBatches { all += round.reads }
        for (_, b, _) in readyReads { all += b }
        readBatch = []
        readBatches = [:]
        readyReads = []
        for r in all { respond(r.connection, ClientResponse(id: r.requestID, status: status, leader: core.leader, leaderAddress: address(of: core.leader), message: message)) }
    }

    // MARK: snapshots

    /// Every `snapshotEveryEntries` applied entries: take a snapshot at the applied index, then
    /// compact the log (core and disk) up to the previous one, which keeps one interval of
    /// entries as retention.
    ///
    /// The state tables are the snapshot (DESIGN.md §4): taking one writes a checkpoint record and
    /// nothing else. Bytes exist only for a follower that needs entries this node compacted away
    /// (`buildSnapshotBytes`). Building them at every interval cost every node 0.5-1 s of CPU and
    /// 60+ MB of memory per 100,000 entries, for followers that almost never need them.
    func maybeSnapshot() throws {
        if core.snapshotDataWanted && core.role == .leader { try buildSnapshotBytes() }
        let applied = sm.appliedIndex
        guard applied.rawValue >= lastSnapshotIndex.rawValue + UInt64(configuration.snapshotEveryEntries),
              applied <= core.persistedLastIndex else { return }
        // The previous snapshot (one interval back) is what the log is compacted to now — or less,
        // while a follower is receiving a snapshot built at an older index: compacting past it
        // would drop those bytes and restart the transfer, which a large state under steady
        // writes might then never finish. Held back for at most `transferHoldIntervals`.
        var previous = lastSnapshotIndex
        if let floor = core.snapshotTransferFloor, floor < previous,
           applied.rawValue - floor.rawValue <= UInt64(configuration.snapshotEveryEntries * Self.transferHoldIntervals) {
            previous = floor
        }
        if previous > core.compactedPosition.index, let term = core.term(at: previous) {
            let t0 = ProcessInfo.processInfo.systemUptime
            let membership = core.membership(atIndex: previous)
            core.compact(upTo: previous, snapshotData: [])
            // The checkpoint record first: a restart needs it wherever the log was compacted.
            // (The core may keep newer bytes built for a follower; the checkpoint is the
            // compaction point's.)
            try store.saveCheckpoint(Checkpoint(position: LogPosition(index: previous, term: term), stateDigest: [], membership: membership))
            try store.deletePrefix(through: previous)
            try store.deleteSnapshots(below: previous)
            logger.notice("log compacted", metadata: ["through": "\(previous.rawValue)", "next_snapshot": "\(applied.rawValue)",
                                                     "compact_ms": "\(Int((ProcessInfo.processInfo.systemUptime - t0) * 1000))"])
        }
        lastSnapshotIndex = applied
    }

    /// Most snapshot intervals of log kept to let a snapshot transfer finish (`maybeSnapshot`).
    static let transferHoldIntervals = 4

    /// Warns once per refusal: a follower refused the snapshot as larger than it gathers.
    func noticeSnapshotRefusals() {
        let refusing = core.role == .leader ? core.peersRefusingSnapshot : []
        guard refusing != snapshotRefusalsLogged else { return }
        for peer in refusing where !snapshotRefusalsLogged.contains(peer) {
            logger.warning("a follower refused the snapshot it needs as too large; it cannot catch up until the state shrinks (compact, delete keys)",
                           metadata: ["peer": "\(peer.rawValue)", "bytes": "\(core.latestSnapshot?.data.count ?? 0)"])
        }
        snapshotRefusalsLogged = refusing
    }

    /// Warns for each snapshot from the leader whose SHA-256 did not match (the core asked for it
    /// again from the start), and, on a leader, for each a follower refused (its bytes are built
    /// again from the state).
    func noticeDamagedSnapshots() {
        if core.snapshotsReportedDamaged > damagedSnapshotsReported {
            damagedSnapshotsReported = core.snapshotsReportedDamaged
            logger.warning("a follower found the snapshot we sent damaged (its SHA-256 does not match); building it again",
                           metadata: ["reported_so_far": "\(damagedSnapshotsReported)"])
        }
        guard core.snapshotsRefusedByCheck > damagedSnapshotsLogged else { return }
        damagedSnapshotsLogged = core.snapshotsRefusedByCheck
        logger.warning("a snapshot from the leader arrived damaged (its SHA-256 does not match); asked for it again",
                       metadata: ["leader": "\(core.leader.rawValue)", "damaged_so_far": "\(damagedSnapshotsLogged)"])
    }

    /// Serialises the committed state for followers that need a snapshot, on a background thread
    /// from one LMDB read transaction — a consistent view that never blocks this thread's writes;
    /// the bytes come back as `.snapshotBuilt` and go to the core (`attachSnapshot`).
    func buildSnapshotBytes() throws {
        guard !snapshotBuilding, ProcessInfo.processInfo.systemUptime >= snapshotRetryAfter else { return }
        snapshotBuilding = true
        let store = self.store
        let inbox = self.inbox
        try readStateInBackground(name: "synod-snapshot") {
            inbox.putAlways(.snapshotBuilt(Result { try KVNodeStateMachine.buildSnapshot(store) }))
        }
    }

    /// Runs `body` — a long read of the committed state (snapshot, backup) — on its own thread at
    /// the lowest CPU priority (Linux `SCHED_IDLE`): on a small machine every node builds at the
    /// same index at once, and the reads must not starve the node loops (seen as 200-450 ms
    /// p99.9 stalls at 28k puts/s). Held applies are committed first, since readers see only
    /// committed state; and the map grows now if over half full, because a growth waits for every
    /// transaction to end — the reader's 1-2 s included (seen: 165-380 ms writes).
    func readStateInBackground(name: String, _ body: @escaping @Sendable () -> Void) throws {
        try commitHeldApplies()
        do { try store.environment.ensureHeadroom(usedFractionMax: 0.5) } catch let e as LMDBError { throw StoreError(e) }
        let thread = Thread {
            var param = sched_param(sched_priority: 0)
            _ = pthread_setschedparam(pthread_self(), NodeLoop.linuxSchedIdle, &param)
            body()
        }
        thread.name = name
        thread.start()
    }

    /// Linux's `SCHED_IDLE` policy (include/uapi/linux/sched.h; Glibc's macro is not imported).
    static let linuxSchedIdle: Int32 = 5

    /// A background build finished: its bytes describe the state at `index` exactly.
    func snapshotBuilt(_ result: Result<(index: LogIndex, data: [UInt8]), any Error>) throws {
        snapshotBuilding = false
        switch result {
        case let .failure(error):
            logger.error("building a snapshot for a follower failed; retrying in 1 s", metadata: ["error": "\(error)"])
            snapshotRetryAfter = ProcessInfo.processInfo.systemUptime + 1
        case let .success(built):
            // A compaction or an installed snapshot may have overtaken the build: then it is
            // rebuilt on the follower's next request.
            guard built.index <= core.appliedIndex, core.attachSnapshot(at: built.index, data: built.data) else { return }
            logger.notice("snapshot built for a follower", metadata: ["at": "\(built.index.rawValue)", "bytes": "\(built.data.count)"])
        }
    }

    /// A snapshot from the leader: replace the log and the state with it, in one transaction.
    func installSnapshot(_ s: Snapshot) throws {
        try applyDeferred()
        try commitHeldApplies()
        try sm.install(s.data, checkpoint: Checkpoint(position: s.position, stateDigest: [], membership: s.membership))
        try store.deleteSnapshots(below: s.position.index)
        lastSnapshotIndex = s.position.index
        logger.notice("installed snapshot", metadata: ["at": "\(s.position)"])
        catchUpWatchers()
    }

    // MARK: responses

    func respond(_ c: ClientConnection, _ r: ClientResponse) { outbox[c, default: []].append(r) }

    /// Sends everything this pass produced for clients and (after the write) for peers, in one
    /// event-loop hop.
    func flushOutbox() {
        for (c, responses) in outbox { c.send(responses, into: &outbound) }
        outbox.removeAll(keepingCapacity: true)
        outbound.flush()
    }

    func address(of node: NodeID) -> String {
        if node == configuration.id { return clientAddress }
        return peerClientAddresses[node] ?? ""
    }

    func notLeader(_ id: UInt64) -> ClientResponse {
        let leader = core.leader
        if leader.isNone || leader == configuration.id {
            return ClientResponse(id: id, status: .noLeader, message: "no leader is known yet; retry shortly")
        }
        return ClientResponse(id: id, status: .notLeader, leader: leader, leaderAddress: address(of: leader), message: "not the leader")
    }

    func refusal(_ error: any Error, _ id: UInt64) -> ClientResponse {
        switch error as? RaftError {
        case .notLeader?: return notLeader(id)
        case .busy?: return ClientResponse(id: id, status: .busy, message: "too many requests in flight; retry")
        case .tooLarge?: return ClientResponse(id: id, status: .badRequest, message: "request exceeds \(Limits.entryPayloadBytesMax) bytes")
        case .membershipChangeInProgress?: return ClientResponse(id: id, status: .busy, message: "another membership change is in progress; retry when it completes")
        case .invalidMembershipChange?: return ClientResponse(id: id, status: .badRequest, message: "that membership change does not apply to the current membership")
        case .leadershipTransferInProgress?: return ClientResponse(id: id, status: .busy, message: "leadership transfer in progress; retry")
        case nil: return ClientResponse(id: id, status: .internalError, message: "\(error)")
        }
    }

    func dropConnection(_ c: ClientConnection) {
        outbox[c] = nil
        readBatch.removeAll { $0.connection == c }
        dropWatches(of: c)
        // Pending writes stay: they will still apply; their responses are simply not delivered.
    }
}
