import SynodCore
import SynodRaft

// The shell of each simulated node: carrying out `Ready` in its documented order.
extension Simulation {
    func processReady(_ i: Int) {
        guard !nodes[i].isPaused else { return }
        landWrites(i, all: false)
        guard var core = nodes[i].core else { return }
        var rd = core.ready()
        if rd.isEmpty { return }
        let async = !rd.logWrite.isEmpty && core.mayWriteAsynchronously(rd) && random.chance(options.asyncLeaderWritesPerMille, in: 1000)
        if !async && !rd.logWrite.isEmpty && !nodes[i].writesInFlight.isEmpty {
            // Writes reach the disk in order: a synchronous one waits for those in flight (whose
            // reports are new input: take the Ready again).
            landWrites(i, all: true)
            core = nodes[i].core!
            rd = core.ready()
        }
        let write = rd.logWrite
        let commitBefore = core.commitIndex
        let wasLeader = nodes[i].lastRole == .leader
        if let s = rd.snapshot {
            // 1. Install the snapshot durably, then the state machine.
            try! nodes[i].disk.reset(to: s.position)
            nodes[i].durableSnapshot = s
            nodes[i].restore(s)
            snapshotsInstalled += 1
            record("\(core.id) installed snapshot \(s.position)")
        }
        // 2. Persist entries and hard state atomically — or, for a leader, start the write and
        // carry on (its appends may go out first; it counts itself once the write lands).
        let prevTerm = rd.entries.first.flatMap { core.term(at: $0.index.previous) } ?? .zero
        if async {
            let end = rd.entries.last.map { LogPosition(index: $0.index, term: $0.term) }
            nodes[i].writesInFlight.append((write, rd.entries, prevTerm, end, now + random.int(in: 0...options.asyncWriteTicksMax)))
        } else if !write.isEmpty {
            persist(i, write, rd.entries, prevTerm: prevTerm)
        }
        // 3. Send.
        for var m in rd.messages {
            if m.type == .snapshot, let c = m.snapshot, !c.data.isEmpty, random.chance(faults.damageSnapshotPerMille, in: 1000) {
                m.snapshot!.data[random.int(in: 0...(c.data.count - 1))] ^= 0x20   // damaged on the way
            }
            network.send(m, now: now, faults: faults, random: &random)
        }
        // 4. Apply.
        for e in rd.committedEntries {
            checker.applied(e, node: core.id)
            if let (cmd, result) = nodes[i].kv.apply(e) { commandApplied(cmd, result, at: i) }
        }
        applyMesh(rd.committedEntries, at: i)
        nodes[i].readsWaiting += rd.readStates
        for context in rd.refusedReads { readRefused(context, at: i) }
        core.advance(rd, entriesInFlight: async)
        if async && options.bugReportAsyncWritesEarly, let end = nodes[i].writesInFlight.last?.end {
            core.persisted(through: end)   // injected bug: counted before it is on the disk
        }
        nodes[i].core = core
        let interesting = rd.messages.contains { $0.type == .voteResponse && !$0.reject }
            || (core.role == .leader && (!wasLeader || core.commitIndex > commitBefore))
        if faultsOn && interesting && random.chance(faults.crashAfterEventPerMille, in: 1000) { nodes[i].crashSoon = true }
        serveReads(i)
        maybeCompact(i)
        rebuildSnapshotIfWanted(i)
    }

    /// A leader that dropped its snapshot bytes (a follower found them damaged) builds them
    /// again from its state, as the node does on a background thread.
    func rebuildSnapshotIfWanted(_ i: Int) {
        guard var core = nodes[i].core, core.role == .leader, core.snapshotDataWanted,
              nodes[i].kv.appliedIndex == core.appliedIndex else { return }
        core.attachSnapshot(at: core.appliedIndex, data: nodes[i].snapshotData())
        nodes[i].core = core
        record("\(core.id) rebuilt snapshot bytes at \(core.appliedIndex.rawValue)")
    }

    func persist(_ i: Int, _ write: LogWrite, _ entries: [Entry], prevTerm: Term) {
        let id = nodes[i].id
        var prev = prevTerm
        for e in entries {
            checker.persisted(e, prevTerm: prev, node: id)
            prev = e.term
        }
        do { try nodes[i].disk.write(write) } catch {
            violations.append("\(id) store refused a Ready write: \(error)")
        }
    }

