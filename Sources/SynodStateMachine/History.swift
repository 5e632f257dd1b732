import SynodCore

/// Watch history: the `revisions` table read in order.
enum History {
    static func events(from start: Int64, key: [UInt8], rangeEnd: [UInt8], limit: Int, current: Int64, compacted: Int64,
                       in r: any StateReader) throws -> [WatchEvent] {
        guard start >= 1 else { throw KVError.invalidRequest("history starts at a revision >= 1, not \(start)") }
        let oldest = max(compacted, 1)
        if start < oldest { throw KVError.compacted(requested: start, oldestAvailable: oldest) }
        try Validation.bound(key)
        try Validation.bound(rangeEnd)
        let cap = limit <= 0 ? KVLimits.historyEventsMax : min(limit, KVLimits.historyEventsMax)
        var stored: [(RevisionKey, StoredEvent)] = []
        var failure: DecodeError?
        var stopAt: Int64 = .max
        try r.scan(Tables.revisions, from: RevisionKey(main: start, sub: 0).bytes, limit: Int.max) { k, v in
            do throws(DecodeError) {
                let position = try RevisionKey(k)
                if position.main >= stopAt { return false }
                let e = try StoredEvent.decode(v)
                guard KeyRange.contains(e.kv.key, key: key, rangeEnd: rangeEnd) else { return true }
                // Whole revisions only: once full, finish this revision and stop.
                if stored.count >= cap, let last = stored.last, last.0.main != position.main { return false }
                stored.append((position, e))
                if stored.count >= cap { stopAt = position.main + 1 }
            } catch {
                failure = error
                return false
            }
            return true
        }
        if let failure { throw corrupt(Tables.revisions, failure) }
        var out: [WatchEvent] = []
        out.reserveCapacity(stored.count)
        for (position, e) in stored {
            out.append(WatchEvent(type: e.type, kv: e.kv, prevKV: try previous(e.previous, in: r), revision: position.main))
        }
        return out
    }

    /// The key's earlier version, if history still holds it.
    static func previous(_ position: RevisionKey, in r: any StateReader) throws -> KeyValue? {
        guard position != .zero, let bytes = try r.get(Tables.revisions, position.bytes) else { return nil }
        do throws(DecodeError) {
            let e = try StoredEvent.decode(bytes)
            return e.type == .put ? e.kv : nil
        } catch { throw corrupt(Tables.revisions, error) }
    }
}
