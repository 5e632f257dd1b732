import SynodCore

// etcd's range ordering and revision filters (`RangeRequest.sort_order`, `sort_target`,
// `min_mod_revision`, `max_mod_revision`, `min_create_revision`, `max_create_revision`), with
// etcd's rules: a filtered or sorted range considers every key of the range, keeps those the
// filters admit, sorts them, and only then applies the limit; `count` stays the number of keys in
// the range (filters not applied), as etcd's does; `countOnly` ignores ordering and filters.
//
// Unlike etcd (whose sort is not stable), ties are broken by key, so the answer is one order on
// every replica — a range inside a transaction is part of the replicated outcome — and DESCEND
// is exactly ASCEND reversed. Bounded (`OrderedRangeBudget`, per read or per transaction
// together): at most `KVLimits.orderedRangeKeysMax` admitted keys are held for the sort, and
// sorts by value load at most `KVLimits.orderedRangeValueBytesMax` of values; beyond either the
// answer is `invalidRequest`, never a partial order.

/// How a range's key-values are ordered (etcd's `RangeRequest.SortOrder`; raw values are etcd's).
public enum RangeSortOrder: UInt8, Hashable, Sendable, CaseIterable {
    /// Key order, ascending — unless the target is not the key, which etcd sorts ascending.
    case none = 0
    case ascend = 1
    case descend = 2
}

/// What a range is sorted by (etcd's `RangeRequest.SortTarget`; raw values are etcd's).
public enum RangeSortTarget: UInt8, Hashable, Sendable, CaseIterable {
    case key = 0, version = 1, create = 2, mod = 3, value = 4
}

extension RangeRequest {
    /// Whether any ordering or filter option differs from the default (plain key order). Such
    /// a request encodes an extension older builds cannot read (cluster version 3 in a txn).
    public var hasOrderOptions: Bool {
        sortOrder != .none || sortTarget != .key || minModRevision != 0 || maxModRevision != 0
            || minCreateRevision != 0 || maxCreateRevision != 0
    }

    /// Whether the answer needs the admitted keys gathered and sorted before the limit (the
    /// one rule for reads and for transactions, and for a transaction's check before its
    /// writes): any filter, or an order other than ascending keys — unless only the count is
    /// asked for, which ignores both.
    var needsOrdering: Bool {
        guard !countOnly else { return false }
        return minModRevision != 0 || maxModRevision != 0 || minCreateRevision != 0 || maxCreateRevision != 0
            || effectiveSortOrder == .descend || (effectiveSortOrder == .ascend && sortTarget != .key)
    }

    /// etcd's rule: no order with a target other than the key means ascending.
    var effectiveSortOrder: RangeSortOrder {
        sortOrder == .none && sortTarget != .key ? .ascend : sortOrder
    }

    /// Whether the revision filters admit `kv` (0: no bound).
    func admits(_ kv: KeyValue) -> Bool {
        if maxModRevision != 0 && kv.modRevision > maxModRevision { return false }
        if minModRevision != 0 && kv.modRevision < minModRevision { return false }
        if maxCreateRevision != 0 && kv.createRevision > maxCreateRevision { return false }
        if minCreateRevision != 0 && kv.createRevision < minCreateRevision { return false }
        return true
    }

    /// `items` (ascending by key) in the requested order: by the target, ties by key; DESCEND
    /// is ASCEND reversed.
    func ordered<T>(_ items: [T], _ kv: (T) -> KeyValue) -> [T] {
        let target = sortTarget
        func ascending(_ x: T, _ y: T) -> Bool {
            let (a, b) = (kv(x), kv(y))
            switch target {
            case .key: break
            case .version: if a.version != b.version { return a.version < b.version }
            case .create: if a.createRevision != b.createRevision { return a.createRevision < b.createRevision }
            case .mod: if a.modRevision != b.modRevision { return a.modRevision < b.modRevision }
            case .value: if a.value != b.value { return a.value.lexicographicallyPrecedes(b.value) }
            }
            return a.key.lexicographicallyPrecedes(b.key)
        }
        switch effectiveSortOrder {
        case .none: return items
        case .ascend: return target == .key ? items : items.sorted(by: ascending)
        case .descend: return target == .key ? items.reversed() : items.sorted { ascending($1, $0) }
        }
    }