    /// Puts asynchronous writes on the disk, oldest first — those due by now, or with `all`
    /// every one — and reports each durable to the core.
    func landWrites(_ i: Int, all: Bool) {
        while let w = nodes[i].writesInFlight.first, all || w.due <= now, nodes[i].core != nil {
            nodes[i].writesInFlight.removeFirst()
            persist(i, w.write, w.entries, prevTerm: w.prevTerm)
            if let end = w.end { nodes[i].core!.persisted(through: end) }
        }
    }

    /// Shell-driven log compaction: snapshot the state machine, tell the core, drop the prefix.
    func maybeCompact(_ i: Int) {
        guard var core = nodes[i].core else { return }
        let applied = core.appliedIndex
        guard applied.rawValue >= core.compactedPosition.index.rawValue + UInt64(options.compactionThresholdEntries),
              applied <= core.persistedLastIndex, applied <= (try? nodes[i].disk.lastIndex()) ?? .zero,
              nodes[i].kv.appliedIndex == applied else { return }
        let data = nodes[i].snapshotData()
        if faultsOn && random.chance(faults.damageSnapshotPerMille, in: 1000) {
            // Damaged in memory after it was sealed; the copy on disk is intact.
            var damaged = data
            damaged[random.int(in: 0...(data.count - 1))] ^= 0x01
            core.compact(upTo: applied, snapshotData: damaged)
            nodes[i].durableSnapshot = Snapshot(position: core.latestSnapshot!.position, membership: core.latestSnapshot!.membership, data: data)
        } else {
            core.compact(upTo: applied, snapshotData: data)
            nodes[i].durableSnapshot = core.latestSnapshot
        }
        try! nodes[i].disk.deletePrefix(through: applied)
        nodes[i].core = core
    }

    func commandApplied(_ cmd: KVCommand, _ result: KVResult, at i: Int) {
        let c = Int(cmd.client) - 1
        guard clients.indices.contains(c), let p = clients[c].current, p.seq == cmd.seq,
              !p.viaReadIndex, clients[c].target == i else { return }
        complete(client: c, result)
    }

    /// Applies the mesh clients' entries to node `i`'s mesh replica: a broken mesh invariant is a
    /// violation, and the client waiting on this node for its command is answered.
    func applyMesh(_ entries: [Entry], at i: Int) {
        guard let mesh = nodes[i].mesh else { return }
        let outcomes: [MeshReplica.Outcome]
        do { outcomes = try mesh.apply(entries) } catch {
            violations.append("\(nodes[i].id) mesh apply failed: \(error)")
            return
        }
        for o in outcomes {
            if !o.violations.isEmpty { violations.append("mesh invariant on \(nodes[i].id) after index \(o.index.rawValue): \(o.violations)") }
            guard let s = o.session else { continue }
            let c = Int(s.clientID) - 1
            guard clients.indices.contains(c), let p = clients[c].current, p.seq == s.sequence, clients[c].target == i,
                  case .mesh = p.work else { continue }
            clients[c].current = nil
            meshCommandsCompleted += 1
            record("c\(s.clientID) complete seq=\(s.sequence) mesh -> \(o.response)")
        }
    }

    /// The leader refused a follower's ReadIndex request (busy): the client tries again shortly.
    func readRefused(_ context: UInt64, at i: Int) {
        let (client, seq) = SimClient.split(context: context)
        let c = Int(client) - 1
        guard clients.indices.contains(c), var p = clients[c].current, p.seq == seq, p.viaReadIndex, clients[c].target == i else { return }
        p.resubmitAt = now + 5
        clients[c].current = p
    }

    func serveReads(_ i: Int) {
        let applied = nodes[i].kv.appliedIndex
        var rest: [ReadState] = []
        for rs in nodes[i].readsWaiting {
            guard rs.index <= applied else { rest.append(rs); continue }
            let (client, seq) = SimClient.split(context: rs.context)
            let c = Int(client) - 1
            guard clients.indices.contains(c), let p = clients[c].current, p.seq == seq, p.viaReadIndex,
                  clients[c].target == i else { continue }
            guard case let .kv(op) = p.work else { continue }
            complete(client: c, .value(nodes[i].kv.get(op.key)))
        }
        nodes[i].readsWaiting = rest
    }

    // MARK: Crashes and partitions

    var downCount: Int { nodes.filter { !$0.isUp }.count }

