import SynodCore

// Exactly-once client sessions. The `sessions` table remembers, per client, the last sequence
// applied and its response; `session_lru` orders clients by the log index they last applied at,
// so that past `KVLimits.sessionsMax` clients the least recently active one is evicted — the same
// one on every replica.

extension ApplyContext {
    /// The answer for a command already seen (a retry, or an older sequence), or nil to apply it.
    func sessionAnswer(_ s: ClientSession) throws -> Response? {
        guard let rec = try session(s.clientID) else { return nil }
        if s.sequence > rec.sequence { return nil }
        if s.sequence < rec.sequence {
            return .failure(.staleSession(clientID: s.clientID, sequence: s.sequence, lastApplied: rec.sequence))
        }
        guard let bytes = rec.response else { return .failure(.responseNotCached(clientID: s.clientID, sequence: s.sequence)) }
        do throws(DecodeError) { return try Response.decode(bytes) } catch { throw corrupt(Tables.sessions, error) }
    }

    func recordSession(_ s: ClientSession, index: LogIndex, response: Response) throws {
        let old = try session(s.clientID)
        if let old {
            try w.delete(Tables.sessionLRU, LayoutKeys.lruKey(old.index, s.clientID))
        } else {
            sessionCount += 1
        }
        let bytes = response.encode()
        let rec = StoredSession(sequence: s.sequence, index: index, response: bytes.count <= KVLimits.sessionResponseBytesMax ? bytes : nil)
        try w.put(Tables.sessions, LayoutKeys.sessionKey(s.clientID), rec.encode())
        try w.put(Tables.sessionLRU, LayoutKeys.lruKey(index, s.clientID), [])
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

    private func session(_ client: UInt64) throws -> StoredSession? {
        guard let bytes = try w.get(Tables.sessions, LayoutKeys.sessionKey(client)) else { return nil }
        do throws(DecodeError) { return try StoredSession.decode(bytes) } catch { throw corrupt(Tables.sessions, error) }
    }
}