    /// The admitted key-values of `inKeyOrder` (a range's matches, ascending by key), ordered
    /// and cut to `limit`, and whether any admitted one was left out.
    func orderedAndLimited(_ inKeyOrder: [KeyValue], limit: Int) -> (kvs: [KeyValue], more: Bool) {
        let admitted = ordered(inKeyOrder.filter(admits)) { $0 }
        return (Array(admitted.prefix(limit)), admitted.count > limit)
    }
}

/// What the sorted or filtered ranges of one read, or of one transaction together, may hold:
/// admitted keys, and bytes of values loaded for a sort by value. Charged as they are read.
struct OrderedRangeBudget {
    var keys = KVLimits.orderedRangeKeysMax
    var valueBytes = KVLimits.orderedRangeValueBytesMax
}

extension RangeReader {
    /// `rangeCurrent` for a request that `needsOrdering`: every key of the range is read (its
    /// metadata), the admitted ones are kept (at most `orderedRangeKeysMax`), values are loaded
    /// first only for a sort by value (within `orderedRangeValueBytesMax`), then the order and
    /// the limit, then the values of what is returned, within the response's byte budget.
    static func rangeOrdered(_ request: RangeRequest, in reader: any StateReader, revision: Int64, budget: inout OrderedRangeBudget) throws -> Response {
        var admitted: [StoredKV] = []
        var count: Int64 = 0
        var failure: DecodeError?
        var tooMany = false
        try reader.scan(Tables.kv, from: request.key, limit: Int.max) { k, v in
            guard KeyRange.contains(k, key: request.key, rangeEnd: request.rangeEnd) else { return false }
            count += 1
            var stored: StoredKV
            do throws(DecodeError) { stored = try StoredKV.decode(key: k, v) } catch {
                failure = error
                return false
            }
            if request.admits(stored.kv) {
                guard budget.keys > 0 else {
                    tooMany = true
                    return false
                }
                budget.keys -= 1
                // Metadata only: a format-1 record's inline value (up to 1 MiB) is read again
                // from `revisions` if it is returned, as a format-2 record's is.
                if stored.valueLoaded && !stored.kv.value.isEmpty {
                    stored.kv.value = []
                    stored.valueLoaded = false
                }
                admitted.append(stored)
            }
            return !request.rangeEnd.isEmpty
        }
        if let failure { throw corrupt(Tables.kv, failure) }
        if tooMany {
            return .failure(.invalidRequest("the sorted or filtered ranges of a read or a transaction may admit at most \(KVLimits.orderedRangeKeysMax) keys together; narrow the range or the filters"))
        }
        if request.sortTarget == .value && request.effectiveSortOrder != .none {
            for i in admitted.indices {
                admitted[i].kv = try admitted[i].loadingValue(from: reader)
                admitted[i].valueLoaded = true
                budget.valueBytes -= admitted[i].kv.value.count
                guard budget.valueBytes >= 0 else {
                    return .failure(.invalidRequest("ranges sorted by value may hold at most \(KVLimits.orderedRangeValueBytesMax) bytes of values together; narrow the range or the filters"))
                }
            }
        }
        let sorted = request.ordered(admitted) { $0.kv }
        let chosen = sorted.prefix(limit(request))
        let (out, cut) = try withValues(chosen, keysOnly: request.keysOnly, from: reader)
        let more = sorted.count > chosen.count || cut
        return .range(RangeResult(revision: revision, kvs: out, count: count, more: more))
    }
}
