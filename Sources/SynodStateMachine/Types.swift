import SynodCore

/// A lease's identifier, chosen by the proposer (the state machine never invents one, so every
/// replica agrees). Zero is not a valid id.
public struct LeaseID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ value: UInt64) { self.rawValue = value }
    public static func < (a: LeaseID, b: LeaseID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "lease\(rawValue)" }
}

/// Identifies a client's command for exactly-once apply: `sequence` grows with every new command
/// the client sends; a retry reuses the sequence of the command it retries.
public struct ClientSession: Hashable, Sendable {
    public var clientID: UInt64
    public var sequence: UInt64
    public init(clientID: UInt64, sequence: UInt64) {
        self.clientID = clientID
        self.sequence = sequence
    }
}

/// A key and its value with etcd's per-key metadata.
public struct KeyValue: Hashable, Sendable {
    public var key: [UInt8]
    /// Empty in `keysOnly` ranges and in delete events.
    public var value: [UInt8]
    /// Revision of the put that created the key (since its last delete). 0 in delete events.
    public var createRevision: Int64
    /// Revision of the last change to the key.
    public var modRevision: Int64
    /// Number of puts since the key was created; reset by a delete. 0 in delete events.
    public var version: Int64
    /// The lease the key is attached to, if any.
    public var lease: LeaseID?

    public init(key: [UInt8], value: [UInt8], createRevision: Int64, modRevision: Int64, version: Int64, lease: LeaseID? = nil) {
        self.key = key
        self.value = value
        self.createRevision = createRevision
        self.modRevision = modRevision
        self.version = version
        self.lease = lease
    }
}

/// What a change did to a key.
public enum EventType: UInt8, Hashable, Sendable {
    case put = 1
    case delete = 2
}

/// One change, as a watch reports it.
public struct WatchEvent: Hashable, Sendable {
    public var type: EventType
    /// The key after the change; for a delete, the key with `modRevision` = the delete's revision.
    public var kv: KeyValue
    /// The key before the change, if it existed. In `history` it is omitted when that earlier
    /// version was compacted away.
    public var prevKV: KeyValue?
    /// The store revision of the change (equal to `kv.modRevision`).
    public var revision: Int64

    public init(type: EventType, kv: KeyValue, prevKV: KeyValue?, revision: Int64) {
        self.type = type
        self.kv = kv
        self.prevKV = prevKV
        self.revision = revision
    }
}

// MARK: - Encoding

extension KeyValue {
    /// Appends the unversioned body (for embedding in a larger message).
    public func encode(into w: inout ByteWriter) {
        w.lengthPrefixed(key)
        w.lengthPrefixed(value)
        w.i64(createRevision)
        w.i64(modRevision)
        w.i64(version)
        w.u64(lease?.rawValue ?? 0)
    }

    /// Reads what `encode(into:)` wrote, checking every length before allocating.
    public static func decode(from r: inout ByteReader) throws(DecodeError) -> KeyValue {
        let key = try r.lengthPrefixed("kv key", limit: KVLimits.keyBytesMax)
        let value = try r.lengthPrefixed("kv value", limit: KVLimits.valueBytesMax)
        let create = try r.i64("kv create revision")
        let mod = try r.i64("kv mod revision")
        let version = try r.i64("kv version")
        let lease = try r.u64("kv lease")
        return KeyValue(key: key, value: value, createRevision: create, modRevision: mod, version: version,
                        lease: lease == 0 ? nil : LeaseID(lease))
    }

    /// Smallest encoding: two empty byte strings and four integers.
    static let encodedBytesMin = 4 + 4 + 8 * 4
}

extension WatchEvent {
    /// The first byte of the standalone encoding; bump on any incompatible change.
    public static let encodingVersion: UInt8 = 1

    /// Appends the unversioned body (for embedding in a larger message).
    public func encode(into w: inout ByteWriter) {
        w.u8(type.rawValue)
        w.i64(revision)
        kv.encode(into: &w)
        if let prev = prevKV { w.bool(true); prev.encode(into: &w) } else { w.bool(false) }
    }

    /// Reads what `encode(into:)` wrote, checking every length before allocating.
    public static func decode(from r: inout ByteReader) throws(DecodeError) -> WatchEvent {
        let raw = try r.u8("event type")
        guard let type = EventType(rawValue: raw) else { throw .unknownValue(what: "event type", value: UInt64(raw)) }
        let revision = try r.i64("event revision")
        let kv = try KeyValue.decode(from: &r)
        let prev = try r.bool("event has prevKV") ? try KeyValue.decode(from: &r) : nil
        return WatchEvent(type: type, kv: kv, prevKV: prev, revision: revision)
    }

    /// A versioned standalone encoding (for the wire's watch streams).
    public func encode() -> [UInt8] {
        var w = ByteWriter()
        w.u8(Self.encodingVersion)
        encode(into: &w)
        return w.bytes
    }

    /// Decodes `encode()`'s output; bad input is a typed `DecodeError`, never a trap.
    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> WatchEvent {
        var r = ByteReader(bytes)
        try r.version("watch event version", expected: encodingVersion)
        let e = try decode(from: &r)
        try r.expectEnd()
        return e
    }

    static let encodedBytesMin = 1 + 8 + KeyValue.encodedBytesMin + 1
}
