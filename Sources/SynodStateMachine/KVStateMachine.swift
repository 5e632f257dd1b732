import SynodCore

/// The result of applying one committed entry.
public struct AppliedEntry: Hashable, Sendable {
    public var index: LogIndex
    /// The command's response; nil for entries that are not commands (noop, configuration).
    public var response: Response?
    /// The changes the command made, in order, for watchers. Empty for a session duplicate.
    public var events: [WatchEvent]
    public init(index: LogIndex, response: Response?, events: [WatchEvent]) {
        self.index = index
        self.response = response
        self.events = events
    }
}

/// A lease and the keys attached to it.
public struct LeaseInfo: Hashable, Sendable {
    public var id: LeaseID
    public var ttlMillis: Int64
    /// Attached keys, ascending, at most `KVLimits.leaseKeysListMax`.
    public var keys: [[UInt8]]
    public init(id: LeaseID, ttlMillis: Int64, keys: [[UInt8]]) { self.id = id; self.ttlMillis = ttlMillis; self.keys = keys }
}

/// The deterministic KV state machine: etcd-style revisions, transactions, leases, watch history
/// and exactly-once client sessions, over a `StateStore`.
///
/// Promises: `apply` is deterministic (same entries in the same order → same tables, responses
/// and events on every replica; no clocks, no randomness, no hash-order output) and atomic per
/// batch (the tables and the applied index commit together). Reads see only committed batches.
/// Not thread-safe: the node calls it from one place.
public final class KVStateMachine {
    /// The tables the store must be opened with.
    public static let tables: [StateTable] = Tables.all

    /// The store the tables live in (the node streams and installs snapshots through it).
    public let store: any StateStore
    /// The current store revision (1 for an empty store, as in etcd).
    public private(set) var revision: Int64 = 1
    /// Revisions below this were compacted (0: never compacted).
    public private(set) var compactedRevision: Int64 = 0
    private var sessionCount: Int64 = 0
    /// The raised alarms, ascending (`AlarmKind`; replicated state, like the revision).
    public private(set) var alarms: [AlarmKind] = []
    /// The cluster version the log is applied under (`ClusterVersion.swift`; replicated state).
    public private(set) var clusterVersion: UInt16 = 0
    /// Users, roles and whether auth is enabled (`Auth.swift`; replicated state).
    public private(set) var auth = AuthState()
    /// Test-only: stamped commands apply without their permission check — the bug
    /// `AuthTests.uncheckedCommandsAreCaught` shows the auth tests catch. Never set outside tests.
    public var testingAuthUnchecked = false
    /// Test-only: a transaction with a sorted or filtered range, or a put that ignores its value
    /// or lease, applies below cluster version 3 (where an older replica would refuse it) — the
    /// divergence `RangeOrderTests` and `PutIgnoringTests` catch.
    public var testingOrderedRangesUngated = false
    /// The highest cluster version this replica applies under: `clusterVersionSupported`,
    /// lowered or raised only by tests (`synod serve --testing-cluster-version`) to play a
    /// node of an older or newer build. `apply` throws `ClusterVersionUnsupported` rather than
    /// apply an entry that moves the cluster past it.
    public var supportedClusterVersion: UInt16 = KVStateMachine.clusterVersionSupported
    /// Whether applied events carry the previous value of a changed key (`WatchEvent.prevKV`'s
    /// value; its metadata is always there). Values are stored once, in `revisions`, so each
    /// overwrite then costs one more lookup: a node turns this off while nobody watches. Never
    /// changes the tables or the responses.
    public var prevValuesInEvents = true
    /// Test-only: failure verdicts leave the failed agent's tasks in place — the bug the mesh
    /// invariant check must catch (`MeshTests.injectedBugCaught`). Never set outside tests.
    public var testingMeshKeepsTasksOfFailed = false
    /// Test-only: every heartbeat takes the full path (to show the fast path decides the same).
    public var testingMeshSlowHeartbeats = false
    /// Test-only: mesh decisions let hash order choose which pending task is auctioned first.
    public var testingMeshHashOrder = false
    /// Test-only: a raised alarm refuses nothing — the bug `AlarmTests.ignoredAlarmIsCaught`
    /// shows the alarm tests catch. Never set outside tests.
    public var testingAlarmsIgnored = false
    /// Test-only: puts store their value with the last byte flipped — a replica that diverges,
    /// which `synod hashkv` must report (`HashKVTests`). Never set outside tests.
    public var testingCorruptPuts = false
    /// Test-only: a command retried under the same session sequence number is applied again
    /// instead of answered from the session record — the double apply `ExactlyOnceTests` must
    /// catch. Never set outside tests.
    public var testingApplyRetriesAgain = false

