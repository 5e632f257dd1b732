import Foundation
import SynodCore
import SynodCrypto
import SynodStateMachine
import SynodTransport
import SynodWire

/// Identifies a watch: the connection it arrived on and its request id.
struct WatchKey: Hashable {
    var connection: UInt64
    var request: UInt64
}

/// One watch: what it covers and the next revision it has not seen.
struct Watcher {
    var request: WatchRequest
    var connection: ClientConnection
    var requestID: UInt64
    /// Invariant: every event with revision < nextRevision matching the range was sent, in order.
    var nextRevision: Int64
    /// True while the watch is behind the current revision (its client stopped reading, or it
    /// started from an old revision): it gets no live events, only history, one batch per pass
    /// while its connection is writable (`catchUpLaggingWatchers`). What the node holds for a
    /// slow watcher is then bounded by the connection's watermark, not by the event rate.
    var lagging = false
    /// When a progress notification is next due (uptime seconds), if the watch asked for them:
    /// pushed back whenever events go out, since each batch shows progress too.
    var progressDue: Double?
    /// The client asked for a progress notification (`requestWatchProgress`) that has not been
    /// sent: it goes out as soon as the watch keeps up and its connection takes writes.
    var progressRequested = false
    /// Who started the watch: checked again whenever the auth state changes (`recheckWatchers`).
    var principal: AuthPrincipal = .anonymous
}

extension NodeLoop {
    /// Most events replayed from history per batch, and about the most bytes.
    static let historyBatchMax = 1000
    static let historyBatchBytesMax = 1 << 20

    // MARK: queries

    /// Whether a query asks for leases' remaining time (known to the leader only).
    static func asksLeaseTime(_ query: [UInt8]) -> Bool {
        switch try? KVQuery.decode(query) {
        case .leases?, .lease?: return true
        default: return false
        }
    }

    func answer(_ query: [UInt8], _ id: UInt64, _ c: ClientConnection) -> ClientResponse {
        let decoded: KVQuery
        do { decoded = try KVQuery.decode(query) } catch {
            return ClientResponse(id: id, status: .badRequest, message: "query: \(error)")
        }
        if let needed = Self.access(decoded), let refusal = denial(c, needed, id) { return refusal }
        do {
            switch decoded {
            case .auth: return ClientResponse(id: id, status: .ok, body: authSummary(for: c).encode())
            case let .range(r): return ClientResponse(id: id, status: .ok, body: sm.range(r).encode())
            case .leases:
                let now = ProcessInfo.processInfo.systemUptime
                let list = try sm.kv.leases().map { id, ttl in
                    LeaseStatus(id: id, ttlMillis: ttl, remainingMillis: leaseDeadlines[id].map { max(0, Int64(($0.deadline - now) * 1000)) } ?? -1, keys: [])
                }
                return ClientResponse(id: id, status: .ok, body: LeaseStatus.encode(list))
            case .alarms:
                return ClientResponse(id: id, status: .ok, body: Response.alarm(AlarmResult(revision: sm.revision, alarms: sm.kv.alarms)).encode())
            case let .lease(lease):
                guard let info = try sm.kv.lease(lease) else { return ClientResponse(id: id, status: .ok, body: LeaseStatus.encode([])) }
                // The attached keys' names are data: the asker must be able to read each of them
                // (etcd's LeaseTimeToLive with keys checks the same).
                for key in info.keys {
                    if let refusal = denial(c, .read(key: key, rangeEnd: []), id) { return refusal }
                }
                let now = ProcessInfo.processInfo.systemUptime
                let remaining = leaseDeadlines[lease].map { max(0, Int64(($0.deadline - now) * 1000)) } ?? -1
                return ClientResponse(id: id, status: .ok, body: LeaseStatus.encode([LeaseStatus(id: lease, ttlMillis: info.ttlMillis, remainingMillis: remaining, keys: info.keys)]))
            }
        } catch {
            return ClientResponse(id: id, status: .internalError, message: "\(error)")
        }
    }

    // MARK: watches

