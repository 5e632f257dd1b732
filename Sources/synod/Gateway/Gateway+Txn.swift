import Foundation
import SynodClient
import SynodCore
import SynodStateMachine

// Transactions in etcd's JSON: compares, and branches of put / range / delete-range requests.
extension Gateway {
    /// An enum field as grpc-gateway accepts it: its name, or its number.
    static func enumField(_ f: JSONFields, _ name: String, _ names: [String]) throws(GatewayError) -> Int {
        guard let raw = f.object[name], !(raw is NSNull) else { return 0 }
        if let s = raw as? String {
            if let i = names.firstIndex(of: s) { return i }
            if let i = Int(s), names.indices.contains(i) { return i }
        } else if let n = raw as? NSNumber, !JSONFields.isBool(n), names.indices.contains(n.intValue), Double(n.intValue) == n.doubleValue {
            return n.intValue
        }
        throw .invalid("\(name) must be one of \(names.joined(separator: ", "))")
    }

    /// etcd's Compare: target VERSION (0), CREATE, MOD, VALUE (LEASE is not supported); result
    /// EQUAL (0), GREATER, LESS, NOT_EQUAL.
    func compare(_ f: JSONFields) throws(GatewayError) -> Compare {
        try f.check(known: ["key", "target", "result", "version", "create_revision", "mod_revision", "value"], unsupported: ["range_end", "lease"])
        let key = try f.bytes("key")
        guard !key.isEmpty else { throw .invalid("a compare's key is not provided") }
        let target: CompareTarget
        switch try Self.enumField(f, "target", ["VERSION", "CREATE", "MOD", "VALUE", "LEASE"]) {
        case 0: target = .version(try f.int64("version"))
        case 1: target = .createRevision(try f.int64("create_revision"))
        case 2: target = .modRevision(try f.int64("mod_revision"))
        case 3: target = .value(try f.bytes("value"))
        default: throw .unsupported("compares on a key's lease are not supported")
        }
        let op: CompareOp
        switch try Self.enumField(f, "result", ["EQUAL", "GREATER", "LESS", "NOT_EQUAL"]) {
        case 0: op = .equal
        case 1: op = .greater
        case 2: op = .less
        default: op = .notEqual
        }
        return Compare(key: key, op, target)
    }

    /// One RequestOp: exactly one of `request_put`, `request_range`, `request_delete_range`.
    func txnOp(_ f: JSONFields) throws(GatewayError) -> TxnOp {
        try f.check(known: ["request_put", "request_range", "request_delete_range"], unsupported: ["request_txn"])
        let present = ["request_put", "request_range", "request_delete_range"].filter { f.object[$0] != nil }
        guard present.count == 1 else { throw .invalid("a transaction operation holds exactly one request, not \(present.count)") }
        if let p = try f.fields("request_put") {
            try p.check(known: ["key", "value", "lease", "prev_kv"], unsupported: ["ignore_value", "ignore_lease"])
            let key = try p.bytes("key")
            guard !key.isEmpty else { throw .invalid("key is not provided") }
            return .put(key: key, value: try p.bytes("value"), lease: Self.lease(try p.int64("lease")), prevKV: try p.bool("prev_kv"))
        }
        if let r = try f.fields("request_range") { return .range(try rangeRequest(r, inTxn: true)) }
        guard let d = try f.fields("request_delete_range") else { throw .invalid("a transaction operation holds exactly one request") }
        let op = try deleteOp(d)
        guard let end = op.end else { return .delete(key: op.key, prevKV: op.prevKV) }
        return .deleteRange(from: op.key, to: end, prevKV: op.prevKV)
    }

    func txn(_ f: JSONFields) async throws -> [String: Any] {
        try f.check(known: ["compare", "success", "failure"])
        var compares: [Compare] = [], success: [TxnOp] = [], failure: [TxnOp] = []
        for c in try f.list("compare") { compares.append(try compare(c)) }
        for o in try f.list("success") { success.append(try txnOp(o)) }
        for o in try f.list("failure") { failure.append(try txnOp(o)) }
        let r = try await client.txn(Txn(compares: compares, success: success, failure: failure))
        var o: [String: Any] = ["header": header(r.revision)]
        if r.succeeded { o["succeeded"] = true }
        if !r.results.isEmpty {
            o["responses"] = r.results.map { result -> [String: Any] in
                switch result {
                case let .put(p): return ["response_put": putBody(p)]
                case let .delete(d): return ["response_delete_range": deleteBody(d)]
                case let .range(rr): return ["response_range": rangeBody(rr)]
                }
            }
        }
        return o
    }
}