    func maybeCrash() {
        for k in nodes.indices where nodes[k].crashSoon && nodes[k].isUp { crash(k) }
        guard random.chance(faults.crashPerMille, in: 1000) else { return }
        let up = nodes.indices.filter { nodes[$0].isUp }
        guard downCount < (options.nodes - 1) / 2 + 1, !up.isEmpty else { return }
        crash(up[random.int(in: 0...(up.count - 1))])
    }

    /// Crashes node `k`: unpersisted Ready is lost, and so is about half of what it had sent
    /// that is still in flight (socket buffers die with the process).
    func crash(_ k: Int) {
        network.dropSome(from: nodes[k].id, random: &random)
        let lost = nodes[k].core!.ready()
        record("\(nodes[k].id) crash (unpersisted: \(lost.entries.count) entries, \(lost.messages.count) messages)")
        nodes[k].crash()
        nodes[k].restartAt = now + random.int(in: faults.downTicksRange)
        crashes += 1
    }

    func maybeRestart() {
        for k in nodes.indices where !nodes[k].isUp && nodes[k].restartAt <= now {
            guard random.chance(faults.restartPerMille, in: 1000) else { continue }
            restart(k)
        }
    }

    func restart(_ k: Int) {
        nodes[k].start(config: config(for: nodes[k].id), random: random.fork(), keys: options.keys)
        let core = nodes[k].core!
        record("\(core.id) restart term=\(core.term.rawValue) last=\(core.lastIndex.rawValue) commit=\(core.commitIndex.rawValue)")
        checker.restarted(core)
    }

    /// Pauses a running node (the leader half of the time) for a while: see `FaultRates.pausePerMille`.
    func maybePause() {
        guard faults.pausePerMille > 0, random.chance(faults.pausePerMille, in: 1000) else { return }
        let running = nodes.indices.filter { nodes[$0].isUp && !nodes[$0].isPaused }
        guard !running.isEmpty else { return }
        var k = running[random.int(in: 0...(running.count - 1))]
        if random.chance(1, in: 2), let leader = currentLeader, running.contains(leader) { k = leader }
        nodes[k].pausedUntil = now + random.int(in: faults.pauseTicksRange)
        record("\(nodes[k].id) pause until \(nodes[k].pausedUntil)")
    }

    /// Wakes paused nodes whose pause is over (every one once faults stop), as `synod serve`'s
    /// loop wakes: a burst of at most `tickBurstMax` ticks, the rest reported missed; then its
    /// clients' waiting requests; what its peers sent arrives from the next tick on.
    func resumePaused() {
        for k in nodes.indices where nodes[k].isPaused {
            let senderGaveUp = faultsOn && nodes[k].wakesWhenSenderGivesUp && nodes[k].pausedAsTargetOf.map(gaveUpTransfer) == true
            guard nodes[k].pausedUntil <= now || !faultsOn || senderGaveUp else { continue }
            if senderGaveUp, let sender = nodes[k].pausedAsTargetOf {
                network.isolate(sender)
                record("isolate \(sender) (gave up its transfer to \(nodes[k].id), which wakes)")
            }
            let elapsed = nodes[k].pausedTicks
            let fire = min(elapsed, options.tickBurstMax)
            nodes[k].pausedUntil = 0
            nodes[k].pausedTicks = 0
            nodes[k].wokeAt = now
            for _ in 0..<fire { nodes[k].core!.tick() }
            nodes[k].core!.ticksMissed(elapsed - fire)
            record("\(nodes[k].id) resume after \(elapsed) ticks")
            let waiting = nodes[k].heldSubmits
            nodes[k].heldSubmits = []
            for c in waiting where clients[c].current != nil && clients[c].target == k { submit(c) }
            nodes[k].pausedAsTargetOf = nil
            nodes[k].wakesWhenSenderGivesUp = false
            for m in nodes[k].heldMessages { network.deliver(m, at: now + 1, received: true) }
            nodes[k].heldMessages = []
        }
    }

    /// A TimeoutNow reaches node `k`: with `pauseTransferTargetPerMille` it freezes just then,
    /// holding the message; it acts on it when it wakes, perhaps after `sender` gave the transfer up.
    func maybePauseTransferTarget(_ k: Int, sender: NodeID) {
        // Not again for the TimeoutNow it held, which arrives the tick after it woke.
        guard faultsOn, faults.pauseTransferTargetPerMille > 0, !nodes[k].isPaused, now > nodes[k].wokeAt + 1,
              random.chance(faults.pauseTransferTargetPerMille, in: 1000) else { return }
        nodes[k].pausedUntil = now + random.int(in: faults.pauseTicksRange)
        nodes[k].pausedAsTargetOf = sender
        nodes[k].wakesWhenSenderGivesUp = random.chance(faults.isolateTransferSenderPerMille, in: 1000)
        record("\(nodes[k].id) pause until \(nodes[k].pausedUntil) (TimeoutNow from \(sender))")
    }

