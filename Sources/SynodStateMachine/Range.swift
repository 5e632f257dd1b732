import SynodCore

/// Range reads over any consistent view of the tables (a read transaction, or the writer of an
/// apply so a transaction sees its own earlier writes).
enum RangeReader {
    /// Serves `request` at the current revision or, if asked, at a past one still in history.
    static func range(_ request: RangeRequest, in reader: any StateReader, current: Int64, compacted: Int64) throws -> Response {
        do throws(KVError) { try Validation.range(request) } catch { return .failure(error) }
        let at = request.revision ?? 0
        if at == 0 || at == current { return .range(try rangeCurrent(request, in: reader, revision: current)) }
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
        var raw: [([UInt8], [UInt8])] = []
        var rawBytes = 0
        var count: Int64 = 0
        var more = false
        try reader.scan(Tables.kv, from: request.key, limit: Int.max) { k, v in
            guard KeyRange.contains(k, key: request.key, rangeEnd: request.rangeEnd) else { return false }
            count += 1
            if request.countOnly { return !request.rangeEnd.isEmpty }
            if raw.count < limit && (raw.isEmpty || rawBytes + k.count + v.count <= KVLimits.rangeResponseBytesMax) {
                raw.append((k, v))
                rawBytes += k.count + v.count
            } else {
                more = true
            }
            return !request.rangeEnd.isEmpty
        }
        // Pass 2: values (stored once, in `revisions`), within the response byte budget; the
        // first key-value is always returned.
        var kvs: [KeyValue] = []
        kvs.reserveCapacity(raw.count)
        var bytes = 0
        for (k, v) in raw {
            let stored: StoredKV
            do throws(DecodeError) { stored = try StoredKV.decode(key: k, v) } catch { throw corrupt(Tables.kv, error) }
            var kv = request.keysOnly ? stored.kv : try stored.loadingValue(from: reader)
            if request.keysOnly { kv.value = [] }
            let size = kv.key.count + kv.value.count
            if !kvs.isEmpty && bytes + size > KVLimits.rangeResponseBytesMax {
                more = true
                break
            }
            bytes += size
            kvs.append(kv)
        }
        return RangeResult(revision: revision, kvs: kvs, count: count, more: more)
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
        let limit = limit(request)
        var kvs = request.countOnly ? [] : Array(live.prefix(limit))
        if request.keysOnly { for i in kvs.indices { kvs[i].value = [] } }
        return .range(RangeResult(revision: at, kvs: kvs, count: Int64(live.count), more: !request.countOnly && live.count > kvs.count))
    }
}