    func startWatch(_ body: [UInt8], _ id: UInt64, _ c: ClientConnection) {
        let request: WatchRequest
        do { request = try WatchRequest.decode(body) } catch {
            return respond(c, ClientResponse(id: id, status: .badRequest, message: "watch: \(error)"))
        }
        if let refusal = denial(c, .read(key: request.key, rangeEnd: request.rangeEnd), id) { return respond(c, refusal) }
        // "From now" means after everything this node knows to be committed.
        do { try applyDeferred() } catch { storageFailed(error) }
        let start = request.startRevision == 0 ? sm.revision + 1 : request.startRevision
        var w = Watcher(request: request, connection: c, requestID: id, nextRevision: start,
                        progressDue: request.progressNotify ? ProcessInfo.processInfo.systemUptime + progressInterval : nil,
                        principal: principal(of: c))
        // Established: the body says the revision the watch starts from.
        var b = ByteWriter()
        b.u64(UInt64(bitPattern: start))
        respond(c, ClientResponse(id: id, status: .ok, body: b.bytes))
        guard replay(&w) else { return }
        watchers[WatchKey(connection: c.number, request: id)] = w
    }

    /// Sends history from `w.nextRevision`, at most one batch (`historyBatchMax` events and
    /// about `historyBatchBytesMax`), and marks the watch lagging while it is still behind.
    /// False if the watch ended.
    func replay(_ w: inout Watcher) -> Bool {
        defer {
            w.lagging = w.nextRevision <= sm.revision
            if w.lagging { anyWatcherLagging = true }
        }
        if w.nextRevision <= sm.revision {
            do {
                // A page of whole revisions with bounded scan and size (a narrow watch far behind
                // never makes one huge scan on the node loop) that says where the next one starts.
                let page = try sm.kv.historyPage(from: w.nextRevision, key: w.request.key, rangeEnd: w.request.rangeEnd,
                                                 limit: Self.historyBatchMax, bytesMax: Self.historyBatchBytesMax)
                var events = page.events
                if !w.request.prevKV { for i in events.indices { events[i].prevKV = nil } }
                w.nextRevision = page.nextRevision
                if !events.isEmpty {
                    respond(w.connection, ClientResponse(id: w.requestID, status: .watchEvents, body: WatchEvents.encode(events)))
                }
            } catch let e as KVError {
                respond(w.connection, ClientResponse(id: w.requestID, status: .watchEnded, message: "\(e)"))
                return false
            } catch {
                respond(w.connection, ClientResponse(id: w.requestID, status: .watchEnded, message: "\(error)"))
                return false
            }
        }
        return true
    }

    /// Hands freshly applied events (in revision order) to every matching watch that keeps up;
    /// a watch whose client is not reading becomes lagging and catches up from history later.
    func deliver(_ events: [WatchEvent]) {
        guard !watchers.isEmpty else { return }
        for (key, var w) in watchers {
            if w.lagging || !w.connection.isWritable {
                w.lagging = true
                anyWatcherLagging = true
                watchers[key] = w
                continue
            }
            var batch: [WatchEvent] = []
            for e in events where e.revision >= w.nextRevision && w.request.matches(e.kv.key) {
                var event = e
                if !w.request.prevKV { event.prevKV = nil }
                batch.append(event)
            }
            if let last = events.last { w.nextRevision = max(w.nextRevision, last.revision + 1) }
            if !batch.isEmpty {
                respond(w.connection, ClientResponse(id: w.requestID, status: .watchEvents, body: WatchEvents.encode(batch)))
                if w.progressDue != nil { w.progressDue = ProcessInfo.processInfo.systemUptime + progressInterval }
            }
            watchers[key] = w
        }
    }

    var progressInterval: Double { Double(configuration.watchProgressNotifyIntervalMillis) / 1000 }

    /// Each pass (looked at every ~100 ms at most): a progress notification to every watch that
    /// asked for them and was sent nothing for the interval, or that asked for one on demand.
    func notifyWatchProgress(_ now: Double) {
        guard !watchers.isEmpty, now >= progressCheckAt else { return }
        progressCheckAt = now + min(0.1, progressInterval)
        for (key, var w) in watchers {
            guard w.progressRequested || w.progressDue.map({ now >= $0 }) == true else { continue }
            if sendProgress(&w, now) { watchers[key] = w }
        }
    }

    /// Sends `w` a progress notification if it keeps up and its connection takes writes; false
    /// (and nothing sent) otherwise. Its revision is the last one the watch has been handed in
    /// full, `nextRevision - 1` (`Watcher`'s invariant), never above the store's (a watch that
    /// starts at a future revision is current only to now); a lagging watch gets none until it
    /// caught up, since history is still on its way.
    func sendProgress(_ w: inout Watcher, _ now: Double) -> Bool {
        guard !w.lagging, w.connection.isWritable else { return false }
        var b = ByteWriter()
        b.u64(UInt64(bitPattern: min(w.nextRevision - 1, sm.revision)))
        respond(w.connection, ClientResponse(id: w.requestID, status: .watchProgress, body: b.bytes))
        if w.progressDue != nil { w.progressDue = now + progressInterval }
        w.progressRequested = false
        return true
    }

