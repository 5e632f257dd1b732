import SynodCore

/// The log state of one sequence number.
struct Slot: Sendable {
    /// The pre-prepare accepted in the current view (at most one per view and sequence number).
    var prePrepare: PrePrepare?
    /// Prepares of the current view, first one per replica.
    var prepares: [NodeID: Prepare] = [:]
    /// Commits of the current view, first one per replica.
    var commits: [NodeID: Commit] = [:]
    var sentCommit = false
    var committedLocal = false
    /// The prepared certificate of the highest view this replica prepared in; survives view changes.
    var certificate: PreparedCertificate?
    /// The digest this replica executed here, if it has; survives view changes.
    var executedDigest: Digest?

    /// Forget everything of the old view except the prepared certificate.
    mutating func enter(_ view: View) {
        prePrepare = nil
        prepares = [:]
        commits = [:]
        sentCommit = false
        committedLocal = false
    }
}

/// A request waiting to be executed.
struct PendingRequest: Sendable {
    var request: Request
    var digest: Digest
}

// Pre-prepare, prepare, commit and in-order execution (paper §4.2).
extension PBFTReplica {
    /// True if `r` carries its client's valid signature (remembered: the check when the request
    /// is stepped or ordered is then free). For a shell that must trust a request before routing.
    public mutating func authenticates(_ r: Request) -> Bool {
        verify(r.signature, of: r.signedBytes, by: .client(r.client))
    }

    mutating func handleRequest(_ r: Request, fromClient: Bool) {
        guard r.operation.count <= PBFTLimits.operationBytesMax,
              verify(r.signature, of: r.signedBytes, by: .client(r.client)) else { return }
        if let last = lastTimestamp[r.client], r.timestamp <= last {
            if r.timestamp == last && !r.readOnly { resendOut.append(r) }
            return
        }
        if r.readOnly {
            // The read-only optimization: answer from the current state at once.
            guard fromClient else { return }
            if canAnswerReads { readOnlyOut.append(r) } else if deferredReads.count < config.deferredReadsMax { deferredReads.append(r) }
            return
        }
        let d = crypto.requestDigest(r)
        if !pending.contains(where: { $0.digest == d }) {
            guard pending.count < config.pendingRequestsMax else { return }
            pending.append(PendingRequest(request: r, digest: d))
            // A backup relays a client's request to the primary, then watches it (paper §4.4).
            if fromClient && primary != config.id && isViewActive { send(.request(r), to: primary) }
        }
        armTimerIfNeeded()
        proposeBatches()
    }

    /// Primary: cut batches of waiting requests, bounded by count and bytes, while fewer than
    /// `inflightBatchesMax` are in flight and the window has room.
    mutating func proposeBatches() {
        guard isPrimary, fetch == nil else { return }
        while lastAssigned.rawValue - min(lastAssigned.rawValue, lastExecuted.rawValue) < UInt64(config.inflightBatchesMax),
              lastAssigned < highWatermark {
            var batch: [Request] = []
            var bytes = 0
            for p in pending where !ordered.contains(p.digest) {
                if batch.count == config.batchRequestsMax { break }
                if !batch.isEmpty && bytes + p.request.sizeBytes > config.batchBytesMax { break }
                batch.append(p.request)
                bytes += p.request.sizeBytes
                ordered.insert(p.digest)
            }
            if batch.isEmpty { return }
            lastAssigned = lastAssigned.next
            var pp = PrePrepare(view: view, sequence: lastAssigned, digest: crypto.batchDigest(batch), requests: batch, primary: config.id)
            pp.signature = crypto.sign(pp.signedBytes)
            slots[lastAssigned, default: Slot()].prePrepare = pp
            broadcast(.prePrepare(pp))
            checkPrepared(lastAssigned)
        }
    }

