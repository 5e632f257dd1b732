import SynodCore

/// Named upper bounds of the KV state machine (STYLE.md: put a limit on everything).
///
/// The store's own limits (`StateLimits`) apply to table keys and records, and some tables prefix
/// the user key, so the user-facing limits are derived from them rather than repeated.
public enum KVLimits {
    /// Bytes the longest table prefix adds before a user key (`lease_keys`: the 8-byte lease id).
    public static let tableKeyPrefixBytesMax = 8
    /// Largest user key: LMDB's 511-byte key limit minus the longest table prefix.
    public static let keyBytesMax = StateLimits.keyBytesMax - tableKeyPrefixBytesMax
    /// Bytes reserved for metadata around a value, in the stored record and in the command
    /// envelope, so the largest value still fits one log entry (`Limits.entryPayloadBytesMax`)
    /// and one store record (`StateLimits.valueBytesMax`).
    public static let valueOverheadBytes = 1024
    /// Largest value: 1 MiB minus `valueOverheadBytes`.
    public static let valueBytesMax = min(StateLimits.valueBytesMax, Limits.entryPayloadBytesMax) - valueOverheadBytes
    /// Most compares, and most ops in each branch, of one transaction (etcd's default is 128).
    public static let txnOpsMax = 128
    /// Most key-values one range returns; a request's `limit` of 0 means this.
    public static let rangeLimitMax = 10_000
    /// A range stops adding key-values once the values it carries pass this many bytes
    /// (it always returns at least one), and reports `more`.
    public static let rangeResponseBytesMax = 8 << 20
    /// Most keys a sorted or filtered range holds for its sort (their metadata: about 100 bytes
    /// each plus the key); a range that admits more is refused (`RangeOrder.swift`).
    public static let orderedRangeKeysMax = 100_000
    /// Most bytes of values a range sorted by value loads for its sort.
    public static let orderedRangeValueBytesMax = 64 << 20
    /// Most lease ids one `leaseExpire` command carries.
    public static let leaseExpireIDsMax = 1_000
    /// Most keys `lease(_:)` lists for one lease.
    public static let leaseKeysListMax = 10_000
    /// Most client sessions remembered; the least recently used one is evicted beyond this.
    public static let sessionsMax = 10_000
    /// How far (in log entries) a session's `session_lru` position may fall behind its client's
    /// last command before it is moved: eviction is least-recently-used to within this many
    /// entries, and a busy client does not rewrite its LRU key on every command.
    /// Invariant: far below `sessionsMax` — a client is evicted only after
    /// `sessionsMax - sessionLRURefreshEntries` other clients wrote after its last command
    /// (docs/STATE_MACHINE.md); a window wider than `sessionsMax` would void that bound.
    public static let sessionLRURefreshEntries: UInt64 = 1_024
    /// Largest encoded response a session caches for retries; larger ones are remembered as
    /// `responseNotCached` (the command still applied once).
    public static let sessionResponseBytesMax = 64 << 10
    /// Events a `history` call collects before it finishes the revision it is in and stops (its
    /// `limit` is clamped to this).
    public static let historyEventsMax = 10_000
    /// Most history records one past-revision range may scan.
    public static let historyScanRecordsMax = 1_000_000
    /// Largest byte string a command decoder accepts, and `decodeCountMax` the largest count.
    /// They are looser than the semantic limits above on purpose: a well-formed but oversized
    /// request then gets its typed `KVError` (`keyTooLarge`, `tooManyOps`, ...) from validation
    /// instead of a generic decode failure. Allocation stays bounded by the input's own length,
    /// which decoders check before reserving anything.
    public static let decodeBytesMax = Limits.entryPayloadBytesMax
    public static let decodeCountMax = 1 << 16
    /// Longest diagnostic text carried by an error response.
    public static let messageBytesMax = 1024
    /// Most events a decoder accepts in one list (revoking a lease with many keys can exceed
    /// `rangeLimitMax`, so this is larger).
    public static let eventsMax = 1 << 20
}
