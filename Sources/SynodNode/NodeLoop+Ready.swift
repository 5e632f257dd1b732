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
            let committed = rd.committedEntries
            var results: [AppliedEntry] = []
            if !write.isEmpty || !committed.isEmpty {
                results = try store.write(write, binding: sm.combined) { isRetry in
                    if isRetry { try sm.kv.reload() }
                    return committed.isEmpty ? [] : try sm.apply(committed)
                }
            }
            if !leading { transport.send(rd.messages) }
            if !committed.isEmpty { finishApply(committed, results) }
            for rs in rd.readStates {
                if let batch = readBatches.removeValue(forKey: rs.context) { readyReads.append((rs.index, batch)) }
            }
            core.advance(rd)
            serveReadyReads()
        }
        noticeLeadershipChange()
        try maybeSnapshot()
    }

    /// Answers the writes, watches and lease tracking that applied entries complete.
    func finishApply(_ entries: [Entry], _ results: [AppliedEntry]) {
        var byIndex: [UInt64: [UInt8]] = [:]
        var events: [WatchEvent] = []
        for r in results {
            if let response = r.response {
                byIndex[r.index.rawValue] = response.encode()
                trackLeases(response)
            }
            events += r.events
        }
        if !events.isEmpty {
            noticeMemberEvents(events)
            deliver(events)
        }
        guard !pendingWrites.isEmpty else { return }
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

    func serveReadyReads() {
        guard !readyReads.isEmpty else { return }
        let applied = sm.appliedIndex
        var keep: [(index: LogIndex, reads: [PendingRead])] = []
        for (index, reads) in readyReads {
            if index <= applied {
                for r in reads { respond(r.connection, answer(r.query, r.requestID)) }
            } else {
                keep.append((index, reads))
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
        for (_, b) in readBatches { all += b }
        for (_, b) in readyReads { all += b }
        readBatch = []
        readBatches = [:]
        readyReads = []
        for r in all { respond(r.connection, ClientResponse(id: r.requestID, status: status, leader: core.leader, leaderAddress: address(of: core.leader), message: message)) }
    }

    // MARK: snapshots

    /// Every `snapshotEveryEntries` applied entries: save a snapshot, then compact the log (core
    /// and disk) up to the previous one, which keeps one interval of entries as retention.
    func maybeSnapshot() throws {
        let applied = sm.appliedIndex
        guard applied.rawValue >= lastSnapshotIndex.rawValue + UInt64(configuration.snapshotEveryEntries),
              applied <= core.persistedLastIndex, let term = core.term(at: applied) else { return }
        let data = try sm.snapshot()
        let checkpoint = Checkpoint(position: LogPosition(index: applied, term: term), stateDigest: [], membership: core.membership)
        try store.saveSnapshot(checkpoint, data: data)
        if let previous = previousSnapshot, previous.index > core.compactedPosition.index {
            core.compact(upTo: previous.index, snapshotData: previous.data)
            try store.deletePrefix(through: previous.index)
            try store.deleteSnapshots(below: previous.index)
            logger.debug("compacted log", metadata: ["through": "\(previous.index.rawValue)"])
        }
        previousSnapshot = (applied, data)
        lastSnapshotIndex = applied
    }

    /// A snapshot from the leader: make it durable, reset the log to it, replace the state.
    func installSnapshot(_ s: Snapshot) throws {
        try store.saveSnapshot(Checkpoint(position: s.position, stateDigest: [], membership: s.membership), data: s.data)
        try store.reset(to: s.position)
        try sm.install(s.data, at: s.position.index)
        try store.deleteSnapshots(below: s.position.index)
        previousSnapshot = (s.position.index, s.data)
        lastSnapshotIndex = s.position.index
        logger.notice("installed snapshot", metadata: ["at": "\(s.position)"])
        catchUpWatchers()
    }

    // MARK: responses

    func respond(_ c: ClientConnection, _ r: ClientResponse) { outbox[c, default: []].append(r) }

    func flushOutbox() {
        guard !outbox.isEmpty else { return }
        ClientConnection.send(batches: outbox.map { ($0.key, $0.value) })
        outbox.removeAll(keepingCapacity: true)
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