    /// Opens the state machine over `store`, loading its revision counters.
    /// Throws `StoreError.invalidArgument` if the store lacks one of `KVStateMachine.tables`.
    public init(store: any StateStore) throws {
        let missing = Self.tables.filter { !store.tables.contains($0) }
        guard missing.isEmpty else {
            throw StoreError.invalidArgument("state store lacks the KV tables \(missing.map(\.name).joined(separator: ", "))")
        }
        self.store = store
        try reload()
    }

    /// Reloads the counters from the store; call after `store.installSnapshot`.
    public func reload() throws {
        let values = try store.read { r in
            try [MetaKey.revision, MetaKey.compacted, MetaKey.sessionCount].map { k throws -> Int64? in
                guard let bytes = try r.get(Tables.meta, k) else { return nil }
                do throws(DecodeError) { return Int64(bitPattern: try IndexKey.decode(bytes)) } catch { throw corrupt(Tables.meta, error) }
            }
        }
        let (rev, compacted, sessions) = (values[0] ?? 1, values[1] ?? 0, values[2] ?? 0)
        // Bad counters mean damaged files; refuse them rather than trap (DESIGN.md §6).
        guard rev >= 1, compacted >= 0, compacted <= rev, sessions >= 0 else {
            throw StoreError.corrupt("sm_meta holds revision \(rev), compacted \(compacted), sessions \(sessions)")
        }
        let raised = try store.read { r throws -> [AlarmKind] in
            guard let bytes = try r.get(Tables.meta, MetaKey.alarms) else { return [] }
            do throws(DecodeError) { return try StoredAlarms.decode(bytes) } catch { throw corrupt(Tables.meta, error) }
        }
        let version = try store.read { r throws -> UInt16 in
            guard let bytes = try r.get(Tables.meta, MetaKey.clusterVersion) else { return 0 }
            var r = ByteReader(bytes)
            do throws(DecodeError) {
                let version = try r.u16("cluster version")
                try r.expectEnd()
                return version
            } catch { throw corrupt(Tables.meta, error) }
        }
        let authState = try store.read { r in try StoredAuth.load(r) }
        (revision, compactedRevision, sessionCount, alarms, clusterVersion, auth) = (rev, compacted, sessions, raised, version, authState)
    }

    /// The highest log index applied to the tables.
    public func appliedIndex() throws -> LogIndex { try store.appliedIndex() }

    // MARK: Apply

    /// Applies committed entries in one atomic store write. Entries at or below the store's
    /// applied index are skipped (so replaying after a restart is a no-op); the rest must be
    /// ascending. Returns one `AppliedEntry` per entry applied, in order.
    /// Throws only for storage failures (then nothing was applied).
    public func apply(_ entries: [Entry]) throws -> [AppliedEntry] {
        let applied = try store.appliedIndex()
        let fresh = entries.filter { $0.index > applied }
        guard let last = fresh.last else { return [] }
        for (a, b) in zip(fresh, fresh.dropFirst()) where b.index <= a.index {
            throw StoreError.invalidArgument("entries out of order: \(a.index.rawValue) then \(b.index.rawValue)")
        }
        var results: [AppliedEntry] = []
        var final = (revision, compactedRevision, sessionCount, alarms, clusterVersion, auth)
        try store.apply(through: last.index) { w in
            // Built from scratch on every run of the body (the store may retry it).
            let ctx = ApplyContext(writer: w, revision: revision, compacted: compactedRevision, sessionCount: sessionCount,
                                   alarms: alarms, prevValuesInEvents: prevValuesInEvents)
            ctx.testingAlarmsIgnored = testingAlarmsIgnored
            ctx.testingCorruptPuts = testingCorruptPuts
            ctx.testingMeshKeepsTasksOfFailed = testingMeshKeepsTasksOfFailed
            ctx.testingMeshSlowHeartbeats = testingMeshSlowHeartbeats
            ctx.testingMeshHashOrder = testingMeshHashOrder
            ctx.clusterVersion = clusterVersion
            ctx.clusterVersionSupported = supportedClusterVersion
            ctx.auth = auth
            ctx.testingAuthUnchecked = testingAuthUnchecked
            ctx.testingOrderedRangesUngated = testingOrderedRangesUngated
            results = []
            for entry in fresh { results.append(try applyOne(entry, ctx)) }
            try ctx.writeMeta()
            final = (ctx.revision, ctx.compacted, ctx.sessionCount, ctx.alarms, ctx.clusterVersion, ctx.auth)
        }
        (revision, compactedRevision, sessionCount, alarms, clusterVersion, auth) = final
        return results
    }

