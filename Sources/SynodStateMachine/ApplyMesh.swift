import SynodCore

// Applying a mesh command: check it, load the mesh from its keys, decide (`MeshState`), write
// back only the records that changed. One command is one revision; the mesh's own record
// (`MeshKeys.state`) is rewritten with every change, so its mod revision is the mesh version.

extension ApplyContext {
    func applyMesh(_ command: MeshCommand, ifVersion: Int64?) throws -> Response {
        do throws(KVError) { try MeshValidation.command(command) } catch { return .failure(error) }
        let stateKV = try kv(MeshKeys.state)
        let version = stateKV?.kv.modRevision ?? 0
        if let ifVersion, ifVersion != version { return .failure(.meshVersionStale(expected: ifVersion, current: version)) }
        if case let .report(name, load, resources) = command, !testingMeshSlowHeartbeats,
           let result = try heartbeat(name, load: load, resources: resources, stateKV: stateKV) {
            return result
        }
        var state: MeshState
        do { state = try loadMesh(nextSequence: stateKV) } catch let refusal as MeshRefusal { return .failure(.meshRefused(refusal.why)) }
        let before = state
        if state.repair() { state.assignPending() }
        state.testingKeepTasksOfFailed = testingMeshKeepsTasksOfFailed
        state.testingHashOrder = testingMeshHashOrder
        do throws(MeshRefusal) { try state.execute(command) } catch { return .failure(.meshRefused(error.why)) }
        let versionMoves = try writeMesh(state, over: before)
        return .mesh(MeshResult(revision: revisionAfterCommand, version: versionMoves ? writeRevision : version,
                                moves: state.moves, failed: state.failed))
    }

    /// A heartbeat's fast path: the agent's record alone, when nothing is pending. The mesh's own
    /// record says how many tasks are pending as of the last placement change, and every hand
    /// delete under the prefix removes that record (`ApplyContext.delete`), so a count of 0 means
    /// the full path would auction nothing and mend nothing: both paths give the same records,
    /// events and answer (`MeshTests` runs one store on each). Nil: take the full path.
    func heartbeat(_ name: String, load: Int, resources: Int?, stateKV: StoredKV?) throws -> Response? {
        guard let stateKV, let stored = try kv(MeshKeys.agent(name)) else { return nil }
        let stateBytes = try stateKV.loadingValue(from: w).value, agentBytes = try stored.loadingValue(from: w).value
        guard let record = try? MeshStateRecord.decode(stateBytes), record.pending == 0,
              var agent = try? MeshAgent.decode(agentBytes), !agent.failed else { return nil }
        agent.baseLoad = load
        if let resources { agent.resources = resources }
        agent.suspectedBy = []
        agent.beats &+= 1
        _ = try put(MeshKeys.agent(name), agent.encode(), lease: nil, wantPrevious: false)
        return .mesh(MeshResult(revision: revisionAfterCommand, version: stateKV.kv.modRevision, moves: [], failed: []))
    }

    /// The mesh as its keys hold it. A record that does not decode (written under the prefix
    /// before mesh commands owned it) is a `MeshRefusal` naming it — the same answer on every
    /// replica, and deleting the key mends it — never a stopped node.
    func loadMesh(nextSequence stateKV: StoredKV?) throws -> MeshState {
        func decoded<T>(_ key: [UInt8], _ decode: ([UInt8]) throws(DecodeError) -> T) throws -> T {
            guard let stored = try kv(key) else { throw StoreError.corrupt("mesh key \(String(decoding: key, as: UTF8.self)) vanished") }
            let value = try stored.loadingValue(from: w).value
            do throws(DecodeError) { return try decode(value) } catch {
                throw MeshRefusal("record \(String(decoding: key, as: UTF8.self)) does not decode (\(error)); delete it")
            }
        }
        var failedSince: [String: Int64] = [:]
        let agents = try keys(from: MeshKeys.agentsPrefix, to: KeyRange.prefixEnd(MeshKeys.agentsPrefix)).map { key in
            let agent = try decoded(key, MeshAgent.decode)
            if agent.failed { failedSince[agent.name] = try kv(key)?.kv.modRevision ?? 0 }
            return agent
        }
        let tasks = try keys(from: MeshKeys.tasksPrefix, to: KeyRange.prefixEnd(MeshKeys.tasksPrefix)).map { try decoded($0, MeshTask.decode) }
        var next: UInt64 = 0
        if stateKV != nil { next = try decoded(MeshKeys.state, MeshStateRecord.decode).nextSequence }
        var state = MeshState(agents: agents, tasks: tasks, nextSequence: next)
        state.failedSince = failedSince
        return state
    }