    /// Whether `sender` still leads and has given up its leadership transfer.
    func gaveUpTransfer(_ sender: NodeID) -> Bool {
        guard let s = nodes.firstIndex(where: { $0.id == sender }), let core = nodes[s].core, !nodes[s].isPaused else { return false }
        return core.role == .leader && core.transferTarget.isNone
    }

    func maybePartition() {
        if network.isPartitioned && random.chance(faults.healPerMille, in: 1000) {
            network.heal()
            record("heal")
            return
        }
        guard random.chance(faults.partitionPerMille, in: 1000) else { return }
        let ids = nodes.map(\.id)
        switch random.int(in: 0...2) {
        case 0:
            var shuffled = ids
            shuffled.shuffle(using: &random)
            let side = Array(shuffled.prefix(random.int(in: 1...(ids.count / 2))))
            network.split(sideA: side)
            record("partition \(side.map(\.description).joined(separator: ",")) | rest")
        case 1:
            for _ in 0..<random.int(in: 1...3) {
                let a = ids[random.int(in: 0...(ids.count - 1))]
                let b = ids[random.int(in: 0...(ids.count - 1))]
                if a != b {
                    network.blockOneWay(from: a, to: b)
                    record("block \(a)->\(b)")
                }
            }
        default:
            let leader = nodes.first { $0.core?.role == .leader }?.id ?? ids[random.int(in: 0...(ids.count - 1))]
            network.isolate(leader)
            record("isolate \(leader)")
        }
    }

    // MARK: Liveness phase and end checks

    func startLivenessPhase() {
        faultsOn = false
        faults = .none
        network.heal()
        for k in nodes.indices where !nodes[k].isUp { restart(k) }
        record("liveness phase")
    }

    /// The leader of the highest term among running nodes.
    var currentLeader: Int? {
        nodes.indices.filter { nodes[$0].core?.role == .leader }.max { nodes[$0].core!.term < nodes[$1].core!.term }
    }

    /// Nodes in the current leader's membership (removed nodes never learn they were removed).
    func members(of leader: RaftCore) -> [SimNode] {
        nodes.filter { leader.membership.allMembers.contains($0.id) }
    }

    var isConverged: Bool {
        guard nodes.allSatisfy(\.isUp), clients.allSatisfy({ $0.current == nil }) else { return false }
        guard let k = currentLeader, let leader = nodes[k].core else { return false }
        guard leader.term(at: leader.commitIndex) == leader.term, !leader.membershipChangePending else { return false }
        return members(of: leader).allSatisfy { n in
            n.core!.commitIndex == leader.commitIndex && n.kv.appliedIndex == leader.commitIndex
                && n.core!.lastIndex == leader.lastIndex
        }
    }

    var livenessSummary: String {
        let roles = nodes.map { n in n.core.map { "\($0.id):\($0.role)/\($0.term.rawValue)/c\($0.commitIndex.rawValue)/a\(n.kv.appliedIndex.rawValue)/\($0.membership)" } ?? "\(n.id):down" }
        let pending = clients.filter { $0.current != nil }.count
        return roles.joined(separator: " ") + " pending=\(pending)"
    }

    /// Every live node holds the same state machine.
    func checkSameState() {
        guard let k = currentLeader, let leader = nodes[k].core else { return }
        let first = nodes[k].kv
        for n in members(of: leader) where n.kv != first {
            violations.append("divergence: \(n.id) state differs from leader \(leader.id) at applied \(n.kv.appliedIndex.rawValue)")
        }
        // The real state machine's whole store (mesh records, sessions, history, meta) must agree.
        guard let mesh = nodes[k].mesh else { return }
        do {
            let state = try mesh.snapshotBytes()
            for n in members(of: leader) where try n.mesh?.snapshotBytes() != state {
                violations.append("divergence: \(n.id) state machine (mesh clients) differs from leader \(leader.id) at applied \(n.kv.appliedIndex.rawValue)")
            }
        } catch {
            violations.append("reading a mesh replica's state failed: \(error)")
        }
    }
}