    /// A backup accepts a pre-prepare if it is signed by the primary of the current view, lies in
    /// the window, names its batch's digest, carries only client-signed requests, and no other
    /// pre-prepare was accepted for this view and sequence number.
    mutating func onPrePrepare(_ pp: PrePrepare) {
        guard pp.primary == primary, pp.primary != config.id,
              pp.sequence > lowWatermark, pp.sequence <= highWatermark,
              pp.requests.count <= config.batchRequestsMax else { return }
        if let have = slots[pp.sequence]?.prePrepare {
            if have.digest != pp.digest { return } // equivocation: keep the first
            return
        }
        guard verify(pp.signature, of: pp.signedBytes, by: .replica(pp.primary)), validBatch(pp) else { return }
        acceptPrePrepare(pp)
    }

    /// The batch's digest matches and every request is client-signed (skipped under the injected
    /// `skipPrepareDigestCheck` bug).
    mutating func validBatch(_ pp: PrePrepare) -> Bool {
        if config.bugs.contains(.skipPrepareDigestCheck) { return true }
        guard crypto.batchDigest(pp.requests) == pp.digest else { return false }
        for r in pp.requests where r.readOnly || r.operation.count > PBFTLimits.operationBytesMax
            || !verify(r.signature, of: r.signedBytes, by: .client(r.client)) { return false }
        return true
    }

    /// Records the pre-prepare and multicasts this backup's signed PREPARE.
    mutating func acceptPrePrepare(_ pp: PrePrepare) {
        precondition(pp.view == view, "pre-prepare of another view")
        slots[pp.sequence, default: Slot()].prePrepare = pp
        for r in pp.requests {
            let d = crypto.requestDigest(r)
            ordered.insert(d)
            // A backup watches ordered requests too: if this batch never executes, the timer fires.
            if pp.sequence > lastExecuted, r.timestamp > lastTimestamp[r.client] ?? 0,
               pending.count < config.pendingRequestsMax, !pending.contains(where: { $0.digest == d }) {
                pending.append(PendingRequest(request: r, digest: d))
            }
        }
        armTimerIfNeeded()
        if pp.primary != config.id {
            var p = Prepare(view: view, sequence: pp.sequence, digest: pp.digest, replica: config.id)
            p.signature = crypto.sign(p.signedBytes)
            slots[pp.sequence]!.prepares[config.id] = p
            broadcast(.prepare(p))
        }
        checkPrepared(pp.sequence)
    }

    mutating func onPrepare(_ p: Prepare) {
        guard config.replicas.contains(p.replica), p.replica != config.id, p.replica != primary,
              p.sequence > lowWatermark, p.sequence <= highWatermark,
              slots[p.sequence]?.prepares[p.replica] == nil,
              verify(p.signature, of: p.signedBytes, by: .replica(p.replica)) else { return }
        slots[p.sequence, default: Slot()].prepares[p.replica] = p
        checkPrepared(p.sequence)
    }

    mutating func onCommit(_ c: Commit) {
        guard config.replicas.contains(c.replica), c.sequence > lowWatermark, c.sequence <= highWatermark,
              slots[c.sequence]?.commits[c.replica] == nil else { return }
        slots[c.sequence, default: Slot()].commits[c.replica] = c
        checkCommitted(c.sequence)
    }

    /// prepared(m, v, n, i): the pre-prepare plus 2f matching prepares from distinct backups.
    /// Once prepared, keep the certificate and multicast COMMIT.
    ///
    /// A replica that already executed this digest here (in an earlier view, before a view change
    /// re-issued it) commits at once: the value is decided, and the replicas that have not yet
    /// executed it need 2f+1 commits in the new view, which the replicas past it would otherwise
    /// never send if one of their prepares was lost (nobody retransmits below a peer's progress).
    mutating func checkPrepared(_ n: SequenceNumber) {
        guard var slot = slots[n], let pp = slot.prePrepare, !slot.sentCommit else { return }
        let skipDigest = config.bugs.contains(.skipPrepareDigestCheck)
        let matching = slot.prepares.values
            .filter { $0.view == pp.view && (skipDigest || $0.digest == pp.digest) && $0.replica != pp.primary }
            .sorted { $0.replica < $1.replica }
        if matching.count >= config.quorum - 1 {
            slot.certificate = PreparedCertificate(prePrepare: pp, prepares: Array(matching.prefix(config.quorum - 1)))
        } else if slot.executedDigest != pp.digest {
            return
        }
        slot.sentCommit = true
        let c = Commit(view: view, sequence: n, digest: pp.digest, replica: config.id)
        slot.commits[config.id] = c
        slots[n] = slot
        broadcast(.commit(c))
        checkCommitted(n)
    }

