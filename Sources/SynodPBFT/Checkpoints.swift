import SynodCore

/// A checkpoint this replica took: the digest it multicast and the state behind it (kept to serve
/// state transfer while the checkpoint is the stable one).
struct OwnCheckpoint: Sendable {
    var digest: Digest
    /// The core's client table followed by the shell's state (see `checkpointState`).
    var state: [UInt8]
}

/// A state transfer under way: the certified checkpoint and whom to ask next.
struct StateFetch: Sendable {
    var sequence: SequenceNumber
    var digest: Digest
    var proof: [CheckpointMessage]
    var attempt: Int
    var ticksLeft: Int
}

// Checkpoints, stability, garbage collection and state transfer (paper §4.3, TOCS §6.2).
extension PBFTReplica {
    /// The shell took the checkpoint a `CommittedBatch` asked for: `state` is the encoded state
    /// machine right after executing `sequence`. The core adds its client table, multicasts a
    /// signed CHECKPOINT, and makes the checkpoint stable once 2f+1 replicas agree.
    public mutating func checkpointTaken(_ sequence: SequenceNumber, state: [UInt8]) {
        precondition(sequence.rawValue % config.checkpointInterval == 0, "checkpoint off the interval")
        precondition(sequence <= lastExecuted, "checkpoint of a sequence number not executed")
        guard sequence > lowWatermark, let table = clientTablesAt.removeValue(forKey: sequence) else { return }
        let full = Self.checkpointState(clientTable: table, state: state)
        let digest = crypto.digest(full)
        ownCheckpoints[sequence] = OwnCheckpoint(digest: digest, state: full)
        var m = CheckpointMessage(sequence: sequence, stateDigest: digest, replica: config.id)
        m.signature = crypto.sign(m.signedBytes)
        checkpointVotes[sequence, default: [:]][config.id] = m
        broadcast(.checkpoint(m))
        tryStabilize(sequence)
    }

    /// What a checkpoint digest covers: the client table (exactly-once state) and the shell's state.
    static func checkpointState(clientTable: [UInt8], state: [UInt8]) -> [UInt8] {
        var w = ByteWriter(capacity: clientTable.count + state.count + 8)
        w.lengthPrefixed(clientTable)
        w.raw(state)
        return w.bytes
    }

    static func splitCheckpointState(_ full: [UInt8]) -> (table: [UInt8], state: [UInt8])? {
        var r = ByteReader(full)
        guard let table = try? r.lengthPrefixed("client table", limit: PBFTLimits.stateBytesMax) else { return nil }
        return (table, r.rest())
    }

    mutating func onCheckpoint(_ m: CheckpointMessage) {
        guard config.replicas.contains(m.replica), m.sequence > lowWatermark,
              m.sequence.rawValue % config.checkpointInterval == 0,
              checkpointVotes[m.sequence]?[m.replica] == nil,
              verify(m.signature, of: m.signedBytes, by: .replica(m.replica)) else { return }
        // Bound what a replica can make us store: inside the window, anything; beyond it, only
        // its latest checkpoint (which is what tells a lagging replica to fetch state).
        if m.sequence > highWatermark {
            for (n, var votes) in checkpointVotes where n > highWatermark && votes[m.replica] != nil {
                if n > m.sequence { return }
                votes[m.replica] = nil
                checkpointVotes[n] = votes.isEmpty ? nil : votes
            }
        }
        checkpointVotes[m.sequence, default: [:]][m.replica] = m
        tryStabilize(m.sequence)
    }

    /// 2f+1 matching CHECKPOINT messages make `n` stable. If this replica has not executed that
    /// far, it fetches the certified state instead.
    mutating func tryStabilize(_ n: SequenceNumber) {
        guard n > lowWatermark, let votes = checkpointVotes[n] else { return }
        var byDigest: [Digest: [CheckpointMessage]] = [:]
        for m in votes.values { byDigest[m.stateDigest, default: []].append(m) }
        guard let (digest, proof) = byDigest.first(where: { $0.value.count >= config.certificateQuorum }) else { return }
        let sortedProof = proof.sorted { $0.replica < $1.replica }
        if let own = ownCheckpoints[n] {
            if own.digest != digest { fail("own checkpoint \(n) digest \(own.digest) differs from certified \(digest)") }
            makeStable(n, proof: sortedProof)
        } else if lastExecuted < n {
            beginStateFetch(n, digest: digest, proof: sortedProof)
        }
        // Else: executed but the shell has not reported the checkpoint yet; it will.
    }

