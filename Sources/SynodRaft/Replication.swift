import SynodCore

// Leader side of log replication (Raft §5.3), flow control (probe / replicate / snapshot),
// and commitment (Raft §5.4.2).
extension RaftCore {
    mutating func stepLeader(_ m: Message) {
        guard progress[m.from] != nil else { return }
        progress[m.from]!.recentActive = true
        switch m.type {
        case .appendResponse: handleAppendResponse(m)
        case .heartbeatResponse: handleHeartbeatResponse(m)
        case .snapshotResponse: handleSnapshotResponse(m)
        case .readIndex: handleReadIndexRequest(m)
        default: break
        }
    }

    mutating func broadcastAppend(sendIfEmpty: Bool) {
        for p in peers { _ = sendAppend(to: p, sendIfEmpty: sendIfEmpty) }
    }

    /// Sends the next batch to `peer` if its flow control allows. Returns whether it sent.
    @discardableResult
    mutating func sendAppend(to peer: NodeID, sendIfEmpty: Bool) -> Bool {
        guard var pr = progress[peer], !pr.isPaused else { return false }
        let prevIndex = pr.next.previous
        guard let prevTerm = log.term(at: prevIndex) else {
            startSnapshot(to: peer)
            return true
        }
        let batch = log.entries(from: pr.next, countMax: config.entriesPerMessageMax, bytesMax: config.bytesPerMessageMax)
        if batch.isEmpty && !sendIfEmpty { return false }
        var m = message(.append, to: peer)
        m.index = prevIndex
        m.logTerm = prevTerm
        m.entries = batch
        m.commit = log.committed
        send(m)
        if let last = batch.last, pr.state == .replicate {
            // Pipelining: assume success and keep streaming until the window is full.
            pr.next = last.index.next
            pr.inflights.add(last.index)
        } else if pr.state == .probe {
            pr.probeSent = true
        }
        progress[peer] = pr
        return true
    }

    mutating func handleAppendResponse(_ m: Message) {
        var pr = progress[m.from]!
        if m.reject {
            let hintNext: LogIndex
            if m.conflictTerm != .zero, let l = log.lastIndex(ofTerm: m.conflictTerm, atOrBefore: m.index) {
                hintNext = l.next
            } else {
                hintNext = m.rejectHint
            }
            guard pr.maybeDecrease(rejected: m.index, hintNext: hintNext, followerHint: m.rejectHint) else { return }
            if pr.state == .replicate { pr.probeFromHere() }
            progress[m.from] = pr
            sendAppend(to: m.from, sendIfEmpty: true)
            return
        }
        guard pr.maybeUpdate(m.index) else { return }
        switch pr.state {
        case .probe: pr.becomeReplicate()
        case .snapshot: if pr.match >= pr.pendingSnapshot { pr.becomeReplicate() }
        case .replicate: pr.inflights.free(upTo: m.index)
        }
        progress[m.from] = pr
        if maybeCommit() { broadcastAppend(sendIfEmpty: true) }
        while sendAppend(to: m.from, sendIfEmpty: false) {}
        if m.from == leadTransferee && pr.match == log.lastIndex { sendTimeoutNow(to: m.from) }
    }

    mutating func handleHeartbeatResponse(_ m: Message) {
        var pr = progress[m.from]!
        pr.probeSent = false
        pr.ackedSentTick = max(pr.ackedSentTick, m.sentTick)
        // A lost append must not stall a full window forever.
        if pr.state == .replicate && pr.inflights.isFull { pr.inflights.free(upTo: pr.inflights.lastIndexes[0]) }
        progress[m.from] = pr
        if pr.state == .snapshot {
            // Resend the chunk in flight only if nothing moved since the previous answer.
            let stalled = pr.snapshotOffset == pr.snapshotOffsetAtHeartbeat
            progress[m.from]!.snapshotOffsetAtHeartbeat = pr.snapshotOffset
            if stalled { sendSnapshotChunk(to: m.from) }
        } else if pr.match < log.lastIndex {
            sendAppend(to: m.from, sendIfEmpty: true)
        }
        if m.context != 0 { acknowledgeRead(from: m.from, context: m.context) }
    }

