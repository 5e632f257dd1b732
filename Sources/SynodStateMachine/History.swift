import SynodCore

/// One page of watch history.
public struct HistoryPage: Hashable, Sendable {
    /// Matching changes, in revision order, whole revisions only.
    public var events: [WatchEvent]
    /// Where the next page starts: every change below this revision has been considered.
    /// Equal to the current revision + 1 when the page reached the present.
    public var nextRevision: Int64
    public init(events: [WatchEvent], nextRevision: Int64) { self.events = events; self.nextRevision = nextRevision }
}

/// Watch history: the `revisions` table read in order.
enum History {
    /// Reads changes at revisions >= `start` to keys in the etcd range (`key`, `rangeEnd`).
    /// Stops after the revision in which the `limit`-th event falls (never splitting a revision),
    /// or at a revision boundary once `scanRecordsMax` records were examined or the matching
    /// events' keys and values reached `bytesMax`.
    static func page(from start: Int64, key: [UInt8], rangeEnd: [UInt8], limit: Int, scanRecordsMax: Int, bytesMax: Int = .max,
                     current: Int64, compacted: Int64, in r: any StateReader) throws -> HistoryPage {
        guard start >= 1 else { throw KVError.invalidRequest("history starts at a revision >= 1, not \(start)") }
        let oldest = max(compacted, 1)
        if start < oldest { throw KVError.compacted(requested: start, oldestAvailable: oldest) }
        try Validation.bound(key)
        try Validation.bound(rangeEnd)
        let cap = limit <= 0 ? KVLimits.historyEventsMax : min(limit, KVLimits.historyEventsMax)
        var stored: [(RevisionKey, StoredEvent)] = []
        var failure: DecodeError?
        var next = current + 1
        var scanned = 0
        var bytes = 0
        var lastMain: Int64 = start
        try r.scan(Tables.revisions, from: RevisionKey(main: start, sub: 0).bytes, limit: Int.max) { k, v in
            do throws(DecodeError) {
                let position = try RevisionKey(k)
                if position.main != lastMain {
                    // At a revision boundary: stop here if the page is full or a budget is spent.
                    if stored.count >= cap || scanned >= scanRecordsMax || bytes >= bytesMax {
                        next = position.main
                        return false
                    }
                    lastMain = position.main
                }
                scanned += 1
                let e = try StoredEvent.decode(v)
                if KeyRange.contains(e.kv.key, key: key, rangeEnd: rangeEnd) {
                    stored.append((position, e))
                    bytes += e.kv.key.count + e.kv.value.count
                }
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
        return HistoryPage(events: out, nextRevision: next)
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
