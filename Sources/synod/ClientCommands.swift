import ArgumentParser
import Foundation
import SynodClient
import SynodTransport
import SynodStateMachine
import SynodWire

/// Exit statuses of client commands (documented in docs/OPERATIONS.md).
enum ExitStatus {
    static let notFound: Int32 = 1
    static let unreachable: Int32 = 3
    static let noLeader: Int32 = 4
    static let refused: Int32 = 5
    /// `synod hashkv`: two nodes at the same compaction point hash the same revision differently.
    static let diverged: Int32 = 6
    /// `synod health`: an endpoint cannot serve a linearizable read, or reports an alarm.
    static let unhealthy: Int32 = 7
    /// `synod serve`: the cluster runs a cluster version above what this build supports
    /// (`ClusterVersionUnsupported`); a node stopping for it at run time exits with it too.
    static let clusterVersionUnsupported: Int32 = 78
}

/// Runs a client call, mapping failures to a message and an exit status.
func withClient<T>(_ globals: GlobalOptions, _ body: (SynodClient) async throws -> T) async throws -> T {
    let client = try globals.client()
    do {
        let result = try await body(client)
        await client.close()
        return result
    } catch let e as ClientError {
        await client.close()
        throw clientFailure(nil, e)
    } catch {
        await client.close()
        throw error
    }
}

/// The message and exit status for a client failure (`context` prefixed to the message):
/// unreachable 3, no leader 4, any other client error 5; other errors as they are.
func clientFailure(_ context: String?, _ error: any Error) -> any Error {
    guard let e = error as? ClientError else { return context.map { fail("\($0): \(error)") } ?? error }
    let message = context.map { "\($0): \(e.description)" } ?? e.description
    switch e {
    case .unreachable: return fail(message, status: ExitStatus.unreachable)
    case .noLeader: return fail(message, status: ExitStatus.noLeader)
    default: return fail(message, status: ExitStatus.refused)
    }
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
func text(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }

func json(_ kv: KeyValue) -> String {
    JSON.object([("key", JSON.string(text(kv.key))), ("value", JSON.string(text(kv.value))), ("create_revision", "\(kv.createRevision)"),
                 ("mod_revision", "\(kv.modRevision)"), ("version", "\(kv.version)"), ("lease", "\(kv.lease?.rawValue ?? 0)")])
}

struct PutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "put", abstract: "Put a value under a key.")
    @OptionGroup var globals: GlobalOptions
    @Argument(help: "The key.") var key: String
    @Argument(help: "The value (none with --ignore-value).") var value: String?
    @Option(help: "Attach the key to this lease (hex id, as `lease grant` prints).") var lease: String?
    @Flag(help: "Print the previous value.") var prevKV = false
    @Flag(help: "Keep the key's current value (the key must exist).") var ignoreValue = false
    @Flag(help: "Keep the key's current lease (the key must exist).") var ignoreLease = false

    func validate() throws {
        guard !key.isEmpty else { throw ValidationError("the key must not be empty") }
        if let lease { _ = try LeaseCommand.parseID(lease) }
        if ignoreValue && value != nil { throw ValidationError("--ignore-value takes no VALUE") }
        if !ignoreValue && value == nil { throw ValidationError("missing VALUE (or --ignore-value)") }
        if ignoreLease && lease != nil { throw ValidationError("--ignore-lease and --lease exclude each other") }
    }

    func run() async throws {
        let leaseID = try lease.map(LeaseCommand.parseID)
        let r = try await withClient(globals) { c in
            if ignoreValue || ignoreLease {
                return try await c.put(bytes(key), bytes(value ?? ""), lease: leaseID, prevKV: prevKV, ignoreValue: ignoreValue, ignoreLease: ignoreLease)
            }
            return try await c.put(bytes(key), bytes(value ?? ""), lease: leaseID, prevKV: prevKV)
        }
        switch globals.output {
        case .simple:
            print("OK")
            if let p = r.prevKV { print(text(p.value)) }
        case .json:
            print(JSON.object([("revision", "\(r.revision)"), ("prev_kv", r.prevKV.map(json) ?? "null")]))
        }
    }
}