    /// committed-local(m, v, n, i): prepared plus 2f+1 matching commits (its own included).
    mutating func checkCommitted(_ n: SequenceNumber) {
        guard let slot = slots[n], let pp = slot.prePrepare, slot.sentCommit, !slot.committedLocal else { return }
        let matching = slot.commits.values.filter { $0.view == pp.view && $0.digest == pp.digest }.count
        guard matching >= config.quorum else { return }
        assert(slot.commits[config.id] != nil, "committed-local without our own commit")
        slots[n]!.committedLocal = true
        executeCommitted()
    }

    /// Hands every committed batch after `lastExecuted` to the shell, strictly in order — also
    /// while a state fetch is under way (`endFetchIfCaughtUp`).
    mutating func executeCommitted() {
        var progressed = false
        while mayExecuteWhileFetching, let slot = slots[lastExecuted.next], slot.committedLocal, let pp = slot.prePrepare {
            executeNext(pp)
            progressed = true
        }
        endFetchIfCaughtUp()
        // Changing views (a state transfer may just have ended): follow what the others decide.
        if !isViewActive { executeObserved() }
        serveDeferredReads()
        if progressed {
            if lastAssigned < lastExecuted { lastAssigned = lastExecuted }
            restartTimerAfterExecution()
            proposeBatches()
        }
    }

    /// Executes `pp`, the batch decided at `lastExecuted + 1`.
    mutating func executeNext(_ pp: PrePrepare) {
        let n = lastExecuted.next
        precondition(pp.sequence == n, "executing out of order")
        precondition(n > lowWatermark, "executing below the low watermark")
        precondition(n <= highWatermark, "executing above the high watermark")
        lastExecuted = n
        slots[n, default: Slot()].executedDigest = pp.digest
        for r in pp.requests where r.timestamp > lastTimestamp[r.client] ?? 0 { lastTimestamp[r.client] = r.timestamp }
        let digests = Set(pp.requests.map { crypto.requestDigest($0) })
        ordered.subtract(digests)
        pending.removeAll { digests.contains($0.digest) || $0.request.timestamp <= lastTimestamp[$0.request.client] ?? 0 }
        let checkpoint = n.rawValue % config.checkpointInterval == 0
        if checkpoint { clientTablesAt[n] = encodeClientTable() }
        executedOut.append(CommittedBatch(sequence: n, view: pp.view, digest: pp.digest, requests: pp.requests, checkpointAfter: checkpoint))
    }

    /// The exactly-once table, sorted by client so its encoding is deterministic.
    func encodeClientTable() -> [UInt8] {
        var w = ByteWriter()
        let rows = lastTimestamp.sorted { $0.key < $1.key }
        w.u32(UInt32(rows.count))
        for (c, t) in rows { w.u64(c.rawValue); w.u64(t) }
        return w.bytes
    }

    static func decodeClientTable(_ bytes: [UInt8]) -> [ClientID: UInt64]? {
        var r = ByteReader(bytes)
        guard let count = try? r.u32("clients"), Int(count) * 16 <= r.remaining else { return nil }
        var table: [ClientID: UInt64] = [:]
        for _ in 0..<count {
            guard let c = try? r.u64("client"), let t = try? r.u64("timestamp") else { return nil }
            table[ClientID(c)] = t
        }
        return r.isAtEnd ? table : nil
    }
}
