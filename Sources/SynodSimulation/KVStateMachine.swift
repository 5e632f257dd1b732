import SynodCore
import SynodRaft

/// One key-value operation. Keys are small integers; values are unique per write, so the
/// linearizability checker can tell writes apart.
public enum KVOp: Hashable, Sendable, CustomStringConvertible {
    case put(key: UInt8, value: UInt64)
    case get(key: UInt8)
    case delete(key: UInt8)
    case compareAndSwap(key: UInt8, expected: UInt64?, new: UInt64)

    public var key: UInt8 {
        switch self {
        case let .put(k, _), let .get(k), let .delete(k), let .compareAndSwap(k, _, _): return k
        }
    }

    public var isRead: Bool { if case .get = self { return true } else { return false } }

    public var description: String {
        switch self {
        case let .put(k, v): return "put(k\(k),\(v))"
        case let .get(k): return "get(k\(k))"
        case let .delete(k): return "delete(k\(k))"
        case let .compareAndSwap(k, e, n): return "cas(k\(k),\(e.map(String.init) ?? "nil")->\(n))"
        }
    }
}

/// What an operation returned.
public enum KVResult: Hashable, Sendable, CustomStringConvertible {
    case ok
    case value(UInt64?)
    case deleted(existed: Bool)
    case swapped(Bool)
    /// The session already moved past this sequence number: the command was not applied.
    case staleSession

    public var description: String {
        switch self {
        case .ok: return "ok"
        case let .value(v): return "value(\(v.map(String.init) ?? "nil"))"
        case let .deleted(e): return "deleted(\(e))"
        case let .swapped(s): return "swapped(\(s))"
        case .staleSession: return "stale"
        }
    }
}

/// A client's command as it travels in a log entry: the session (client id, sequence number)
/// gives exactly-once apply of retried commands.
public struct KVCommand: Hashable, Sendable {
    public var client: UInt64
    public var seq: UInt64
    public var op: KVOp

    public init(client: UInt64, seq: UInt64, op: KVOp) {
        self.client = client
        self.seq = seq
        self.op = op
    }

    public func encode() -> [UInt8] {
        var w = ByteWriter()
        w.u64(client)
        w.u64(seq)
        switch op {
        case let .put(k, v): w.u8(1); w.u8(k); w.u64(v)
        case let .get(k): w.u8(2); w.u8(k)
        case let .delete(k): w.u8(3); w.u8(k)
        case let .compareAndSwap(k, e, n):
            w.u8(4); w.u8(k); w.u8(e == nil ? 0 : 1); w.u64(e ?? 0); w.u64(n)
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> KVCommand {
        var r = ByteReader(bytes)
        let client = try r.u64("client")
        let seq = try r.u64("seq")
        let tag = try r.u8("op")
        let key = try r.u8("key")
        let op: KVOp
        switch tag {
        case 1: op = .put(key: key, value: try r.u64("value"))
        case 2: op = .get(key: key)
        case 3: op = .delete(key: key)
        case 4:
            let has = try r.u8("expected flag")
            let e = try r.u64("expected")
            op = .compareAndSwap(key: key, expected: has == 1 ? e : nil, new: try r.u64("new"))
        default: throw .unknownValue(what: "kv op", value: UInt64(tag))
        }
        try r.expectEnd()
        return KVCommand(client: client, seq: seq, op: op)
    }
}

/// The simulator's deterministic state machine: a tiny KV store plus client sessions.
/// Promise (as for any state machine): `apply` is deterministic and depends only on the state
/// and the entry.
public struct KVStateMachine: Hashable, Sendable {
    public private(set) var values: [UInt64?]
    /// Exactly-once sessions: (client, last sequence applied, its cached result).
    public private(set) var sessions = ClientSessions<KVResult>()
    public private(set) var appliedIndex: LogIndex = .zero

    public init(keys: Int) {
        values = Array(repeating: nil, count: keys)
    }

    /// Applies one committed entry; returns the command and its result for commands.
    public mutating func apply(_ e: Entry) -> (KVCommand, KVResult)? {
        precondition(e.index == appliedIndex.next, "apply out of order")
        appliedIndex = e.index
        guard e.kind == .command, !MeshReplica.isEnvelope(e.payload), let cmd = try? KVCommand.decode(e.payload) else { return nil }
        switch sessions.check(client: cmd.client, seq: cmd.seq) {
        case let .duplicate(cached): return (cmd, cached)   // a retry: answered, not re-executed
        case .stale: return (cmd, .staleSession)
        case .new: break
        }
        let result = execute(cmd.op)
        sessions.record(client: cmd.client, seq: cmd.seq, result: result, at: e.index)
        return (cmd, result)
    }

    public func get(_ key: UInt8) -> UInt64? { values[Int(key)] }

    private mutating func execute(_ op: KVOp) -> KVResult {
        switch op {
        case let .put(k, v):
            values[Int(k)] = v
            return .ok
        case let .get(k):
            return .value(values[Int(k)])
        case let .delete(k):
            let existed = values[Int(k)] != nil
            values[Int(k)] = nil
            return .deleted(existed: existed)
        case let .compareAndSwap(k, e, n):
            guard values[Int(k)] == e else { return .swapped(false) }
            values[Int(k)] = n
            return .swapped(true)
        }
    }

    // MARK: Snapshots

    public func encode() -> [UInt8] {
        var w = ByteWriter()
        w.u64(appliedIndex.rawValue)
        w.u32(UInt32(values.count))
        for v in values { w.u8(v == nil ? 0 : 1); w.u64(v ?? 0) }
        w.u32(UInt32(sessions.sessions.count))
        for s in sessions.sessions {
            w.u64(s.client)
            w.u64(s.seq)
            w.u64(s.lastIndex.rawValue)
            switch s.result {
            case .ok: w.u8(0); w.u64(0)
            case let .value(v): w.u8(v == nil ? 1 : 2); w.u64(v ?? 0)
            case let .deleted(e): w.u8(3); w.u64(e ? 1 : 0)
            case let .swapped(b): w.u8(4); w.u64(b ? 1 : 0)
            case .staleSession: w.u8(5); w.u64(0)
            }
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> KVStateMachine {
        var r = ByteReader(bytes)
        let applied = LogIndex(try r.u64("applied"))
        let count = Int(try r.u32("keys"))
        guard count <= 256 else { throw .lengthTooLarge(what: "keys", length: count, limit: 256) }
        var sm = KVStateMachine(keys: count)
        sm.appliedIndex = applied
        for i in 0..<count {
            let has = try r.u8("present")
            let v = try r.u64("value")
            sm.values[i] = has == 1 ? v : nil
        }
        let n = Int(try r.u32("sessions"))
        guard n <= 1 << 16 else { throw .lengthTooLarge(what: "sessions", length: n, limit: 1 << 16) }
        var list: [ClientSessions<KVResult>.Session] = []
        for _ in 0..<n {
            let client = try r.u64("client")
            let seq = try r.u64("seq")
            let last = LogIndex(try r.u64("session index"))
            let tag = try r.u8("result")
            let v = try r.u64("result value")
            let result: KVResult
            switch tag {
            case 0: result = .ok
            case 1: result = .value(nil)
            case 2: result = .value(v)
            case 3: result = .deleted(existed: v == 1)
            case 4: result = .swapped(v == 1)
            case 5: result = .staleSession
            default: throw .unknownValue(what: "result", value: UInt64(tag))
            }
            list.append(.init(client: client, seq: seq, result: result, lastIndex: last))
        }
        sm.sessions = try ClientSessions(restoring: list)
        try r.expectEnd()
        return sm
    }
}