    /// Puts the agents and tasks whose records changed, deletes those that went, and rewrites
    /// the mesh's own record — moving the mesh version — if the decisions' inputs changed:
    /// membership, capabilities, verdicts or task placement; a heartbeat's load, resources or
    /// suspicions alone do not (else every heartbeat would make every `ifVersion` proposal
    /// stale). Returns whether the version moved. Sorted walks: the same writes in the same order
    /// on every replica.
    func writeMesh(_ state: MeshState, over before: MeshState) throws -> Bool {
        meshWriting = true
        defer { meshWriting = false }
        var versionMoves = state.nextSequence != before.nextSequence
        for name in Set(state.agents.keys).union(before.agents.keys).sorted() {
            let new = state.agents[name], old = before.agents[name]
            if new == old { continue }
            if new?.capabilities != old?.capabilities || new?.failed != old?.failed { versionMoves = true }
            if let new { _ = try put(MeshKeys.agent(name), new.encode(), lease: nil, wantPrevious: false) } else { _ = try delete(MeshKeys.agent(name), wantPrevious: false) }
        }
        for id in Set(state.tasks.keys).union(before.tasks.keys).sorted() {
            let new = state.tasks[id]
            if new == before.tasks[id] { continue }
            versionMoves = true
            if let new { _ = try put(MeshKeys.task(id), new.encode(), lease: nil, wantPrevious: false) } else { _ = try delete(MeshKeys.task(id), wantPrevious: false) }
        }
        if versionMoves {
            let pending = state.tasks.values.filter { $0.agent == nil }.count
            _ = try put(MeshKeys.state, MeshStateRecord(nextSequence: state.nextSequence, pending: pending).encode(), lease: nil, wantPrevious: false)
        }
        return versionMoves
    }
}

/// The mesh's own record: the next task sequence number, and how many tasks were pending when
/// task placement last changed (every change of placement rewrites this record).
struct MeshStateRecord {
    static let encodingVersion: UInt8 = 1
    var nextSequence: UInt64
    var pending: Int

    func encode() -> [UInt8] {
        var w = ByteWriter()
        w.u8(Self.encodingVersion)
        w.u64(nextSequence)
        w.u32(UInt32(clamping: pending))
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) throws(DecodeError) -> MeshStateRecord {
        var r = ByteReader(bytes)
        try r.version("mesh state version", expected: encodingVersion)
        let record = MeshStateRecord(nextSequence: try r.u64("next task sequence"), pending: Int(try r.u32("pending tasks")))
        try r.expectEnd()
        return record
    }
}

/// Static checks on a mesh command (before it reads anything).
enum MeshValidation {
    static func command(_ c: MeshCommand) throws(KVError) {
        switch c {
        case let .join(agent, capabilities, resources):
            try name(agent); try set(capabilities, "capabilities"); try permille(resources, "resources")
        case let .report(agent, load, resources):
            try name(agent); try permille(load, "load")
            if let resources { try permille(resources, "resources") }
        case let .suspect(agent, observer): try name(agent); try name(observer)
        case let .leave(agent), let .steal(agent): try name(agent)
        case let .submit(task, requires, cost): try name(task); try set(requires, "required capabilities"); try permille(cost, "cost")
        case let .complete(task, agent): try name(task); try name(agent)
        case .rebalance: break
        }
    }

    /// 1...`MeshLimits.nameBytesMax` bytes of letters, digits and `._:-`.
    static func name(_ s: String) throws(KVError) {
        guard !s.isEmpty, s.utf8.count <= MeshLimits.nameBytesMax,
              s.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7a) || $0 == 0x2e || $0 == 0x5f || $0 == 0x3a || $0 == 0x2d })
        else { throw .invalidRequest("mesh name '\(s.prefix(80))' must be 1-\(MeshLimits.nameBytesMax) letters, digits or ._:-") }
    }

    /// Sorted, distinct, valid names, at most `MeshLimits.capabilitiesMax`.
    static func set(_ v: [String], _ what: String) throws(KVError) {
        guard v.count <= MeshLimits.capabilitiesMax else { throw .invalidRequest("\(v.count) \(what) exceed \(MeshLimits.capabilitiesMax)") }
        for s in v { try name(s) }
        guard zip(v, v.dropFirst()).allSatisfy({ $0 < $1 }) else { throw .invalidRequest("\(what) must be sorted and distinct") }
    }

    static func permille(_ v: Int, _ what: String) throws(KVError) {
        guard (0...MeshRules.one).contains(v) else { throw .invalidRequest("\(what) \(v) is outside 0...\(MeshRules.one) per mille") }
    }
}
