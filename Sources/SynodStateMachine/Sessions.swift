import SynodCore

// Exactly-once client sessions. The `sessions` table remembers, per client, the last sequence
// applied and its response; `session_lru` orders clients by the log index their record was last
// refreshed at, so that past `KVLimits.sessionsMax` clients the least recently active one is
// evicted — the same one on every replica.
//
// Invariant: a session record's `index` is its `session_lru` key's index, and that index is within
// `KVLimits.sessionLRURefreshEntries` of the client's last applied command: the LRU key moves only
// when it has fallen that far behind, so a busy client costs one B-tree update per command (its
// record), not three (measured: session upkeep was a third of a follower's apply).

extension ApplyContext {
    /// The answer for a command already seen (a retry, or an older sequence), or nil to apply it.
    /// The user a session record written now belongs to: the command's sender, from cluster
    /// version 3 on while auth is enabled (nil otherwise: the record stays format 1).
    func sessionOwner(_ principal: AuthPrincipal?) -> String? {
        guard clusterVersion >= KVStateMachine.sessionOwnerClusterVersion, auth.enabled, let principal, !principal.isAnonymous else { return nil }
        return principal.user
    }

    /// Why `principal` may not use `s`, or nil: while auth is enabled a session whose record
    /// names an owner is that user's alone — a retry answered from the record would hand its
    /// cached response (a transaction's reads included) to whoever guessed the client id, and a
    /// new command would take the session over. Refused before anything is read or written.
    func sessionOwnerRefusal(_ s: ClientSession, stored: StoredSession?, principal: AuthPrincipal?) -> KVError? {
        guard let owner = stored?.owner, auth.enabled, !testingAuthUnchecked,
              clusterVersion >= KVStateMachine.sessionOwnerClusterVersion, owner != principal?.user else { return nil }
        return .permissionDenied("client session \(s.clientID) belongs to another user")
    }

    func sessionAnswer(_ s: ClientSession, stored rec: StoredSession?) throws -> Response? {
        guard let rec else { return nil }
        if s.sequence > rec.sequence { return nil }
        if s.sequence < rec.sequence {
            return .failure(.staleSession(clientID: s.clientID, sequence: s.sequence, lastApplied: rec.sequence))
        }
        guard let bytes = rec.response else { return .failure(.responseNotCached(clientID: s.clientID, sequence: s.sequence)) }
        do throws(DecodeError) { return try Response.decode(bytes) } catch { throw corrupt(Tables.sessions, error) }
    }

    /// Records that `s` applied at `index` with `response`; `old` is the record `session` read
    /// before the command ran (nothing in between writes a session).
    func recordSession(_ s: ClientSession, index: LogIndex, response: Response, old: StoredSession?, owner: String? = nil) throws {
        var lruIndex = index
        if let old {
            if index.rawValue &- old.index.rawValue < KVLimits.sessionLRURefreshEntries {
                lruIndex = old.index
            } else {
                try w.delete(Tables.sessionLRU, LayoutKeys.lruKey(old.index, s.clientID))
            }
        } else {
            sessionCount += 1
        }
        let bytes = response.encode()
        let rec = StoredSession(sequence: s.sequence, index: lruIndex, response: bytes.count <= KVLimits.sessionResponseBytesMax ? bytes : nil, owner: owner)
        try w.put(Tables.sessions, LayoutKeys.sessionKey(s.clientID), rec.encode())
        if lruIndex == index { try w.put(Tables.sessionLRU, LayoutKeys.lruKey(index, s.clientID), []) }
        while sessionCount > Int64(KVLimits.sessionsMax) { try evictOldestSession() }
    }

    private func evictOldestSession() throws {
        var oldest: [UInt8]?
        try w.scan(Tables.sessionLRU, from: [], limit: 1) { k, _ in oldest = k; return false }
        guard let k = oldest, k.count == 16 else { throw StoreError.corrupt("session_lru is empty or damaged while \(sessionCount) sessions are counted") }
        try w.delete(Tables.sessionLRU, k)
        try w.delete(Tables.sessions, Array(k[8...]))
        sessionCount -= 1
    }

    /// The client's stored session, read once per command: `sessionAnswer` and `recordSession` both take it.
    func session(_ client: UInt64) throws -> StoredSession? {
        guard let bytes = try w.get(Tables.sessions, LayoutKeys.sessionKey(client)) else { return nil }
        do throws(DecodeError) { return try StoredSession.decode(bytes) } catch { throw corrupt(Tables.sessions, error) }
    }
}
