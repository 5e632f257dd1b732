import SynodCore
import SynodStateMachine

/// What a `.read` request asks. Encoded with a leading tag so kinds can be added.
public enum KVQuery: Sendable, Hashable {
    case range(RangeRequest)
    /// Every lease (id, TTL, remaining time as the leader sees it).
    case leases
    /// One lease and its attached keys.
    case lease(LeaseID)
    /// The raised alarms: answered with `Response.alarm`.
    case alarms
    /// The auth state (`AuthSummary`), trimmed to the asking user's own unless it is root.
    case auth

    public func encode() -> [UInt8] {
        var w = ByteWriter()
        switch self {
        case let .range(r):
            w.u8(1)
            r.encode(into: &w)
        case .leases: w.u8(2)
        case let .lease(id):
            w.u8(3)
            w.u64(id.rawValue)
        case .alarms: w.u8(4)
        case .auth: w.u8(5)
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> KVQuery {
        var r = ByteReader(bytes)
        let tag = try r.u8("query kind")
        let q: KVQuery
        switch tag {
        case 1: q = .range(try RangeRequest.decode(from: &r))
        case 2: q = .leases
        case 3: q = .lease(LeaseID(try r.u64("lease id")))
        case 4: q = .alarms
        case 5: q = .auth
        default: throw .unknownValue(what: "query kind", value: UInt64(tag))
        }
        try r.expectEnd()
        return q
    }
}

/// A lease as a node reports it.
public struct LeaseStatus: Sendable, Hashable {
    public var id: LeaseID
    public var ttlMillis: Int64
    /// Time left as the leader sees it; -1 when answered by a node that does not track deadlines.
    public var remainingMillis: Int64
    public var keys: [[UInt8]]

    public init(id: LeaseID, ttlMillis: Int64, remainingMillis: Int64, keys: [[UInt8]]) {
        self.id = id
        self.ttlMillis = ttlMillis
        self.remainingMillis = remainingMillis
        self.keys = keys
    }

    public static let listMax = 100_000

    public static func encode(_ list: [LeaseStatus]) -> [UInt8] {
        var w = ByteWriter()
        w.u32(UInt32(list.count))
        for l in list {
            w.u64(l.id.rawValue)
            w.u64(UInt64(bitPattern: l.ttlMillis))
            w.u64(UInt64(bitPattern: l.remainingMillis))
            w.u32(UInt32(l.keys.count))
            for k in l.keys { w.lengthPrefixed(k) }
        }
        return w.bytes
    }

    public static func decodeList(_ bytes: [UInt8]) throws(DecodeError) -> [LeaseStatus] {
        var r = ByteReader(bytes)
        let n = Int(try r.u32("lease count"))
        guard n <= listMax else { throw .lengthTooLarge(what: "leases", length: n, limit: listMax) }
        var out: [LeaseStatus] = []
        for _ in 0..<n {
            let id = LeaseID(try r.u64("lease id"))
            let ttl = Int64(bitPattern: try r.u64("ttl"))
            let remaining = Int64(bitPattern: try r.u64("remaining"))
            let k = Int(try r.u32("key count"))
            guard k <= listMax else { throw .lengthTooLarge(what: "lease keys", length: k, limit: listMax) }
            var keys: [[UInt8]] = []
            for _ in 0..<k { keys.append(try r.lengthPrefixed("lease key", limit: StateLimits.keyBytesMax)) }
            out.append(LeaseStatus(id: id, ttlMillis: ttl, remainingMillis: remaining, keys: keys))
        }
        try r.expectEnd()
        return out
    }
}

/// Starts a watch on `[key, rangeEnd)` (etcd range rules) from `startRevision` (0: from now on).
public struct WatchRequest: Sendable, Hashable {
    public var key: [UInt8]
    public var rangeEnd: [UInt8]
    public var startRevision: Int64
    public var prevKV: Bool
    /// Ask for progress notifications (etcd's `WithProgressNotify`): while no event is sent
    /// for the node's progress interval, it sends a `.watchProgress` naming the revision the
    /// watch has seen everything up to. Encoded as version 2; a request without it stays
    /// version 1, which every node decodes.
    public var progressNotify: Bool

    public init(key: [UInt8], rangeEnd: [UInt8] = [], startRevision: Int64 = 0, prevKV: Bool = false, progressNotify: Bool = false) {
        self.key = key
        self.rangeEnd = rangeEnd
        self.startRevision = startRevision
        self.prevKV = prevKV
        self.progressNotify = progressNotify
    }

    public func encode() -> [UInt8] {
        var w = ByteWriter()
        w.u8(progressNotify ? 2 : 1)
        w.lengthPrefixed(key)
        w.lengthPrefixed(rangeEnd)
        w.u64(UInt64(bitPattern: startRevision))
        w.u8(prevKV ? 1 : 0)
        if progressNotify { w.u8(1) }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> WatchRequest {
        var r = ByteReader(bytes)
        let v = try r.u8("watch version")
        guard v == 1 || v == 2 else { throw .unknownValue(what: "watch version", value: UInt64(v)) }
        let key = try r.lengthPrefixed("watch key", limit: StateLimits.keyBytesMax)
        let end = try r.lengthPrefixed("watch range end", limit: StateLimits.keyBytesMax)
        let start = Int64(bitPattern: try r.u64("start revision"))
        let prev = try r.u8("prevKV") == 1
        let progress = v == 2 ? try r.u8("progress notify") == 1 : false
        try r.expectEnd()
        guard start >= 0 else { throw .invalid("negative start revision") }
        return WatchRequest(key: key, rangeEnd: end, startRevision: start, prevKV: prev, progressNotify: progress)
    }

    /// True when `key` falls in this watch's range.
    public func matches(_ k: [UInt8]) -> Bool {
        if rangeEnd.isEmpty { return k == key }
        if k.lexicographicallyPrecedes(key) { return false }
        if rangeEnd == [0] { return true }
        return k.lexicographicallyPrecedes(rangeEnd)
    }
}

/// A batch of watch events (body of a `.watchEvents` response).
public enum WatchEvents {
    public static let batchMax = 10_000

    public static func encode(_ events: [WatchEvent]) -> [UInt8] {
        var w = ByteWriter()
        w.u32(UInt32(events.count))
        for e in events { e.encode(into: &w) }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> [WatchEvent] {
        var r = ByteReader(bytes)
        let n = Int(try r.u32("event count"))
        guard n <= batchMax else { throw .lengthTooLarge(what: "watch events", length: n, limit: batchMax) }
        var out: [WatchEvent] = []
        for _ in 0..<n { out.append(try WatchEvent.decode(from: &r)) }
        try r.expectEnd()
        return out
    }
}