enum ConsistencyOption: String, ExpressibleByArgument {
    case l, s, linearizable, serializable
    var value: Consistency { self == .s || self == .serializable ? .serializable : .linearizable }
}

/// etcdctl's `get --order`.
enum SortOrderOption: String, ExpressibleByArgument, CaseIterable {
    case ASCEND, DESCEND
    var value: RangeSortOrder { self == .ASCEND ? .ascend : .descend }
}

/// etcdctl's `get --sort-by`.
enum SortTargetOption: String, ExpressibleByArgument, CaseIterable {
    case CREATE, KEY, MODIFY, VALUE, VERSION
    var value: RangeSortTarget {
        switch self {
        case .CREATE: .create
        case .KEY: .key
        case .MODIFY: .mod
        case .VALUE: .value
        case .VERSION: .version
        }
    }
}

/// Which keys a `get` or `del` names, as etcdctl reads its arguments: KEY alone, KEY and
/// RANGE_END ([KEY, RANGE_END)), `--prefix` (every key starting with KEY) or `--from-key`
/// (every key >= KEY). Nil range end: the single key.
func keyRange(_ key: String, _ rangeEnd: String?, prefix: Bool, fromKey: Bool) throws -> [UInt8]? {
    guard [rangeEnd != nil, prefix, fromKey].filter({ $0 }).count <= 1 else {
        throw ValidationError("give at most one of RANGE_END, --prefix and --from-key")
    }
    if let rangeEnd { return bytes(rangeEnd) }
    if prefix { return KeyRange.prefixEnd(bytes(key)) }
    if fromKey { return [0] }
    return nil
}

struct GetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Get a key's value, or the keys of a range.",
                                                    discussion: "One key: prints the value alone; a missing key exits with status 1. A range (RANGE_END, --prefix or --from-key): prints key and value lines.")
    @OptionGroup var globals: GlobalOptions
    @Argument(help: "The key (or the start of a range).") var key: String
    @Argument(help: "End of the range [KEY, RANGE_END), exclusive.") var rangeEnd: String?
    @Flag(help: "Get every key starting with KEY.") var prefix = false
    @Flag(help: "Get every key >= KEY.") var fromKey = false
    @Option(help: "Most keys to return (0: the server's limit).") var limit: Int = 0
    @Option(help: "l (linearizable, default) or s (serializable: local, maybe stale).") var consistency: ConsistencyOption = .l
    @Option(help: "Read at this past revision.") var rev: Int64?
    @Flag(help: "Print keys only.") var keysOnly = false
    @Flag(help: "Print values only (of a range too).") var printValueOnly = false
    @Flag(help: "Print only how many keys the range holds.") var countOnly = false
    @Option(help: "Order of the results: ASCEND or DESCEND (with --sort-by alone: ASCEND).") var order: SortOrderOption?
    @Option(help: "Sort the results by CREATE, KEY, MODIFY, VALUE or VERSION (the limit applies after the sort).") var sortBy: SortTargetOption?

    func validate() throws {
        guard limit >= 0 else { throw ValidationError("--limit must be >= 0") }
        if let rev, rev < 0 { throw ValidationError("--rev must be >= 0") }
        _ = try keyRange(key, rangeEnd, prefix: prefix, fromKey: fromKey)
        guard !(keysOnly && printValueOnly) else { throw ValidationError("--keys-only and --print-value-only exclude each other") }
    }

    func run() async throws {
        let end = try keyRange(key, rangeEnd, prefix: prefix, fromKey: fromKey)
        let request = RangeRequest(key: bytes(key), rangeEnd: end ?? [], limit: limit, keysOnly: keysOnly, countOnly: countOnly, revision: rev,
                                   sortOrder: order?.value ?? .none, sortTarget: sortBy?.value ?? .key)
        let r = try await withClient(globals) { try await $0.range(request, consistency: consistency.value) }
        if globals.output == .json {
            print(JSON.object([("revision", "\(r.revision)"), ("count", "\(r.count)"), ("more", "\(r.more)"), ("kvs", JSON.array(r.kvs.map(json)))]))
            if r.kvs.isEmpty && end == nil && !countOnly { throw ExitCode(ExitStatus.notFound) }
            return
        }
        if countOnly { return print(r.count) }
        if end != nil {
            for kv in r.kvs {
                if !printValueOnly { print(text(kv.key)) }
                if !keysOnly { print(text(kv.value)) }
            }
            return
        }
        guard let kv = r.kvs.first else { throw fail("key not found: \(key)", status: ExitStatus.notFound) }
        print(keysOnly ? text(kv.key) : text(kv.value))
    }
}

