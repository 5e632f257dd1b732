import SynodCore

// Table names, key layouts and stored record formats (docs/STATE_MACHINE.md describes them).
// Every integer in a key is big-endian so LMDB's byte order is numeric order.

enum Tables {
    /// user key → `StoredKV`
    static let kv = StateTable("kv")
    /// revision (8) + sub-revision (4) → `StoredEvent`
    static let revisions = StateTable("revisions")
    /// lease id (8) → `StoredLease`
    static let leases = StateTable("leases")
    /// lease id (8) + user key → empty
    static let leaseKeys = StateTable("lease_keys")
    /// client id (8) → `StoredSession`
    static let sessions = StateTable("sessions")
    /// last-used log index (8) + client id (8) → empty: the sessions in eviction order
    static let sessionLRU = StateTable("session_lru")
    /// name → value: `revision`, `compacted`, `session_count` (each an 8-byte integer)
    static let meta = StateTable("sm_meta")

    static let all = [kv, revisions, leases, leaseKeys, sessions, sessionLRU, meta].sorted()
}

enum MetaKey {
    static let revision = Array("revision".utf8)
    static let compacted = Array("compacted".utf8)
    static let sessionCount = Array("session_count".utf8)
    /// The raised alarms (`StoredAlarms`); absent when none ever was.
    static let alarms = Array("alarms".utf8)
    /// The cluster version (u16 big-endian); absent: 0, a store from before versions.
    static let clusterVersion = Array("cluster_version".utf8)
}

/// Position of one change: the store revision and its index within that revision's changes.
struct RevisionKey: Hashable, Comparable {
    var main: Int64
    var sub: UInt32

    static let zero = RevisionKey(main: 0, sub: 0)
    static func < (a: RevisionKey, b: RevisionKey) -> Bool { (a.main, a.sub) < (b.main, b.sub) }

    var bytes: [UInt8] {
        var w = ByteWriter(capacity: 12)
        w.u64(UInt64(bitPattern: main))
        w.u32(sub)
        return w.bytes
    }

    init(main: Int64, sub: UInt32) { self.main = main; self.sub = sub }

    init(_ bytes: [UInt8]) throws(DecodeError) {
        var r = ByteReader(bytes)
        main = try r.i64("revision key")
        sub = try r.u32("revision key sub")
        try r.expectEnd()
    }
}

/// The `kv` record: a key's current metadata and the sub-revision of its last change. The value
/// is stored once, in that change's `revisions` record (`position`), as etcd keeps values only by
/// revision — a put writes 256 bytes once instead of twice (docs/BENCHMARKS.md, fourth session).
/// Format 1 records (before 2026-11-22) carried the value inline; they still decode.
///
/// Invariant: for a format-2 record, `revisions` holds a put of this key at `position` (history
/// compaction keeps every live key's latest change).
struct StoredKV {
    static let formatVersion: UInt8 = 2
    static let inlineValueFormat: UInt8 = 1
    var kv: KeyValue
    var modSub: UInt32
    /// False until `loadingValue` read the value (format 2); `kv.value` is empty until then.
    var valueLoaded = true

    func encode() -> [UInt8] {
        var w = ByteWriter(capacity: 40)
        w.u8(Self.formatVersion)
        w.i64(kv.createRevision)
        w.i64(kv.modRevision)
        w.u32(modSub)
        w.i64(kv.version)
        w.u64(kv.lease?.rawValue ?? 0)
        return w.bytes
    }

    static func decode(key: [UInt8], _ bytes: [UInt8]) throws(DecodeError) -> StoredKV {
        var r = ByteReader(bytes)
        let format = try r.u8("kv record version")
        guard format == formatVersion || format == inlineValueFormat else { throw .unknownValue(what: "kv record version", value: UInt64(format)) }
        let create = try r.i64("create revision")
        let mod = try r.i64("mod revision")
        let sub = try r.u32("mod sub-revision")
        let version = try r.i64("version")
        let lease = try r.u64("lease")
        let inline = format == inlineValueFormat
        let value = inline ? r.rest() : []
        try r.expectEnd()
        let kv = KeyValue(key: key, value: value, createRevision: create, modRevision: mod, version: version, lease: lease == 0 ? nil : LeaseID(lease))
        return StoredKV(kv: kv, modSub: sub, valueLoaded: inline)
    }

    /// The key-value with its value, read from its last change's `revisions` record if the
    /// record does not carry it.
    func loadingValue(from r: any StateReader) throws -> KeyValue {
        if valueLoaded { return kv }
        guard let bytes = try r.get(Tables.revisions, position.bytes) else {
            throw StoreError.corrupt("kv record points at revision \(position.main).\(position.sub), which history does not hold")
        }
        let e: StoredEvent
        do throws(DecodeError) { e = try StoredEvent.decode(bytes) } catch { throw corrupt(Tables.revisions, error) }
        guard e.type == .put, e.kv.key == kv.key else {
            throw StoreError.corrupt("revision \(position.main).\(position.sub) is not the put a kv record points at")
        }
        var full = kv
        full.value = e.kv.value
        return full
    }