    private func applyOne(_ entry: Entry, _ ctx: ApplyContext) throws -> AppliedEntry {
        guard entry.kind == .command else { return AppliedEntry(index: entry.index, response: nil, events: []) }
        let envelope: CommandEnvelope
        do { envelope = try CommandEnvelope.decode(entry.payload) } catch {
            return AppliedEntry(index: entry.index, response: .failure(.malformedCommand("\(error)")), events: [])
        }
        if case .clusterVersion = envelope.command, envelope.session != nil {
            return AppliedEntry(index: entry.index, response: .failure(.invalidRequest("the cluster version is moved by the leader only")), events: [])
        }
        // An older build cannot decode what version 3 added: it answers `malformedCommand` and
        // writes nothing, not even the session record. Below version 3 every replica does the same.
        if envelope.command.needsVersion3 && ctx.clusterVersion < Self.version3ClusterVersion && !ctx.testingOrderedRangesUngated {
            return AppliedEntry(index: entry.index, response: .failure(.invalidRequest(
                "sorted or filtered ranges and lease compares in a transaction, and puts ignoring their value or lease, need cluster version \(Self.version3ClusterVersion); the cluster runs \(ctx.clusterVersion)")), events: [])
        }
        let stored = try envelope.session.map { try ctx.session($0.clientID) } ?? nil
        if let session = envelope.session, let refusal = ctx.sessionOwnerRefusal(session, stored: stored, principal: envelope.principal) {
            return AppliedEntry(index: entry.index, response: .failure(refusal), events: [])
        }
        let retriedAgain = testingApplyRetriesAgain && stored?.sequence == envelope.session?.sequence
        if let session = envelope.session, !retriedAgain, let answer = try ctx.sessionAnswer(session, stored: stored) {
            return AppliedEntry(index: entry.index, response: answer, events: [])
        }
        ctx.beginCommand()
        let response: Response
        if let denial = try principalDenial(envelope, ctx) {
            response = .failure(denial)
        } else {
            response = try ctx.execute(envelope.command)
        }
        let events = ctx.endCommand()
        if let session = envelope.session {
            try ctx.recordSession(session, index: entry.index, response: response, old: stored, owner: ctx.sessionOwner(envelope.principal))
        }
        return AppliedEntry(index: entry.index, response: response, events: events)
    }

    /// Why the envelope's sender may not run its command, or nil. A stamped command is checked
    /// against the auth state as of this entry; so is an auth command without a stamp, and, once
    /// auth is enabled, an unstamped command with a session (as anonymous: only the leader
    /// stamps, it stamps every client command from cluster version 2 on, and auth can only be
    /// enabled after that). Other unstamped commands are the leader's own (lease expiry, alarms,
    /// compaction, member addresses: never with a session) or from before auth.
    private func principalDenial(_ envelope: CommandEnvelope, _ ctx: ApplyContext) throws -> KVError? {
        if let principal = envelope.principal { return try ctx.authDenial(principal, envelope.command) }
        if case .auth = envelope.command { return try ctx.authDenial(.anonymous, envelope.command) }
        if envelope.session != nil { return try ctx.authDenial(.anonymous, envelope.command) }
        return nil
    }

    // MARK: Reads

    /// The current key-value of `key`, or nil if absent (a serializable read). Throws the
    /// `KVError` for an invalid key.
    public func get(_ key: [UInt8]) throws -> KeyValue? {
        switch try range(RangeRequest(key: key)) {
        case let .range(r): return r.kvs.first
        case let .failure(e): throw e
        default: preconditionFailure("range answers .range or .failure")
        }
    }

    /// A serializable read of committed state.
    public func range(_ request: RangeRequest) throws -> Response {
        let (current, compacted) = (revision, compactedRevision)
        return try store.read { r in try RangeReader.range(request, in: r, current: current, compacted: compacted) }
    }

    /// Changes to keys in (`key`, `rangeEnd`) (etcd range rules) at revisions >= `revision`, in
    /// order, for a watch that starts in the past. Returns whole revisions only: once `limit`
    /// events (0 or more than `KVLimits.historyEventsMax`: that maximum) are collected it finishes
    /// the revision it is in and stops, so a caller resumes from the last event's revision + 1
    /// (or uses `historyPage`, which says where to resume even when nothing matched).
    /// Throws `KVError.compacted(requested:oldestAvailable:)` below the compaction revision.
    public func history(from revision: Int64, key: [UInt8], rangeEnd: [UInt8], limit: Int) throws -> [WatchEvent] {
        try historyPage(from: revision, key: key, rangeEnd: rangeEnd, limit: limit, scanRecordsMax: .max).events
    }