struct DelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "del", abstract: "Delete a key, or the keys of a range; prints how many were deleted.")
    @OptionGroup var globals: GlobalOptions
    @Argument(help: "The key (or the start of a range).") var key: String
    @Argument(help: "End of the range [KEY, RANGE_END), exclusive.") var rangeEnd: String?
    @Flag(help: "Delete every key starting with KEY.") var prefix = false
    @Flag(help: "Delete every key >= KEY.") var fromKey = false
    @Flag(help: "Print the deleted key-values.") var prevKV = false

    func validate() throws { _ = try keyRange(key, rangeEnd, prefix: prefix, fromKey: fromKey) }

    func run() async throws {
        let end = try keyRange(key, rangeEnd, prefix: prefix, fromKey: fromKey)
        let r = try await withClient(globals) { c in
            if let end { return try await c.deleteRange(from: bytes(key), to: end, prevKV: prevKV) }
            return try await c.delete(bytes(key), prevKV: prevKV)
        }
        switch globals.output {
        case .simple:
            print(r.deleted)
            for kv in r.prevKVs { print(text(kv.key)); print(text(kv.value)) }
        case .json:
            print(JSON.object([("revision", "\(r.revision)"), ("deleted", "\(r.deleted)"), ("prev_kvs", JSON.array(r.prevKVs.map(json)))]))
        }
    }
}