    /// etcd's `RequestProgress` for one watch on the asking connection: answered `ok` at once,
    /// the notification itself goes out under the watch's id — now if the watch keeps up (after
    /// applying what this node knows to be committed, as a new watch does), else once it has
    /// caught up (`catchUpLaggingWatchers`, `notifyWatchProgress`).
    func requestWatchProgress(_ key: WatchKey, _ id: UInt64, _ c: ClientConnection) {
        guard var w = watchers[key] else {
            return respond(c, ClientResponse(id: id, status: .badRequest, message: "no watch \(key.request) on this connection"))
        }
        respond(c, ClientResponse(id: id, status: .ok))
        do { try applyDeferred() } catch { storageFailed(error) }
        // Applying may have ended or moved the watch.
        guard let current = watchers[key] else { return }
        w = current
        w.progressRequested = true
        _ = sendProgress(&w, ProcessInfo.processInfo.systemUptime)
        watchers[key] = w
    }

    /// After a snapshot install the state jumped: every watch catches up from history.
    func catchUpWatchers() {
        for key in watchers.keys { watchers[key]?.lagging = true }
        anyWatcherLagging = !watchers.isEmpty
    }

    /// Each pass: one history batch for every lagging watch whose client reads again.
    func catchUpLaggingWatchers() {
        guard anyWatcherLagging else { return }
        anyWatcherLagging = false
        for (key, var w) in watchers where w.lagging {
            if w.connection.isWritable {
                guard replay(&w) else {
                    watchers[key] = nil
                    continue
                }
                if w.progressRequested { _ = sendProgress(&w, ProcessInfo.processInfo.systemUptime) }
                watchers[key] = w
            } else {
                anyWatcherLagging = true
            }
        }
    }

    func cancelWatch(_ key: WatchKey, _ c: ClientConnection) {
        guard let w = watchers.removeValue(forKey: key) else { return }
        respond(c, ClientResponse(id: w.requestID, status: .watchEnded, message: "cancelled"))
    }

    func dropWatches(of c: ClientConnection) {
        watchers = watchers.filter { $0.key.connection != c.number }
    }

    // MARK: leases (leader only)

    /// A new leader gives every lease a full TTL from now (as etcd does): it cannot know how
    /// long the old leader's clock had left.
    func startTrackingLeases() {
        let now = ProcessInfo.processInfo.systemUptime
        leaseDeadlines = [:]
        expiryProposed = [:]
        for (id, ttl) in (try? sm.kv.leases()) ?? [] {
            leaseDeadlines[id] = (ttl, now + Double(ttl) / 1000)
        }
    }

    func trackLeases(_ response: Response) {
        guard core.role == .leader else { return }
        switch response {
        case let .leaseGrant(g):
            leaseDeadlines[g.id] = (g.ttlMillis, ProcessInfo.processInfo.systemUptime + Double(g.ttlMillis) / 1000)
        case let .leaseRevoke(r), let .leaseExpire(r):
            for id in r.leases {
                leaseDeadlines[id] = nil
                expiryProposed[id] = nil
            }
        default: break
        }
    }

    /// A keep-alive arrived (leader): renews `lease` for its full TTL from now at once, so no
    /// expiry is proposed while the answer waits for its ReadIndex round (`answerKeepAlive`).
    /// Renewing on a leader that turns out deposed is harmless: only the leader's deadlines
    /// count. A lease whose expiry is already in the log is not renewed — it is gone once that
    /// entry applies, and the keep-alive is answered "not found".
    func renewLease(_ lease: LeaseID) {
        guard let entry = leaseDeadlines[lease], expiryProposed[lease] == nil else { return }
        leaseDeadlines[lease] = (entry.ttlMillis, ProcessInfo.processInfo.systemUptime + Double(entry.ttlMillis) / 1000)
    }

