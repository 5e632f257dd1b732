/// Why bytes could not be decoded. Every decoder in Synod returns one of these for bad input and
/// never traps (DESIGN.md §6).
public enum DecodeError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The input ended `needed` bytes early while reading `what`.
    case truncated(what: String, needed: Int)
    /// A length or count field exceeded its named limit.
    case lengthTooLarge(what: String, length: Int, limit: Int)
    /// A tag, version or flag held a value this build does not know.
    case unknownValue(what: String, value: UInt64)
    /// Bytes were left over after a complete value.
    case trailingBytes(count: Int)
    /// A decoded value broke an invariant of its type.
    case invalid(String)

    public var description: String {
        switch self {
        case let .truncated(what, needed): return "truncated \(what): \(needed) more bytes needed"
        case let .lengthTooLarge(what, length, limit): return "\(what) length \(length) exceeds limit \(limit)"
        case let .unknownValue(what, value): return "unknown \(what) \(value)"
        case let .trailingBytes(count): return "\(count) unexpected trailing bytes"
        case let .invalid(why): return "invalid: \(why)"
        }
    }
}

/// Appends big-endian integers and length-prefixed byte strings to a growable buffer.
///
/// Every method is `@inlinable`: codecs in other modules then append straight into the array
/// (a bounds check and a copy) instead of calling across the module boundary per field — the
/// store's record encoders were ~13 % of a put's apply before (`synod-micro-bench kv.apply.put`).
public struct ByteWriter: Sendable {
    /// What has been written so far.
    public var bytes: [UInt8]

    @inlinable public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    @inlinable public mutating func u8(_ v: UInt8) { bytes.append(v) }

    @inlinable public mutating func u32(_ v: UInt32) {
        withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) }
    }

    @inlinable public mutating func u64(_ v: UInt64) {
        withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) }
    }

    /// Raw bytes with no length prefix.
    @inlinable public mutating func raw(_ v: some Collection<UInt8>) { bytes.append(contentsOf: v) }

    /// A 4-byte length prefix, then the bytes.
    @inlinable public mutating func lengthPrefixed(_ v: some Collection<UInt8>) {
        u32(UInt32(v.count))
        bytes.append(contentsOf: v)
    }

    @inlinable public mutating func ids(_ v: [NodeID]) {
        u32(UInt32(v.count))
        for id in v { u64(id.rawValue) }
    }
}

/// Reads what `ByteWriter` wrote, checking every length against the remaining input and a limit
/// before allocating.
public struct ByteReader {
    @usableFromInline let base: [UInt8]
    @usableFromInline var position: Int
    @usableFromInline let end: Int

    @inlinable public init(_ bytes: [UInt8]) {
        base = bytes
        position = 0
        end = bytes.count
    }

    /// Bytes consumed so far.
    @inlinable public var offset: Int { position }
    @inlinable public var remaining: Int { end - position }
    @inlinable public var isAtEnd: Bool { position == end }

    @inlinable mutating func need(_ n: Int, _ what: String) throws(DecodeError) {
        if n > remaining { throw .truncated(what: what, needed: n - remaining) }
    }

    @inlinable public mutating func u8(_ what: String) throws(DecodeError) -> UInt8 {
        try need(1, what)
        defer { position += 1 }
        return base[position]
    }

    @inlinable public mutating func u32(_ what: String) throws(DecodeError) -> UInt32 {
        try need(4, what)
        var v: UInt32 = 0
        for i in 0..<4 { v = (v << 8) | UInt32(base[position + i]) }
        position += 4
        return v
    }

    @inlinable public mutating func u64(_ what: String) throws(DecodeError) -> UInt64 {
        try need(8, what)
        var v: UInt64 = 0
        for i in 0..<8 { v = (v << 8) | UInt64(base[position + i]) }
        position += 8
        return v
    }

    @inlinable public mutating func raw(_ count: Int, _ what: String) throws(DecodeError) -> [UInt8] {
        try need(count, what)
        defer { position += count }
        return Array(base[position..<(position + count)])
    }

    /// Everything left, for a trailing payload whose length is implied by the container.
    @inlinable public mutating func rest() -> [UInt8] {
        defer { position = end }
        return Array(base[position..<end])
    }

    @inlinable public mutating func lengthPrefixed(_ what: String, limit: Int) throws(DecodeError) -> [UInt8] {
        let n = Int(try u32(what))
        if n > limit { throw .lengthTooLarge(what: what, length: n, limit: limit) }
        return try raw(n, what)
    }

    @inlinable public mutating func ids(_ what: String, limit: Int) throws(DecodeError) -> [NodeID] {
        let n = Int(try u32(what))
        if n > limit { throw .lengthTooLarge(what: what, length: n, limit: limit) }
        try need(n * 8, what)
        var out: [NodeID] = []
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(NodeID(try u64(what))) }
        return out
    }

    @inlinable public func expectEnd() throws(DecodeError) {
        if !isAtEnd { throw .trailingBytes(count: remaining) }
    }
}

/// 8-byte big-endian keys, so byte order is numeric order (DESIGN.md §4).
public enum IndexKey {
    @inlinable public static func encode(_ v: UInt64) -> [UInt8] {
        withUnsafeBytes(of: v.bigEndian) { Array($0) }
    }

    @inlinable public static func decode(_ bytes: some Collection<UInt8>) throws(DecodeError) -> UInt64 {
        guard bytes.count == 8 else { throw .invalid("index key of \(bytes.count) bytes, expected 8") }
        var v: UInt64 = 0
        for b in bytes { v = (v << 8) | UInt64(b) }
        return v
    }
}