struct CompactCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "compact", abstract: "Drop revision history below REV.")
    @OptionGroup var globals: GlobalOptions
    @Argument(help: "The revision.") var rev: Int64

    func run() async throws {
        let r = try await withClient(globals) { try await $0.compact(revision: rev) }
        print(globals.output == .json ? JSON.object([("revision", "\(r.revision)"), ("compacted_revision", "\(r.compactedRevision)")]) : "compacted revision \(r.compactedRevision)")
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show each endpoint's role, term, commit and applied index, state size and alarms.")

    /// Bytes as etcdctl prints a database size.
    static func size(_ bytes: Int64) -> String {
        bytes >= 1 << 30 ? String(format: "%.1f GB", Double(bytes) / Double(1 << 30))
            : bytes >= 1 << 20 ? String(format: "%.1f MB", Double(bytes) / Double(1 << 20)) : "\(bytes / 1024) kB"
    }
    @OptionGroup var globals: GlobalOptions
    @Flag(help: "Show every member of the cluster (its member list's client addresses), not just --endpoints.") var cluster = false

    func run() async throws {
        let client = try globals.client()
        let endpoints: [HostPort]
        do { endpoints = try await globals.endpoints(cluster: cluster, using: client) } catch {
            await client.close()
            throw error
        }
        var rows: [(String, Result<NodeStatus, any Error>)] = []
        for e in endpoints {
            do { rows.append((e.description, .success(try await client.detailedStatus(of: e)))) } catch { rows.append((e.description, .failure(error))) }
        }
        await client.close()
        if globals.output == .json {
            let items = rows.map { endpoint, r -> String in
                switch r {
                case let .success(s):
                    return JSON.object([("endpoint", JSON.string(endpoint)), ("id", "\(s.id.rawValue)"), ("role", JSON.string(s.role)), ("term", "\(s.term)"),
                                        ("leader", "\(s.leader.rawValue)"), ("commit", "\(s.commit)"), ("applied", "\(s.applied)"),
                                        ("last_index", "\(s.lastIndex)"), ("revision", "\(s.revision)"),
                                        ("voters", JSON.array(s.voters.map { "\($0.rawValue)" })), ("learners", JSON.array(s.learners.map { "\($0.rawValue)" }))]
                                       + (s.storage.map { st in [("db_size_in_use", "\(st.stateBytes)"), ("quota_bytes", "\(st.quotaBytes)"),
                                                                 ("alarms", JSON.array(st.alarms.map { JSON.string("\($0)") }))] } ?? []))
                case let .failure(e):
                    return JSON.object([("endpoint", JSON.string(endpoint)), ("error", JSON.string("\(e)"))])
                }
            }
            print(JSON.object([("nodes", JSON.array(items))]))
        } else {
            print("ENDPOINT".padding(toLength: 22, withPad: " ", startingAt: 0) + "ID  ROLE          TERM  LEADER  COMMIT    APPLIED   REVISION  DB IN USE  ALARMS")
            for (endpoint, r) in rows {
                switch r {
                case let .success(s):
                    print(endpoint.padding(toLength: 22, withPad: " ", startingAt: 0)
                        + "\(s.id.rawValue)".padding(toLength: 4, withPad: " ", startingAt: 0) + s.role.padding(toLength: 14, withPad: " ", startingAt: 0)
                        + "\(s.term)".padding(toLength: 6, withPad: " ", startingAt: 0) + "\(s.leader.rawValue)".padding(toLength: 8, withPad: " ", startingAt: 0)
                        + "\(s.commit)".padding(toLength: 10, withPad: " ", startingAt: 0) + "\(s.applied)".padding(toLength: 10, withPad: " ", startingAt: 0)
                        + "\(s.revision)".padding(toLength: 10, withPad: " ", startingAt: 0)
                        + (s.storage.map { Self.size($0.stateBytes).padding(toLength: 11, withPad: " ", startingAt: 0) + ($0.alarms.isEmpty ? "-" : $0.alarms.map { "\($0)" }.joined(separator: ",")) } ?? ""))
                case let .failure(e):
                    print(endpoint.padding(toLength: 22, withPad: " ", startingAt: 0) + "unreachable: \(describeConnectionFailure(e))")
                }
            }
        }
        if rows.allSatisfy({ if case .failure = $0.1 { return true } else { return false } }) {
            throw fail("no endpoint answered", status: ExitStatus.unreachable)
        }
    }
}

struct AlarmCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "alarm", abstract: "List or disarm cluster alarms (NOSPACE: the state went over --quota-bytes; CORRUPT: replicas' histories differ).",
                                                    subcommands: [List.self, Disarm.self])

    static func show(_ alarms: [AlarmKind], _ globals: GlobalOptions) {
        if globals.output == .json {
            print(JSON.object([("alarms", JSON.array(alarms.map { JSON.string("\($0)") }))]))
        } else {
            for a in alarms { print("alarm:\(a)") }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "Print the raised alarms, one per line (nothing when none is).")
        @OptionGroup var globals: GlobalOptions
        func run() async throws { AlarmCommand.show(try await withClient(globals) { try await $0.alarms() }, globals) }
    }

    struct Disarm: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "disarm",
            abstract: "Disarm every raised alarm (as etcdctl does) and print those still raised: NOSPACE after freeing space (the leader raises it again if the state is still over its quota), CORRUPT after replacing the odd replica.")
        @OptionGroup var globals: GlobalOptions
        func run() async throws {
            let remaining = try await withClient(globals) { client in
                var left = try await client.alarms()
                for kind in left { left = try await client.disarm(kind) }
                return left
            }
            if remaining.isEmpty && globals.output != .json { print("no alarm raised") } else { AlarmCommand.show(remaining, globals) }
        }
    }
}
