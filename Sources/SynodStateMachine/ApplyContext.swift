import SynodCore

/// The state of one `StateStore.apply` body: the writer, the revision counters as of the start of
/// the body, and the changes of the command being applied. Built from scratch every time the body
/// runs (the LMDB store may run it twice after growing its map).
final class ApplyContext {
    let w: any StateWriter
    /// The store revision before the current command.
    var revision: Int64
    var compacted: Int64
    var sessionCount: Int64
    /// Changes the current command has made so far (the next change's sub-revision).
    // Invariant: changes == 0 until the current command writes, and then events.count == changes.
    var changes: UInt32 = 0
    var events: [WatchEvent] = []
    /// Whether events carry the previous value (`WatchEvent.prevKV.value`): reading it costs a
    /// `revisions` lookup per overwritten key, so it is skipped when nobody watches (see
    /// `KVStateMachine.prevValuesInEvents`). Responses that ask for prevKV always get it.
    let prevValuesInEvents: Bool
    /// See `KVStateMachine.testingMeshKeepsTasksOfFailed`.
    var testingMeshKeepsTasksOfFailed = false
    /// See `KVStateMachine.testingMeshSlowHeartbeats`.
    var testingMeshSlowHeartbeats = false
    /// See `KVStateMachine.testingMeshHashOrder`.
    var testingMeshHashOrder = false
    /// True while a mesh command writes its records (`writeMesh`); any other delete under
    /// `MeshKeys.prefix` is a hand edit.
    var meshWriting = false
    /// The raised alarms, ascending; `alarmsChanged` once a command of this batch changed them.
    var alarms: [AlarmKind]
    var alarmsChanged = false
    /// The cluster version in force (`ClusterVersion.swift`); `clusterVersionChanged` once a
    /// command of this batch raised it.
    var clusterVersion: UInt16 = 0
    var clusterVersionChanged = false
    /// The highest version this replica may apply under (`KVStateMachine.supportedClusterVersion`).
    var clusterVersionSupported: UInt16 = KVStateMachine.clusterVersionSupported
    /// The auth state in force (`Auth.swift`); auth commands change it and its records at once.
    var auth = AuthState()
    /// See `KVStateMachine.testingAuthUnchecked`.
    var testingAuthUnchecked = false
    /// See `KVStateMachine.testingOrderedRangesUngated`.
    var testingOrderedRangesUngated = false
    /// See `KVStateMachine.testingAlarmsIgnored`.
    var testingAlarmsIgnored = false
    /// See `KVStateMachine.testingCorruptPuts`.
    var testingCorruptPuts = false

    init(writer: any StateWriter, revision: Int64, compacted: Int64, sessionCount: Int64, alarms: [AlarmKind] = [],
         prevValuesInEvents: Bool = true) {
        self.w = writer
        self.revision = revision
        self.compacted = compacted
        self.sessionCount = sessionCount
        self.alarms = alarms
        self.prevValuesInEvents = prevValuesInEvents
    }

    /// The revision the current command's changes carry.
    var writeRevision: Int64 { revision + 1 }

    func beginCommand() {
        changes = 0
        events = []
    }

    /// Ends the current command: one revision for all of its changes, none if it changed nothing.
    func endCommand() -> [WatchEvent] {
        if changes > 0 { revision += 1 }
        precondition(events.count == Int(changes), "every change is one event")
        return events
    }

    // MARK: Reads

    func kv(_ key: [UInt8]) throws -> StoredKV? {
        guard let bytes = try w.get(Tables.kv, key) else { return nil }
        do throws(DecodeError) { return try StoredKV.decode(key: key, bytes) } catch { throw corrupt(Tables.kv, error) }
    }

    func leaseExists(_ id: LeaseID) throws -> Bool { try w.get(Tables.leases, LayoutKeys.leaseKey(id)) != nil }

    // MARK: Writes

    /// The previous key-value of a change: with its value when `wanted` (a prevKV response) or
    /// events carry previous values, else metadata only.
    private func previous(_ old: StoredKV?, wanted: Bool) throws -> KeyValue? {
        guard let old else { return nil }
        return wanted || prevValuesInEvents ? try old.loadingValue(from: w) : old.kv
    }

