import Crypto

/// SHA-256 over a sequence of (key, value) records, each framed by its lengths so that no two
/// different sequences feed the same bytes. Used for `hashkv` (comparing replicas' states).
public struct StateHasher {
    private var sha = SHA256()
    public init() {}

    public mutating func add(_ key: [UInt8], _ value: [UInt8]) {
        var lengths = [UInt8](repeating: 0, count: 8)
        for i in 0..<4 {
            lengths[i] = UInt8(truncatingIfNeeded: key.count >> (24 - 8 * i))
            lengths[4 + i] = UInt8(truncatingIfNeeded: value.count >> (24 - 8 * i))
        }
        sha.update(data: lengths)
        sha.update(data: key)
        sha.update(data: value)
    }

    /// The 32-byte digest of everything added.
    public func finish() -> [UInt8] { Array(sha.finalize()) }
}
