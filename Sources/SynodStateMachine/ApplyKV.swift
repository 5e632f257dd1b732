import SynodCore

// Applying KV commands: put, delete, delete-range and transactions. Each validates first, then
// writes, so a failing command changes nothing.

extension ApplyContext {
    func applyPut(_ key: [UInt8], _ value: [UInt8], lease: LeaseID?, prevKV: Bool) throws -> Response {
        do throws(KVError) {
            try Validation.writableKey(key)
            try Validation.value(value)
        } catch { return .failure(error) }
        if let lease, try !leaseExists(lease) { return .failure(.leaseNotFound(lease)) }
        let prev = try put(key, value, lease: lease, wantPrevious: prevKV)
        return .put(PutResult(revision: revisionAfterCommand, prevKV: prevKV ? prev : nil))
    }

    /// etcd's `ignore_value` / `ignore_lease`: the key must exist; its current value and/or lease
    /// are written again with a new revision (version + 1), as a put of them would.
    func applyPutIgnoring(_ key: [UInt8], _ value: [UInt8], lease: LeaseID?, prevKV: Bool, ignoreValue: Bool, ignoreLease: Bool) throws -> Response {
        do throws(KVError) {
            try Validation.writableKey(key)
            try Validation.value(value)
            if ignoreValue && !value.isEmpty { throw .invalidRequest("value is provided with ignore_value") }
            if ignoreLease && lease != nil { throw .invalidRequest("lease is provided with ignore_lease") }
        } catch { return .failure(error) }
        guard let current = try kv(key) else { return .failure(.invalidRequest("key not found (ignore_value and ignore_lease rewrite an existing key)")) }
        let keptLease = ignoreLease ? current.kv.lease : lease
        if !ignoreLease, let lease, try !leaseExists(lease) { return .failure(.leaseNotFound(lease)) }
        let keptValue = ignoreValue ? try current.loadingValue(from: w).value : value
        let prev = try put(key, keptValue, lease: keptLease, wantPrevious: prevKV)
        return .put(PutResult(revision: revisionAfterCommand, prevKV: prevKV ? prev : nil))
    }

    func applyDelete(_ key: [UInt8], prevKV: Bool) throws -> Response {
        do throws(KVError) { try Validation.key(key) } catch { return .failure(error) }
        let result = try deleteOp(key, prevKV: prevKV)
        return .delete(DeleteResult(revision: revisionAfterCommand, deleted: result.deleted, prevKVs: result.prevKVs))
    }

    func applyDeleteRange(_ from: [UInt8], _ to: [UInt8], prevKV: Bool) throws -> Response {
        do throws(KVError) {
            try Validation.key(from)
            try Validation.bound(to)
        } catch { return .failure(error) }
        let result = try deleteRangeOp(from, to, prevKV: prevKV)
        return .delete(DeleteResult(revision: revisionAfterCommand, deleted: result.deleted, prevKVs: result.prevKVs))
    }

    /// The revision the response header carries: the revision once this command is done.
    var revisionAfterCommand: Int64 { changes > 0 ? revision + 1 : revision }

    func deleteOp(_ key: [UInt8], prevKV: Bool) throws -> (deleted: Int64, prevKVs: [KeyValue]) {
        guard let old = try delete(key, wantPrevious: prevKV) else { return (0, []) }
        return (1, prevKV ? [old] : [])
    }

    func deleteRangeOp(_ from: [UInt8], _ to: [UInt8], prevKV: Bool) throws -> (deleted: Int64, prevKVs: [KeyValue]) {
        var prevs: [KeyValue] = []
        var n: Int64 = 0
        for k in try keys(from: from, to: to) {
            if let old = try delete(k, wantPrevious: prevKV) {
                n += 1
                if prevKV { prevs.append(old) }
            }
        }
        return (n, prevs)
    }

    // MARK: Transactions

    func applyTxn(_ txn: Txn) throws -> Response {
        do throws(KVError) { try Validation.txn(txn) } catch { return .failure(error) }
        var succeeded = true
        for c in txn.compares where try !holds(c) {
            succeeded = false
            break
        }
        let ops = succeeded ? txn.success : txn.failure
        for op in ops {
            if case let .put(_, _, lease?, _) = op, try !leaseExists(lease) { return .failure(.leaseNotFound(lease)) }
        }
        if let refusal = try orderedRangeRefusal(ops) { return .failure(refusal) }
        var results: [TxnOpResult] = []
        var budget = OrderedRangeBudget()
        for op in ops { results.append(try apply(op, budget: &budget)) }
        // Ranges inside the txn ran before its revision was final; give them the txn's revision.
        let final = revisionAfterCommand
        results = results.map { r in
            switch r {
            case var .put(p): p.revision = final; return .put(p)
            case var .delete(d): d.revision = final; return .delete(d)
            case var .range(g): g.revision = final; return .range(g)
            }
        }
        return .txn(TxnResult(revision: final, succeeded: succeeded, results: results))
    }