    /// Puts `key`, recording the change; returns the previous key-value (its value only when
    /// `wantPrevious`).
    func put(_ key: [UInt8], _ value: [UInt8], lease: LeaseID?, wantPrevious: Bool) throws -> KeyValue? {
        let old = try kv(key)
        let prev = try previous(old, wanted: wantPrevious)
        if let oldLease = old?.kv.lease, oldLease != lease {
            try w.delete(Tables.leaseKeys, LayoutKeys.leaseKeysKey(oldLease, key))
        }
        if let lease, old?.kv.lease != lease {
            try w.put(Tables.leaseKeys, LayoutKeys.leaseKeysKey(lease, key), [])
        }
        let rev = writeRevision
        var value = value
        if testingCorruptPuts, let last = value.last { value[value.count - 1] = last ^ 1 }
        let new = KeyValue(key: key, value: value, createRevision: old?.kv.createRevision ?? rev, modRevision: rev,
                           version: (old?.kv.version ?? 0) + 1, lease: lease)
        try record(.put, new, previous: old?.position, previousKV: prev)
        try w.put(Tables.kv, key, StoredKV(kv: new, modSub: changes - 1).encode())
        return prev
    }

    /// Deletes `key` if present, recording the change; returns the deleted key-value (its value
    /// only when `wantPrevious`).
    func delete(_ key: [UInt8], wantPrevious: Bool) throws -> KeyValue? {
        guard let old = try kv(key) else { return nil }
        // A hand edit of the mesh drops its own record too, so the next mesh command takes the
        // full path and mends what the edit left (see `heartbeat`).
        if !meshWriting, key != MeshKeys.state, key.starts(with: MeshKeys.prefix) { _ = try delete(MeshKeys.state, wantPrevious: false) }
        let prev = try previous(old, wanted: wantPrevious)
        if let lease = old.kv.lease { try w.delete(Tables.leaseKeys, LayoutKeys.leaseKeysKey(lease, key)) }
        try w.delete(Tables.kv, key)
        let tombstone = KeyValue(key: key, value: [], createRevision: 0, modRevision: writeRevision, version: 0)
        try record(.delete, tombstone, previous: old.position, previousKV: prev)
        return prev
    }

    /// Keys in [from, to) in the `kv` table, ascending; an empty `to` or `[0]` means to the end.
    func keys(from: [UInt8], to: [UInt8]) throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        let toEnd = to.isEmpty || to == [0]
        try w.scan(Tables.kv, from: from, limit: Int.max) { k, _ in
            guard toEnd || k.lexicographicallyPrecedes(to) else { return false }
            out.append(k)
            return true
        }
        return out
    }

    private func record(_ type: EventType, _ kv: KeyValue, previous: RevisionKey?, previousKV: KeyValue?) throws {
        let position = RevisionKey(main: writeRevision, sub: changes)
        let stored = StoredEvent(type: type, kv: kv, previous: previous ?? .zero)
        try w.put(Tables.revisions, position.bytes, stored.encode())
        events.append(WatchEvent(type: type, kv: kv, prevKV: previousKV, revision: writeRevision))
        changes += 1
    }

    func writeMeta() throws {
        try w.put(Tables.meta, MetaKey.revision, IndexKey.encode(UInt64(bitPattern: revision)))
        try w.put(Tables.meta, MetaKey.compacted, IndexKey.encode(UInt64(bitPattern: compacted)))
        try w.put(Tables.meta, MetaKey.sessionCount, IndexKey.encode(UInt64(bitPattern: sessionCount)))
        if alarmsChanged { try w.put(Tables.meta, MetaKey.alarms, StoredAlarms.encode(alarms)) }
        if clusterVersionChanged {
            var b = ByteWriter()
            b.u16(clusterVersion)
            try w.put(Tables.meta, MetaKey.clusterVersion, b.bytes)
        }
    }
}