    func heartbeat(to peer: NodeID, context: UInt64) -> Message {
        var m = message(.heartbeat, to: peer)
        // Never tell a follower to commit beyond what it is known to hold.
        m.commit = min(progress[peer]?.match ?? .zero, log.committed)
        m.context = context
        m.sentTick = tickCount + 1
        return m
    }

    mutating func broadcastHeartbeat(context: UInt64) {
        for p in peers { send(heartbeat(to: p, context: context)) }
    }

    /// Advances the commit index to what a quorum holds, but only through an entry of the
    /// current term (Raft §5.4.2, Figure 8): older entries are committed indirectly.
    mutating func maybeCommit() -> Bool {
        let index = Quorum.committedIndex(membership: membership) { progress[$0]?.match ?? .zero }
        guard index > log.committed, index <= log.lastIndex else { return false }
        precondition(role == .leader, "only a leader counts replicas")
        if !config.bugs.contains(.commitPreviousTermByCounting) {
            guard log.term(at: index) == term else { return false }
        }
        log.commit(to: index)
        if log.term(at: index) == term && !readsAwaitingCommit.isEmpty {
            let waiting = readsAwaitingCommit
            readsAwaitingCommit.removeAll()
            startReads(waiting)
        }
        return true
    }

    // MARK: Snapshots to followers

    mutating func startSnapshot(to peer: NodeID) {
        guard let snap = snapshot else {
            preconditionFailure("log compacted at \(log.compacted) but no snapshot")
        }
        progress[peer]!.becomeSnapshot(snap.position.index)
        sendSnapshotChunk(to: peer)
    }

    mutating func sendSnapshotChunk(to peer: NodeID) {
        guard let snap = snapshot, var pr = progress[peer], pr.state == .snapshot else { return }
        if pr.snapshotRefused && pr.pendingSnapshot == snap.position.index { return }
        guard !snap.data.isEmpty else {
            // Bytes are built on demand (`attachSnapshot`); heartbeats retry until they exist.
            snapshotDataWanted = true
            return
        }
        if pr.pendingSnapshot != snap.position.index {
            pr.becomeSnapshot(snap.position.index) // a newer snapshot replaced the one being sent
        }
        let start = min(pr.snapshotOffset, snap.data.count)
        let end = min(start + config.snapshotChunkBytesMax, snap.data.count)
        var m = message(.snapshot, to: peer)
        m.snapshot = SnapshotChunkMessage(position: snap.position, membership: snap.membership,
                                          offset: start, data: Array(snap.data[start..<end]), isLast: end == snap.data.count)
        progress[peer] = pr
        send(m)
    }

    /// One chunk is in flight at `snapshotOffset`. A report past it acknowledges it: send the
    /// next. A report of a gap (`reject`: the follower lacks bytes before our chunk, or has no
    /// transfer at all) moves back to what it holds. Any other report repeats what is known —
    /// the answer to a duplicate — and sends nothing, so resends never multiply the chunks in
    /// flight; a lost chunk is resent on the next heartbeat answer.
    mutating func handleSnapshotResponse(_ m: Message) {
        guard let pr = progress[m.from], pr.state == .snapshot, m.index == pr.pendingSnapshot else { return }
        if m.reject && m.context == Self.snapshotRefusedContext {
            progress[m.from]!.snapshotRefused = true
            return
        }
        if m.reject && m.context == Self.snapshotDamagedContext {
            // The follower gathered every byte and its check refused them. What it checks is what
            // we hold (damage on the way is caught by TCP's and TLS's own checks first), so
            // sending the same bytes again could go on forever: drop them — they are built
            // again from the state (`snapshotDataWanted`) — and start over with the new ones,
            // paced by heartbeat answers (`sendSnapshotChunk` waits while there are no bytes).
            progress[m.from]!.snapshotOffset = 0
            snapshotsReportedDamaged += 1
            if var s = snapshot, s.position.index == m.index, !s.data.isEmpty {
                s.data = []
                snapshot = s
            }
            return
        }
        let received = Int(clamping: m.context)
        guard m.reject || received > pr.snapshotOffset else { return }
        progress[m.from]!.snapshotOffset = received
        sendSnapshotChunk(to: m.from)
    }
}
