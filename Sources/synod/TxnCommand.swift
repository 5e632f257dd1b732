import ArgumentParser
import SynodClient
import SynodStateMachine

/// `synod txn --if 'value(k) = v' --then 'put k v2' --else 'get k'`: compare-and-swap.
struct TxnCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "txn", abstract: "Run a transaction: if every --if holds, the --then ops, else the --else ops.",
        discussion: """
            Compares: value(KEY) OP TEXT, version(KEY) OP N, create(KEY) OP N, mod(KEY) OP N, lease(KEY) OP HEX_ID, exists(KEY), \
            missing(KEY); OP is one of = != < >. Ops: 'put KEY VALUE', 'del KEY', 'get KEY'. \
            Example: synod txn --if 'version(lock) = 0' --then 'put lock me' --else 'get lock'
            """)
    @OptionGroup var globals: GlobalOptions
    @Option(name: .customLong("if"), help: "A compare (repeatable).") var compares: [String] = []
    @Option(name: .customLong("then"), help: "An op when every compare holds (repeatable).") var success: [String] = []
    @Option(name: .customLong("else"), help: "An op otherwise (repeatable).") var failure: [String] = []

    func validate() throws {
        _ = try parsed()
    }

    func parsed() throws -> Txn {
        Txn(compares: try compares.map(Self.compare), success: try success.map(Self.op), failure: try failure.map(Self.op))
    }

    static func compare(_ s: String) throws -> Compare {
        let t = s.trimmingCharacters(in: .whitespaces)
        func inner(_ prefix: String) -> String? {
            guard t.hasPrefix(prefix + "("), let close = t.firstIndex(of: ")") else { return nil }
            return String(t[t.index(t.startIndex, offsetBy: prefix.count + 1)..<close])
        }
        if let k = inner("exists"), t.hasSuffix(")") { return Compare(key: bytes(k), .equal, .exists(true)) }
        if let k = inner("missing"), t.hasSuffix(")") { return Compare(key: bytes(k), .equal, .exists(false)) }
        for (name, make) in [("value", 0), ("version", 1), ("create", 2), ("mod", 3), ("lease", 4)] {
            guard let key = inner(name), let close = t.firstIndex(of: ")") else { continue }
            let rest = t[t.index(after: close)...].trimmingCharacters(in: .whitespaces)
            let ops: [(String, CompareOp)] = [("!=", .notEqual), ("=", .equal), ("<", .less), (">", .greater)]
            guard let (sym, op) = ops.first(where: { rest.hasPrefix($0.0) }) else { break }
            let operand = rest.dropFirst(sym.count).trimmingCharacters(in: .whitespaces)
            if make == 0 { return Compare(key: bytes(key), op, .value(bytes(operand))) }
            if make == 4 {
                // A lease id in hex, as `lease grant` prints it; 0: no lease.
                guard let id = UInt64(operand, radix: 16) else { throw ValidationError("--if '\(s)': '\(operand)' is not a lease id (hex)") }
                return Compare(key: bytes(key), op, .lease(id == 0 ? nil : LeaseID(id)))
            }
            guard let n = Int64(operand) else { throw ValidationError("--if '\(s)': '\(operand)' is not a number") }
            return Compare(key: bytes(key), op, make == 1 ? .version(n) : make == 2 ? .createRevision(n) : .modRevision(n))
        }
        throw ValidationError("--if '\(s)' is not a compare; e.g. 'value(k) = v', 'version(k) > 0', 'lease(k) = 694d71dc4a1d2d3d', 'exists(k)'")
    }

    static func op(_ s: String) throws -> TxnOp {
        let parts = s.split(separator: " ", maxSplits: 2).map(String.init)
        switch (parts.first, parts.count) {
        case ("put", 3): return .put(key: bytes(parts[1]), value: bytes(parts[2]), lease: nil, prevKV: false)
        case ("del", 2): return .delete(key: bytes(parts[1]), prevKV: false)
        case ("get", 2): return .range(RangeRequest(key: bytes(parts[1])))
        default: throw ValidationError("'\(s)' is not an op; use 'put KEY VALUE', 'del KEY' or 'get KEY'")
        }
    }

    func run() async throws {
        let txn = try parsed()
        let r = try await withClient(globals) { try await $0.txn(txn) }
        var lines: [String] = []
        var items: [String] = []
        for result in r.results {
            switch result {
            case let .put(p): lines.append("OK"); items.append(JSON.object([("put", "\(p.revision)")]))
            case let .delete(d): lines.append("\(d.deleted)"); items.append(JSON.object([("deleted", "\(d.deleted)")]))
            case let .range(g):
                for kv in g.kvs { lines.append(text(kv.key)); lines.append(text(kv.value)) }
                items.append(JSON.object([("kvs", JSON.array(g.kvs.map(json)))]))
            }
        }
        if globals.output == .json {
            print(JSON.object([("revision", "\(r.revision)"), ("succeeded", "\(r.succeeded)"), ("results", JSON.array(items))]))
        } else {
            print(r.succeeded ? "SUCCESS" : "FAILURE")
            for l in lines { print(l) }
        }
    }
}
