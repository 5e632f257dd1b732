import SynodCore
import SynodPBFT
import SynodStateMachine

// The shell of each simulated replica (carrying out PBFTReady in its documented order), crashes,
// partitions and the checks.
extension BFTSimulation {
    func processReady(_ i: Int) {
        guard var core = nodes[i].core else { return }
        let rd = core.ready()
        if rd.isEmpty { return }
        let correct = nodes[i].isCorrect
        // 1. Install fetched state.
        if let s = rd.stateToInstall {
            guard let (kv, mesh) = try? decodeState(s.state) else {
                fail("\(core.id) installed certified state that does not decode")
                return
            }
            nodes[i].kv = kv
            nodes[i].mesh = mesh
            record("\(core.id) state transfer to \(s.sequence) \(s.stateDigest)")
            if correct { certify(s.sequence, s.stateDigest, by: core.id, what: "installed") }
        }
        // 2. Persisting is keeping `durable` (below); 3. send.
        for m in rd.messages {
            if let b = nodes[i].byzantine { byzantineSend(i, m, b) } else { send(m) }
        }
        // 4. Execute, reply, and take checkpoints where asked.
        var snapshots: [(SequenceNumber, [UInt8])] = []
        for batch in rd.committed {
            if correct { checkExecution(batch, by: core.id) }
            for r in batch.requests {
                if let mesh = nodes[i].mesh, MeshReplica.isEnvelope(r.operation) {
                    replyTo(r, bytes: executeMesh(r, view: batch.view, mesh, at: i), from: core, at: i, readOnly: false)
                    continue
                }
                let result = execute(r, view: batch.view, at: i)
                replyTo(r, result: result, from: core, at: i, readOnly: false)
            }
            if batch.checkpointAfter { snapshots.append((batch.sequence, stateBytes(i))) }
        }
        // 5. Read-only requests, from the state after step 4.
        for r in rd.readOnly {
            guard let cmd = try? KVCommand.decode(r.operation), case let .get(k) = cmd.op, Int(k) < options.keys else { continue }
            replyTo(r, result: .value(nodes[i].kv.get(k)), from: core, at: i, readOnly: true)
        }
        // 6. Cached replies for retransmitted requests.
        for r in rd.replyResends {
            if let mesh = nodes[i].mesh, MeshReplica.isEnvelope(r.operation) {
                if let cached = try? mesh.sm.cachedResponse(client: r.client.rawValue, sequence: r.timestamp) {
                    replyTo(r, bytes: cached, from: core, at: i, readOnly: false)
                }
                continue
            }
            if case let .duplicate(result) = nodes[i].kv.sessions.check(client: r.client.rawValue, seq: r.timestamp) {
                replyTo(r, result: result, from: core, at: i, readOnly: false)
            }
        }
        core.advance(rd)
        for (n, state) in snapshots {
            core.checkpointTaken(n, state: state)
            if correct, let d = core.checkpointDigest(at: n) { certify(n, d, by: core.id, what: "computed") }
        }
        nodes[i].core = core
        nodes[i].durable = core
        nodes[i].durableKV = nodes[i].kv
    }

    /// Applies one ordered request; the request's client and timestamp are the session key
    /// (exactly-once: a second request under one timestamp returns the cached result).
    func execute(_ r: Request, view: View, at i: Int) -> KVResult {
        var op = KVOp.get(key: 0)
        if let cmd = try? KVCommand.decode(r.operation), Int(cmd.op.key) < options.keys { op = cmd.op }
        let cmd = KVCommand(client: r.client.rawValue, seq: r.timestamp, op: op)
        if nodes[i].isCorrect, r.client.rawValue > UInt64(options.clients),
           case .new = nodes[i].kv.sessions.check(client: cmd.client, seq: cmd.seq) {
            // Exactly-once under a Byzantine client: whatever it signed under one timestamp, every
            // correct replica executes the same one request for it (or none).
            if let known = byzantineExecuted[r.timestamp], known != op {
                fail("exactly-once: \(nodes[i].id) executed \(op) for \(r.client) t=\(r.timestamp), another correct replica \(known)")
            }
            byzantineExecuted[r.timestamp] = op
        }
        let entry = Entry(index: nodes[i].kv.appliedIndex.next, term: Term(view.rawValue), payload: cmd.encode())
        return nodes[i].kv.apply(entry)?.1 ?? .staleSession
    }

    /// Applies one ordered mesh-client request to the replica's real state machine (its own
    /// entry numbering: one index per mesh request, the same on every correct replica) and
    /// checks the mesh invariants after it; the reply is the encoded response.
    func executeMesh(_ r: Request, view: View, _ mesh: MeshReplica, at i: Int) -> [UInt8] {
        let index = ((try? mesh.store.appliedIndex()) ?? .zero).next
        do {
            let outcomes = try mesh.apply([Entry(index: index, term: Term(view.rawValue), kind: .command, payload: r.operation)])
            for o in outcomes where nodes[i].isCorrect && !o.violations.isEmpty {
                fail("mesh invariant on \(nodes[i].id) after \(r.client) t=\(r.timestamp): \(o.violations)")
            }
            return outcomes.first?.response.encode() ?? []
        } catch {
            fail("\(nodes[i].id) mesh apply failed: \(error)")
            return []
        }
    }