    /// Answers a keep-alive once a ReadIndex round confirmed this node leads (see
    /// `handle(_:from:)`); if it has stepped down since, the client goes to the new leader.
    func answerKeepAlive(_ lease: LeaseID, _ id: UInt64, _ c: ClientConnection) {
        guard core.role == .leader else { return respond(c, notLeader(id)) }
        guard let entry = leaseDeadlines[lease], expiryProposed[lease] == nil else {
            return respond(c, ClientResponse(id: id, status: .ok, body: Response.failure(.leaseNotFound(lease)).encode()))
        }
        respond(c, ClientResponse(id: id, status: .ok, body: Response.leaseGrant(LeaseGrantResult(revision: sm.revision, id: lease, ttlMillis: entry.ttlMillis)).encode()))
    }

    /// Proposes expiry of leases whose deadline passed (the only way a lease expires: replicas
    /// never expire by their own clocks). Re-proposed if not applied within a second.
    func checkLeases() {
        // Under CORRUPT an expiry is refused (every write is): none is proposed until it is disarmed.
        guard core.role == .leader, !leaseDeadlines.isEmpty, !sm.kv.alarms.contains(.corrupt) else { return }
        let now = ProcessInfo.processInfo.systemUptime
        guard now - lastLeaseCheck >= 0.02 else { return }
        lastLeaseCheck = now
        let due = leaseDeadlines.filter { $0.value.deadline <= now && (expiryProposed[$0.key].map { now - $0 > 1 } ?? true) }.keys.sorted()
        guard !due.isEmpty else { return }
        let payload = CommandEnvelope(session: nil, command: .leaseExpire(ids: Array(due.prefix(1000)))).encode()
        if (try? core.propose(payload)) != nil {
            for id in due.prefix(1000) { expiryProposed[id] = now }
        }
    }
}

extension NodeLoop {
    /// Leader only: proposes compacting history down to `autoCompactRevisions` revisions once
    /// it holds a step more (`NodeConfiguration.autoCompactRevisions`). The compaction is an
    /// ordinary command, so every replica trims the same history at the same log index. No
    /// second one is proposed while the first is in the log unapplied (in this term).
    func checkAutoCompaction() {
        let keep = configuration.autoCompactRevisions
        // Under CORRUPT a compaction is refused, and the trigger would stay true: none then.
        guard keep > 0, core.role == .leader, !sm.kv.alarms.contains(.corrupt) else { return }
        // Counters first (this runs every pass): the applied index is read only when one is due.
        let target = sm.revision - keep
        guard target - sm.kv.compactedRevision >= configuration.autoCompactStep else { return }
        if let f = autoCompactInFlight, f.term == core.term, sm.appliedIndex < f.index { return }
        let payload = CommandEnvelope(session: nil, command: .compact(revision: target)).encode()
        guard let position = try? core.propose(payload) else { return }
        autoCompactInFlight = position
        logger.info("auto-compaction proposed", metadata: ["revision": "\(target)", "keep": "\(keep)"])
    }

    /// Seconds between measurements of the state's pages (for the quota and the metrics).
    static let quotaCheckSeconds = 0.5

    /// Measures the state tables' pages (every node: `synod_mvcc_db_total_size_in_use_in_bytes`)
    /// and, on the leader, checks them against `NodeConfiguration.quotaBytes`: above it, it
    /// proposes raising the NOSPACE alarm (etcd's space quota). The alarm is a command, so every
    /// replica starts refusing writes that add data at the same log index; only an operator's
    /// disarm clears it, and the next measurement raises it again while the state is still too
    /// large. One proposal at a time (in this term).
    func checkQuota(_ now: Double) {
        guard now - lastQuotaCheck >= Self.quotaCheckSeconds else { return }
        lastQuotaCheck = now
        let used: Int64
        do { used = try sm.combined.stateBytesUsed() } catch {
            // A read, not a write: nothing promised is at stake, so skip this measurement
            // (e.g. the reader table is full) instead of stopping the node.
            logger.warning("could not measure the state's pages; the quota check waits for the next one", metadata: ["error": "\(error)"])
            return
        }
        metrics.stateBytes.record(used)
        lastStateBytes = used
        let quota = configuration.quotaBytes
        guard quota > 0, used > quota, core.role == .leader, !sm.kv.alarms.contains(.noSpace) else { return }
        if let f = quotaAlarmInFlight, f.term == core.term, sm.appliedIndex < f.index { return }
        let payload = CommandEnvelope(session: nil, command: .alarm(.noSpace, raised: true)).encode()
        guard let position = try? core.propose(payload) else { return }
        quotaAlarmInFlight = position
        logger.warning("state over its space quota: raising the NOSPACE alarm (writes that add data are refused until space is freed and the alarm disarmed)",
                       metadata: ["used_bytes": "\(used)", "quota_bytes": "\(quota)"])
    }