    var position: RevisionKey { RevisionKey(main: kv.modRevision, sub: modSub) }
}

/// The `revisions` record: one change, with a pointer to the key's previous change (zero if the
/// key did not exist before it).
struct StoredEvent {
    static let formatVersion: UInt8 = 1
    var type: EventType
    var kv: KeyValue
    var previous: RevisionKey

    func encode() -> [UInt8] {
        var w = ByteWriter(capacity: 64 + kv.key.count + kv.value.count)
        w.u8(Self.formatVersion)
        w.u8(type.rawValue)
        w.u64(UInt64(bitPattern: previous.main))
        w.u32(previous.sub)
        kv.encode(into: &w)
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) throws(DecodeError) -> StoredEvent {
        var r = ByteReader(bytes)
        try r.version("revision record version", expected: formatVersion)
        let raw = try r.u8("event type")
        guard let type = EventType(rawValue: raw) else { throw .unknownValue(what: "event type", value: UInt64(raw)) }
        let prev = RevisionKey(main: try r.i64("previous revision"), sub: try r.u32("previous sub-revision"))
        let kv = try KeyValue.decode(from: &r)
        try r.expectEnd()
        return StoredEvent(type: type, kv: kv, previous: prev)
    }
}

/// The `leases` record.
struct StoredLease {
    static let formatVersion: UInt8 = 1
    var ttlMillis: Int64

    func encode() -> [UInt8] {
        var w = ByteWriter(capacity: 9)
        w.u8(Self.formatVersion)
        w.i64(ttlMillis)
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) throws(DecodeError) -> StoredLease {
        var r = ByteReader(bytes)
        try r.version("lease record version", expected: formatVersion)
        let ttl = try r.i64("lease ttl")
        try r.expectEnd()
        return StoredLease(ttlMillis: ttl)
    }
}

/// The `sessions` record: the client's last applied sequence, the log index it applied at, and
/// that command's encoded response (absent if larger than `KVLimits.sessionResponseBytesMax`).
struct StoredSession {
    static let formatVersion: UInt8 = 1
    /// Format 2 adds the owner; a record without one is still written as format 1, byte for byte.
    static let ownedFormatVersion: UInt8 = 2
    var sequence: UInt64
    var index: LogIndex
    var response: [UInt8]?
    /// The user whose command last wrote the record (cluster version 3 on, auth enabled): only
    /// that user may use the session (`KVStateMachine.sessionOwnerClusterVersion`).
    var owner: String? = nil

    func encode() -> [UInt8] {
        var w = ByteWriter(capacity: 32 + (response?.count ?? 0) + (owner?.utf8.count ?? 0))
        w.u8(owner == nil ? Self.formatVersion : Self.ownedFormatVersion)
        w.u64(sequence)
        w.u64(index.rawValue)
        if let resp = response { w.bool(true); w.lengthPrefixed(resp) } else { w.bool(false) }
        if let owner { w.lengthPrefixed(Array(owner.utf8)) }
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) throws(DecodeError) -> StoredSession {
        var r = ByteReader(bytes)
        let format = try r.u8("session record version")
        guard format == formatVersion || format == ownedFormatVersion else { throw .unknownValue(what: "session record version", value: UInt64(format)) }
        let seq = try r.u64("session sequence")
        let index = LogIndex(try r.u64("session index"))
        let resp = try r.bool("session has response") ? try r.lengthPrefixed("session response", limit: KVLimits.sessionResponseBytesMax) : nil
        var owner: String?
        if format == ownedFormatVersion {
            let name = try r.lengthPrefixed("session owner", limit: AuthLimits.nameBytesMax)
            guard let text = String(validating: name, as: UTF8.self), !text.isEmpty else { throw .unknownValue(what: "session owner", value: UInt64(name.count)) }
            owner = text
        }
        try r.expectEnd()
        return StoredSession(sequence: seq, index: index, response: resp, owner: owner)
    }
}

enum LayoutKeys {
    static func leaseKey(_ id: LeaseID) -> [UInt8] { IndexKey.encode(id.rawValue) }
    static func leaseKeysKey(_ id: LeaseID, _ key: [UInt8]) -> [UInt8] { IndexKey.encode(id.rawValue) + key }
    static func sessionKey(_ client: UInt64) -> [UInt8] { IndexKey.encode(client) }
    static func lruKey(_ index: LogIndex, _ client: UInt64) -> [UInt8] {
        var w = ByteWriter(capacity: 16)
        w.u64(index.rawValue)
        w.u64(client)
        return w.bytes
    }
}

/// Bytes read from our own tables that do not decode mean the store is damaged; that is not a
/// client's fault, so it surfaces as a thrown `StoreError.corrupt` rather than a response.
func corrupt(_ table: StateTable, _ e: DecodeError) -> StoreError { .corrupt("state table \(table.name): \(e)") }