    /// The replica's state as checkpointed and transferred: the tiny KV machine, then (with mesh
    /// clients) the real state machine's applied index and store.
    func stateBytes(_ i: Int) -> [UInt8] {
        var w = ByteWriter()
        w.lengthPrefixed(nodes[i].kv.encode())
        if let mesh = nodes[i].mesh {
            w.u64(((try? mesh.store.appliedIndex()) ?? .zero).rawValue)
            w.raw(try! mesh.snapshotBytes())
        }
        return w.bytes
    }

    /// Reads `stateBytes` back.
    func decodeState(_ bytes: [UInt8]) throws -> (KVStateMachine, MeshReplica?) {
        var r = ByteReader(bytes)
        let kv = try KVStateMachine.decode(try r.lengthPrefixed("kv state", limit: 1 << 24))
        guard options.meshClients > 0 else {
            try r.expectEnd()
            return (kv, nil)
        }
        let applied = LogIndex(try r.u64("mesh applied index"))
        return (kv, try MeshReplica(snapshot: r.rest(), at: applied, bugs: []))
    }

    func replyTo(_ r: Request, result: KVResult, from core: PBFTReplica, at i: Int, readOnly: Bool) {
        replyTo(r, bytes: BFTResultCodec.encode(result), from: core, at: i, readOnly: readOnly)
    }

    func replyTo(_ r: Request, bytes result: [UInt8], from core: PBFTReplica, at i: Int, readOnly: Bool) {
        var bytes = result
        if nodes[i].byzantine != nil && random.chance(1, in: 2) { bytes = BFTResultCodec.encode(.value(UInt64(random.int(in: 1...999)))) }
        send(core.reply(to: r, result: bytes, readOnly: readOnly))
    }

    // MARK: Checks

    /// No two correct replicas execute different requests at one sequence number. The digest is
    /// recomputed from the requests actually executed, not taken from the replica's word.
    func checkExecution(_ b: CommittedBatch, by id: NodeID) {
        let d = crypto[.replica(id)]!.batchDigest(b.requests)
        if let known = executed[b.sequence] {
            if known != d { fail("agreement: \(id) executed \(d) at \(b.sequence), another correct replica \(known)") }
        } else {
            executed[b.sequence] = d
        }
        if b.sequence > highestExecuted { highestExecuted = b.sequence }
    }

    /// Correct replicas' state digests agree at every checkpoint.
    func certify(_ n: SequenceNumber, _ d: Digest, by id: NodeID, what: String) {
        if let known = checkpointDigests[n] {
            if known != d { fail("checkpoint agreement: \(id) \(what) state \(d) at \(n), another correct replica \(known)") }
        } else {
            checkpointDigests[n] = d
        }
    }

    func checkAfterStep() {
        for i in nodes.indices where nodes[i].isCorrect {
            guard let core = nodes[i].core else { continue }
            if let v = core.invariantViolation { fail(v) }
            if core.view != nodes[i].lastView || core.isViewActive != nodes[i].lastActive {
                record("\(core.id) \(core.isViewActive ? "enters" : "changing to") \(core.view) h=\(core.lowWatermark.rawValue) exec=\(core.lastExecuted.rawValue)")
                nodes[i].lastView = core.view
                nodes[i].lastActive = core.isViewActive
            }
        }
    }

    // MARK: Crashes and partitions

    func maybeCrash() {
        guard random.chance(faults.crashPerMille, in: 1000) else { return }
        let up = nodes.indices.filter { nodes[$0].isUp && nodes[$0].isCorrect }
        guard nodes.filter({ !$0.isUp }).isEmpty, !up.isEmpty else { return }
        let k = up[random.int(in: 0...(up.count - 1))]
        record("\(nodes[k].id) crash (unsent: \(nodes[k].core!.ready().messages.count) messages)")
        nodes[k].core = nil
        nodes[k].kv = nodes[k].durableKV
        nodes[k].restartAt = now + random.int(in: 5...40)
        network.dropAll(to: nodes[k].id)
    }

    func maybeRestart() {
        for k in nodes.indices where !nodes[k].isUp && nodes[k].restartAt <= now && random.chance(faults.restartPerMille, in: 1000) {
            restart(k)
        }
    }

    func restart(_ k: Int) {
        nodes[k].core = nodes[k].durable
        nodes[k].kv = nodes[k].durableKV
        record("\(nodes[k].id) restart view=\(nodes[k].durable.view.rawValue) exec=\(nodes[k].durable.lastExecuted.rawValue)")
    }