    /// Answers `hashKV` (`synod hashkv`): a SHA-256 of the history at or below `revision`, read
    /// and hashed on a low-priority background thread from one LMDB read transaction, as a
    /// backup is (a large history must not stall the node). A follower first applies what it
    /// deferred, so it can hash any revision it knows to be committed.
    func hashKV(_ revision: Int64, _ id: UInt64, _ c: ClientConnection) {
        let store = self.store
        readForClient("hashkv", id, c) {
            var hasher = StateHasher()
            do {
                let point = try KVStateMachine.hashInput(store, revision: revision) { k, v in hasher.add(k, v) }
                let answer = KVHash(revision: point.revision, compactedRevision: point.compactedRevision, hash: hasher.finish())
                c.send(ClientResponse(id: id, status: .ok, body: answer.encode()))
            } catch let e as KVError {
                c.send(ClientResponse(id: id, status: .badRequest, message: "\(e)"))
            } catch {
                c.send(ClientResponse(id: id, status: .internalError, message: "hashkv: \(error)"))
            }
        }
    }

    /// Runs `body` on a low-priority background thread for a client's request (`what` names it
    /// in errors), within `clientBackgroundReadsMax`, after this node applied what it deferred
    /// (a follower then reads everything it knows to be committed).
    func readForClient(_ what: String, _ id: UInt64, _ c: ClientConnection, _ body: @escaping @Sendable () -> Void) {
        guard let done = claimClientRead() else { return respond(c, clientReadsBusy(id)) }
        do {
            try applyDeferred()
            try readStateInBackground(name: "synod-" + what) {
                defer { done() }
                body()
            }
        } catch {
            done()
            respond(c, ClientResponse(id: id, status: .internalError, message: "\(what): \(error)"))
        }
    }

    /// Most client-requested background reads (`hashkv`, backups) running at once: each holds
    /// an LMDB reader slot and the map's resize lock for its whole scan, on a low-priority
    /// thread, so an unbounded burst could exhaust the reader table (126 slots) and stall map
    /// growth. Beyond it a request is answered `busy` (the client retries).
    static let clientBackgroundReadsMax = 2

    /// Claims a slot for a client-requested background read; returns its release (call it once
    /// from the thread that finishes the read), or nil when `clientBackgroundReadsMax` run.
    func claimClientRead() -> (@Sendable () -> Void)? {
        let counter = clientBackgroundReads
        let claimed = counter.withLockedValue { n -> Bool in
            guard n < Self.clientBackgroundReadsMax else { return false }
            n += 1
            return true
        }
        guard claimed else { return nil }
        return { counter.withLockedValue { $0 -= 1 } }
    }

    func clientReadsBusy(_ id: UInt64) -> ClientResponse {
        ClientResponse(id: id, status: .busy, message: "\(Self.clientBackgroundReadsMax) backups or hashes are running on this node; retry")
    }

    /// Streams a consistent snapshot of the state tables to a client (`synod snapshot save`):
    /// a header (applied index, revision, and the snapshot's SHA-256, `SnapshotFile.Digest`), then
    /// chunks, all from one LMDB read transaction.
    /// The read and the encoding run on a background thread (lowest priority): a backup of a
    /// large state must not stall the node for the seconds it takes.
    func streamSnapshot(_ id: UInt64, _ c: ClientConnection) {
        let store = self.store
        let damage = configuration.testingDamageBackups
        readForClient("backup", id, c) {
            do {
                let (manifest, chunks) = try KVNodeStateMachine.readSnapshot(store, chunkBytesMax: 1 << 20)
                let revision = try KVStateMachine.revision(inSnapshot: chunks, tables: store.tables)
                let encoded = chunks.map { SnapshotCodec.encode([$0]) }
                var digest = SnapshotFile.Digest(appliedIndex: manifest.appliedIndex, revision: revision)
                for e in encoded { digest.update(e) }
                var header = ByteWriter()
                header.u64(manifest.appliedIndex.rawValue)
                header.u64(UInt64(bitPattern: revision))
                var announced = digest.finalize()
                if damage { announced[0] ^= 0x01 }
                header.raw(announced)
                c.send([ClientResponse(id: id, status: .ok, body: header.bytes)]
                       + encoded.map { ClientResponse(id: id, status: .snapshotChunk, body: $0) })
            } catch {
                c.send(ClientResponse(id: id, status: .internalError, message: "snapshot: \(error)"))
            }
        }
    }
}