    /// Like `history`, but also stops (at a revision boundary) after examining `scanRecordsMax`
    /// history records or collecting `bytesMax` of keys and values, and returns where the next
    /// page starts. A watch catches up by calling it until `nextRevision` exceeds `revision`,
    /// then follows `AppliedEntry.events`.
    public func historyPage(from revision: Int64, key: [UInt8], rangeEnd: [UInt8], limit: Int,
                            scanRecordsMax: Int = KVLimits.historyScanRecordsMax, bytesMax: Int = .max) throws -> HistoryPage {
        let (current, compacted) = (self.revision, compactedRevision)
        return try store.read { r in
            try History.page(from: revision, key: key, rangeEnd: rangeEnd, limit: limit, scanRecordsMax: scanRecordsMax, bytesMax: bytesMax,
                             current: current, compacted: compacted, in: r)
        }
    }

    /// Every lease with its TTL, ascending by id (the leader tracks their deadlines).
    public func leases() throws -> [(LeaseID, ttlMillis: Int64)] {
        try store.read { r in
            var raw: [([UInt8], [UInt8])] = []
            try r.scan(Tables.leases, from: [], limit: Int.max) { k, v in raw.append((k, v)); return true }
            return try raw.map { k, v throws -> (LeaseID, ttlMillis: Int64) in
                do throws(DecodeError) {
                    return (LeaseID(try IndexKey.decode(k)), try StoredLease.decode(v).ttlMillis)
                } catch { throw corrupt(Tables.leases, error) }
            }
        }
    }

    /// The response the session table cached for `client`'s command `sequence`, if that is the
    /// client's last applied command and its response was small enough to cache. Lets a replica
    /// answer a retransmission without applying anything (the table is replicated state, so it
    /// survives snapshots and state transfer).
    public func cachedResponse(client: UInt64, sequence: UInt64) throws -> [UInt8]? {
        try store.read { r throws -> [UInt8]? in
            guard let bytes = try r.get(Tables.sessions, LayoutKeys.sessionKey(client)) else { return nil }
            let rec: StoredSession
            do throws(DecodeError) { rec = try StoredSession.decode(bytes) } catch { throw corrupt(Tables.sessions, error) }
            return rec.sequence == sequence ? rec.response : nil
        }
    }

    /// One lease and its keys, or nil if it does not exist.
    public func lease(_ id: LeaseID) throws -> LeaseInfo? {
        try store.read { r throws -> LeaseInfo? in
            guard let bytes = try r.get(Tables.leases, LayoutKeys.leaseKey(id)) else { return nil }
            let ttl: Int64
            do throws(DecodeError) { ttl = try StoredLease.decode(bytes).ttlMillis } catch { throw corrupt(Tables.leases, error) }
            return LeaseInfo(id: id, ttlMillis: ttl, keys: try attachedKeys(id, in: r, limit: KVLimits.leaseKeysListMax))
        }
    }
}

extension ApplyContext {
    func execute(_ command: Command) throws -> Response {
        if !alarms.isEmpty, let refusal = alarmRefusal(command) { return .failure(refusal) }
        switch command {
        case let .put(key, value, lease, prevKV): return try applyPut(key, value, lease: lease, prevKV: prevKV)
        case let .putIgnoring(key, value, lease, prevKV, ignoreValue, ignoreLease):
            return try applyPutIgnoring(key, value, lease: lease, prevKV: prevKV, ignoreValue: ignoreValue, ignoreLease: ignoreLease)
        case let .delete(key, prevKV): return try applyDelete(key, prevKV: prevKV)
        case let .deleteRange(from, to, prevKV): return try applyDeleteRange(from, to, prevKV: prevKV)
        case let .txn(txn): return try applyTxn(txn)
        case let .leaseGrant(id, ttl): return try applyLeaseGrant(id, ttlMillis: ttl)
        case let .leaseRevoke(id): return try applyLeaseRevoke(id)
        case let .leaseExpire(ids): return try applyLeaseExpire(ids)
        case let .compact(rev): return try applyCompact(rev)
        case let .mesh(command, ifVersion): return try applyMesh(command, ifVersion: ifVersion)
        case let .alarm(kind, raised): return applyAlarm(kind, raised: raised)
        case let .clusterVersion(version): return try applyClusterVersion(version)
        case let .auth(command): return try applyAuth(command)
        }
    }
}

extension KVStateMachine {
    /// The store revision recorded in a snapshot of this machine's tables (`chunks` as streamed
    /// from a store holding exactly `tables`, in that order). Zero for an empty state.
    public static func revision(inSnapshot chunks: [SnapshotChunk], tables: [StateTable]) throws -> Int64 {
        guard let meta = tables.firstIndex(of: Tables.meta) else { return 0 }
        var revision: Int64 = 0
        for chunk in chunks {
            try SnapshotRecords.decode(chunk, tableCount: tables.count) { ordinal, key, value in
                if ordinal == meta && key == MetaKey.revision { revision = Int64(bitPattern: try IndexKey.decode(value)) }
            }
        }
        return revision
    }
}