    /// Cuts one correct backup (not the primary of the newest active view) off from its peers,
    /// or heals it when its time is up; see `BFTSimulationOptions.loneIsolationPerMille`.
    func maybeIsolateLoneBackup() {
        if let lone = loneIsolation {
            guard now >= lone.until else { return }
            loneIsolation = nil
            network.heal()
            record("heal n\(lone.node + 1) (lone)")
            return
        }
        guard options.loneIsolationPerMille > 0, !network.isPartitioned,
              random.chance(options.loneIsolationPerMille, in: 1000) else { return }
        let primary = nodes.compactMap(\.core).filter(\.isViewActive).max { $0.view < $1.view }?.primary
        let backups = nodes.indices.filter { nodes[$0].isUp && nodes[$0].isCorrect && nodes[$0].id != primary }
        guard !backups.isEmpty else { return }
        let k = backups[random.int(in: 0...(backups.count - 1))]
        loneIsolation = (k, now + random.int(in: options.loneIsolationTicksRange))
        network.split(sideA: [k])
        record("isolate n\(k + 1) from its peers until \(loneIsolation!.until)")
    }

    func maybePartition() {
        if loneIsolation != nil { return }
        if network.isPartitioned && random.chance(faults.healPerMille, in: 1000) {
            network.heal()
            record("heal")
            return
        }
        guard random.chance(faults.partitionPerMille, in: 1000) else { return }
        let n = options.nodes
        if random.chance(1, in: 2) {
            var order = Array(0..<n)
            order.shuffle(using: &random)
            let side = Array(order.prefix(random.int(in: 1...(n / 2))))
            network.split(sideA: side)
            record("partition \(side.sorted().map { "n\($0 + 1)" }.joined(separator: ",")) | rest")
        } else {
            let a = random.int(in: 0...(n - 1)), b = random.int(in: 0...(n - 1))
            if a != b { network.blockOneWay(from: a, to: b); record("block n\(a + 1)->n\(b + 1)") }
        }
    }

    // MARK: Liveness

    static let livenessOpsPerClient = 2

    func startLivenessPhase() {
        faultsOn = false
        faults = .none
        network.heal()
        for k in nodes.indices where !nodes[k].isUp { restart(k) }
        for k in nodes.indices where nodes[k].byzantine != nil { nodes[k].byzantine = .silent }
        for c in clients.indices { clients[c].livenessOpsLeft = BFTSimulation.livenessOpsPerClient }
        record("liveness phase")
    }

    /// Every client has finished its operations, a view with a correct primary is installed, and
    /// every correct replica has executed as far as the others: a replica that changed views
    /// alone (cut off while the others went on) must still catch up, not sit behind for good.
    var isConverged: Bool {
        guard clients.allSatisfy({ !$0.client.isBusy && $0.livenessOpsLeft == 0 }) else { return false }
        guard isCorrectViewInstalled else { return false }
        let correct = nodes.filter(\.isCorrect).compactMap(\.core)
        return correct.count == nodes.filter(\.isCorrect).count && Set(correct.map(\.lastExecuted)).count == 1
    }

    /// 2f+1 correct replicas are active in one view whose primary is correct.
    var isCorrectViewInstalled: Bool {
        let active = nodes.filter(\.isCorrect).compactMap(\.core).filter(\.isViewActive)
        for v in Set(active.map(\.view)).sorted() {
            let inView = active.filter { $0.view == v }
            let primary = inView[0].config.primary(of: v)
            if inView.count >= Quorum.byzantineQuorum(replicas: options.nodes), nodes[Int(primary.rawValue) - 1].isCorrect { return true }
        }
        return false
    }

    var livenessSummary: String {
        let states = nodes.map { n in
            n.core.map { "\($0.id)\(n.isCorrect ? "" : "*"):\($0.view.rawValue)\($0.isViewActive ? "" : "?")/h\($0.lowWatermark.rawValue)/e\($0.lastExecuted.rawValue)/p\($0.pendingCount)" } ?? "\(n.id):down"
        }
        let busy = clients.filter { $0.client.isBusy || $0.livenessOpsLeft > 0 }.count
        var out = states.joined(separator: " ") + " clients-busy=\(busy)"
        // The slot the most lagging correct replica waits on, for diagnosis.
        if let behind = nodes.filter(\.isCorrect).compactMap(\.core).min(by: { $0.lastExecuted < $1.lastExecuted }) {
            out += "; \(behind.id) waits on \(behind.slotSummary(behind.lastExecuted.next))"
        }
        return out
    }
}

/// KV results as reply bytes (what clients compare for matching replies).
enum BFTResultCodec {
    static func encode(_ r: KVResult) -> [UInt8] {
        var w = ByteWriter()
        switch r {
        case .ok: w.u8(0)
        case let .value(v): w.u8(v == nil ? 1 : 2); w.u64(v ?? 0)
        case let .deleted(e): w.u8(3); w.u8(e ? 1 : 0)
        case let .swapped(s): w.u8(4); w.u8(s ? 1 : 0)
        case .staleSession: w.u8(5)
        }
        return w.bytes
    }

    static func decode(_ b: [UInt8]) -> KVResult? {
        var r = ByteReader(b)
        guard let tag = try? r.u8("tag") else { return nil }
        switch tag {
        case 0: return .ok
        case 1: return .value(nil)
        case 2: return (try? r.u64("value")).map { .value($0) }
        case 3: return (try? r.u8("e")).map { .deleted(existed: $0 == 1) }
        case 4: return (try? r.u8("s")).map { .swapped($0 == 1) }
        case 5: return .staleSession
        default: return nil
        }
    }
}
