import SynodCore

/// Range reads over any consistent view of the tables (a read transaction, or the writer of an
/// apply so a transaction sees its own earlier writes).
enum RangeReader {
    /// Serves `request` at the current revision or, if asked, at a past one still in history.
    static func range(_ request: RangeRequest, in reader: any StateReader, current: Int64, compacted: Int64) throws -> Response {
        do throws(KVError) { try Validation.range(request) } catch { return .failure(error) }
        let at = request.revision ?? 0
        if at == 0 || at == current {
            if request.needsOrdering {
                var budget = OrderedRangeBudget()
                return try rangeOrdered(request, in: reader, revision: current, budget: &budget)
            }
            return .range(try rangeCurrent(request, in: reader, revision: current))
        }
        if at < 0 { return .failure(.invalidRequest("negative revision \(at)")) }
        if at > current { return .failure(.futureRevision(requested: at, current: current)) }
        if at < compacted { return .failure(.compacted(requested: at, oldestAvailable: compacted)) }
        return try rangePast(request, at: at, in: reader)
    }

    static func limit(_ request: RangeRequest) -> Int {
        request.limit == 0 ? KVLimits.rangeLimitMax : min(request.limit, KVLimits.rangeLimitMax)
    }

    static func rangeCurrent(_ request: RangeRequest, in reader: any StateReader, revision: Int64) throws -> RangeResult {
        let limit = limit(request)
        // Pass 1: the matching keys (counted all; records kept up to `limit`, and within the byte
        // budget by record size: format-1 records still carry values of up to 1 MiB).
        var records: [StoredKV] = []
        var recordBytes = 0
        var count: Int64 = 0
        var more = false
        var failure: DecodeError?
        try reader.scan(Tables.kv, from: request.key, limit: Int.max) { k, v in
            guard KeyRange.contains(k, key: request.key, rangeEnd: request.rangeEnd) else { return false }
            count += 1
            if request.countOnly { return !request.rangeEnd.isEmpty }
            if records.count < limit && (records.isEmpty || recordBytes + k.count + v.count <= KVLimits.rangeResponseBytesMax) {
                do throws(DecodeError) { records.append(try StoredKV.decode(key: k, v)) } catch {
                    failure = error
                    return false
                }
                recordBytes += k.count + v.count
            } else {
                more = true
            }
            return !request.rangeEnd.isEmpty
        }
        if let failure { throw corrupt(Tables.kv, failure) }
        // Pass 2: values (stored once, in `revisions`), within the response byte budget.
        let (kvs, cut) = try withValues(records, keysOnly: request.keysOnly, from: reader)
        more = more || cut
        return RangeResult(revision: revision, kvs: kvs, count: count, more: more)
    }

    /// The key-values of `stored`, values loaded (left empty for `keysOnly`) while they fit the
    /// response byte budget — the first always — and whether any were left out for it.
    static func withValues(_ stored: some Collection<StoredKV>, keysOnly: Bool, from reader: any StateReader) throws -> (kvs: [KeyValue], cut: Bool) {
        var kvs: [KeyValue] = []
        kvs.reserveCapacity(stored.count)
        var bytes = 0
        for s in stored {
            var kv = keysOnly ? s.kv : try s.loadingValue(from: reader)
            if keysOnly { kv.value = [] }
            let size = kv.key.count + kv.value.count
            if !kvs.isEmpty && bytes + size > KVLimits.rangeResponseBytesMax { return (kvs, true) }
            bytes += size
            kvs.append(kv)
        }
        return (kvs, false)
    }

    /// Replays history up to `at` to find each key's latest change at or below it. Compaction
    /// keeps the latest change of every live key, so this is exact for any revision >= the
    /// compaction revision.
    static func rangePast(_ request: RangeRequest, at: Int64, in reader: any StateReader) throws -> Response {
        var latest: [[UInt8]: StoredEvent] = [:]
        var scanned = 0
        var failure: DecodeError?
        try reader.scan(Tables.revisions, from: [], limit: KVLimits.historyScanRecordsMax + 1) { k, v in
            scanned += 1
            guard scanned <= KVLimits.historyScanRecordsMax else { return false }
            do throws(DecodeError) {
                guard try RevisionKey(k).main <= at else { return false }
                let e = try StoredEvent.decode(v)
                if KeyRange.contains(e.kv.key, key: request.key, rangeEnd: request.rangeEnd) { latest[e.kv.key] = e }
            } catch {
                failure = error
                return false
            }
            return true
        }
        if let failure { throw corrupt(Tables.revisions, failure) }
        if scanned > KVLimits.historyScanRecordsMax { return .failure(.historyTooLarge(limit: KVLimits.historyScanRecordsMax)) }
        // Sorted so Dictionary order never reaches the answer.
        let live = latest.keys.sorted { $0.lexicographicallyPrecedes($1) }.compactMap { k -> KeyValue? in
            guard let e = latest[k], e.type == .put else { return nil }
            return e.kv
        }
        let (chosen, more) = request.orderedAndLimited(live, limit: limit(request))
        var kvs = request.countOnly ? [] : chosen
        if request.keysOnly { for i in kvs.indices { kvs[i].value = [] } }
        return .range(RangeResult(revision: at, kvs: kvs, count: Int64(live.count), more: !request.countOnly && more))
    }
}