    private func apply(_ op: TxnOp, budget: inout OrderedRangeBudget) throws -> TxnOpResult {
        switch op {
        case let .put(key, value, lease, prevKV):
            let prev = try put(key, value, lease: lease, wantPrevious: prevKV)
            return .put(PutResult(revision: 0, prevKV: prevKV ? prev : nil))
        case let .delete(key, prevKV):
            let r = try deleteOp(key, prevKV: prevKV)
            return .delete(DeleteResult(revision: 0, deleted: r.deleted, prevKVs: r.prevKVs))
        case let .deleteRange(from, to, prevKV):
            let r = try deleteRangeOp(from, to, prevKV: prevKV)
            return .delete(DeleteResult(revision: 0, deleted: r.deleted, prevKVs: r.prevKVs))
        case let .range(request):
            guard request.needsOrdering else { return .range(try RangeReader.rangeCurrent(request, in: w, revision: 0)) }
            switch try RangeReader.rangeOrdered(request, in: w, revision: 0, budget: &budget) {
            case let .range(r): return .range(r)
            // `orderedRangeRefusal` ran this range with room for every write of the branch.
            case let other: throw StoreError.corrupt("a sorted range inside a transaction was refused after the check before it: \(other)")
            }
        }
    }

    /// Why the sorted or filtered ranges in `ops` could pass their shared budget while the
    /// transaction runs, or nil. Checked before the first op writes anything (a transaction
    /// applies whole or not at all): the ranges are read now against one budget that leaves, for
    /// each, room for every key and value byte the branch's puts could add before it runs.
    private func orderedRangeRefusal(_ ops: [TxnOp]) throws -> KVError? {
        var putBytes = 0
        for case let .put(_, value, _, _) in ops { putBytes += value.count }
        let ordered = ops.compactMap { op -> RangeRequest? in
            guard case let .range(r) = op, r.needsOrdering else { return nil }
            return r
        }
        guard !ordered.isEmpty else { return nil }
        var budget = OrderedRangeBudget(keys: KVLimits.orderedRangeKeysMax - ordered.count * KVLimits.txnOpsMax,
                                        valueBytes: KVLimits.orderedRangeValueBytesMax - ordered.count * putBytes)
        for r in ordered {
            if case let .failure(e) = try RangeReader.rangeOrdered(r, in: w, revision: 0, budget: &budget) { return e }
        }
        return nil
    }

    /// Evaluates one compare against the current state, etcd's way: a missing key has version,
    /// create and mod revision 0 and no lease, and no value compare on it holds.
    func holds(_ c: Compare) throws -> Bool {
        let stored = try kv(c.key)
        let current = stored?.kv
        switch c.target {
        case let .value(v):
            guard let cur = try stored?.loadingValue(from: w).value else { return false }
            return Self.compare(cur, v, c.op)
        case let .version(v): return Self.compare(current?.version ?? 0, v, c.op)
        case let .createRevision(v): return Self.compare(current?.createRevision ?? 0, v, c.op)
        case let .modRevision(v): return Self.compare(current?.modRevision ?? 0, v, c.op)
        case let .exists(v): return Self.compare(current != nil ? 1 : 0, v ? 1 : 0, c.op)
        case let .lease(id):
            // As etcd's int64 ids; a missing key, like a key without a lease, has lease 0.
            return Self.compare(Int64(bitPattern: current?.lease?.rawValue ?? 0), Int64(bitPattern: id?.rawValue ?? 0), c.op)
        }
    }

    static func compare(_ a: Int64, _ b: Int64, _ op: CompareOp) -> Bool {
        switch op {
        case .equal: return a == b
        case .notEqual: return a != b
        case .less: return a < b
        case .greater: return a > b
        }
    }

    static func compare(_ a: [UInt8], _ b: [UInt8], _ op: CompareOp) -> Bool {
        switch op {
        case .equal: return a == b
        case .notEqual: return a != b
        case .less: return a.lexicographicallyPrecedes(b)
        case .greater: return b.lexicographicallyPrecedes(a)
        }
    }
}