    /// The checkpoint at `n` is stable: advance the watermarks and discard every message and
    /// certificate at or below `n`.
    mutating func makeStable(_ n: SequenceNumber, proof: [CheckpointMessage]) {
        precondition(n > lowWatermark, "stable checkpoints only move forward")
        precondition(proof.count >= config.certificateQuorum, "stable checkpoint without a 2f+1 proof")
        lowWatermark = n
        stableProof = proof
        slots = slots.filter { $0.key > n }
        checkpointVotes = checkpointVotes.filter { $0.key > n }
        ownCheckpoints = ownCheckpoints.filter { $0.key >= n }
        clientTablesAt = clientTablesAt.filter { $0.key > n }
        if let f = fetch, f.sequence <= n { fetch = nil }
        if lastAssigned < n { lastAssigned = n }
        // Garbage collection left nothing at or below the new low watermark.
        assert(slots.keys.allSatisfy { $0 > n }, "slot at or below h after GC")
        assert(checkpointVotes.keys.allSatisfy { $0 > n }, "checkpoint vote at or below h after GC")
        proposeBatches()
    }

    // MARK: State transfer

    mutating func beginStateFetch(_ n: SequenceNumber, digest: Digest, proof: [CheckpointMessage]) {
        if let f = fetch, f.sequence >= n { return }
        fetch = StateFetch(sequence: n, digest: digest, proof: proof, attempt: 0, ticksLeft: 0)
        tickStateFetch()
    }

    /// A fetch does not stop execution: batches this replica decided itself are as good as the
    /// certified state, which is then compared with its own checkpoint (`tryStabilize`). Before,
    /// a fetching replica executed nothing, and one whose certifiers had garbage-collected that
    /// checkpoint waited for the next stable one even while holding every commit it needed.
    var mayExecuteWhileFetching: Bool { fetch == nil || !config.bugs.contains(.noExecutionWhileFetching) }

    /// Executing reached the checkpoint being fetched: the fetch is moot. (A transfer arriving
    /// later finds no fetch and is dropped.) The own checkpoint the shell reports at that number
    /// makes it stable, once checked against the certified digest (`tryStabilize`).
    mutating func endFetchIfCaughtUp() {
        if let f = fetch, lastExecuted >= f.sequence { fetch = nil }
    }

    /// Asks one certifying replica at a time, moving on after `stateFetchRetryTicks`.
    mutating func tickStateFetch() {
        guard var f = fetch else { return }
        f.ticksLeft -= 1
        if f.ticksLeft <= 0 {
            let sources = f.proof.map(\.replica).filter { $0 != config.id }
            if !sources.isEmpty {
                send(.fetchState(FetchState(sequence: f.sequence, replica: config.id)), to: sources[f.attempt % sources.count])
            }
            f.attempt += 1
            f.ticksLeft = config.stateFetchRetryTicks
        }
        fetch = f
    }

    mutating func onFetchState(_ m: FetchState) {
        // Any checkpoint we computed, stable here or not: the asker holds a 2f+1 proof for it
        // (perhaps with a vote we never got, a faulty replica's MAC to us being bad) and checks
        // the state against that digest. Serving only our stable one left it fetching forever.
        guard let own = ownCheckpoints[m.sequence], m.sequence >= lowWatermark,
              !config.bugs.contains(.serveOnlyStableCheckpoint) || m.sequence == lowWatermark else { return }
        send(.stateTransfer(StateTransfer(sequence: m.sequence, state: own.state, replica: config.id)), to: m.replica)
    }

    /// Installs fetched state only if its digest is the 2f+1-certified one.
    mutating func onStateTransfer(_ m: StateTransfer) {
        guard let f = fetch, m.sequence == f.sequence, m.state.count <= PBFTLimits.stateBytesMax,
              crypto.digest(m.state) == f.digest,
              let (table, state) = Self.splitCheckpointState(m.state),
              let clients = Self.decodeClientTable(table) else { return }
        fetch = nil
        stateTransfers += 1
        installOut = StateToInstall(sequence: f.sequence, stateDigest: f.digest, state: state)
        // Batches handed out but not yet executed by the shell come before the install in Ready
        // order; drop them, the state supersedes them.
        executedOut.removeAll()
        lastExecuted = f.sequence
        lastTimestamp = clients
        pending.removeAll { $0.request.timestamp <= lastTimestamp[$0.request.client] ?? 0 }
        ownCheckpoints[f.sequence] = OwnCheckpoint(digest: f.digest, state: m.state)
        makeStable(f.sequence, proof: f.proof)
        executeCommitted()
    }
}
