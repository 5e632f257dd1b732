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
public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    @inlinable public mutating func u8(_ v: UInt8) { bytesAppend(v) }
    @usableFromInline mutating func bytesAppend(_ v: UInt8) { bytes.append(v) }

    public mutating func u32(_ v: UInt32) {
        withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func u64(_ v: UInt64) {
        withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) }
    }

    /// Raw bytes with no length prefix.
    public mutating func raw(_ v: some Collection<UInt8>) { bytes.append(contentsOf: v) }

    /// A 4-byte length prefix, then the bytes.
    public mutating func lengthPrefixed(_ v: some Collection<UInt8>) {
        u32(UInt32(v.count))
        bytes.append(contentsOf: v)
    }

    public mutating func ids(_ v: [NodeID]) {
        u32(UInt32(v.count))
        for id in v { u64(id.rawValue) }
    }
}

/// Reads what `ByteWriter` wrote, checking every length against the remaining input and a limit
/// before allocating.
public struct ByteReader {
    @usableFromInline let base: [UInt8]
    public private(set) var offset: Int
    @usableFromInline let end: Int

    public init(_ bytes: [UInt8]) {
        base = bytes
        offset = 0
        end = bytes.count
    }

    public var remaining: Int { end - offset }
    public var isAtEnd: Bool { offset == end }

    private mutating func need(_ n: Int, _ what: String) throws(DecodeError) {
        if n > remaining { throw .truncated(what: what, needed: n - remaining) }
    }

    public mutating func u8(_ what: String) throws(DecodeError) -> UInt8 {
        try need(1, what)
        defer { offset += 1 }
        return base[offset]
    }

    public mutating func u32(_ what: String) throws(DecodeError) -> UInt32 {
        try need(4, what)
        var v: UInt32 = 0
        for i in 0..<4 { v = (v << 8) | UInt32(base[offset + i]) }
        offset += 4
        return v
    }

    public mutating func u64(_ what: String) throws(DecodeError) -> UInt64 {
        try need(8, what)
        var v: UInt64 = 0
        for i in 0..<8 { v = (v << 8) | UInt64(base[offset + i]) }
        offset += 8
        return v
    }

    public mutating func raw(_ count: Int, _ what: String) throws(DecodeError) -> [UInt8] {
        try need(count, what)
        defer { offset += count }
        return Array(base[offset..<(offset + count)])
    }

    /// Everything left, for a trailing payload whose length is implied by the container.
    public mutating func rest() -> [UInt8] {
        defer { offset = end }
        return Array(base[offset..<end])
    }

    public mutating func lengthPrefixed(_ what: String, limit: Int) throws(DecodeError) -> [UInt8] {
        let n = Int(try u32(what))
        if n > limit { throw .lengthTooLarge(what: what, length: n, limit: limit) }
        return try raw(n, what)
    }

    public mutating func ids(_ what: String, limit: Int) throws(DecodeError) -> [NodeID] {
        let n = Int(try u32(what))
        if n > limit { throw .lengthTooLarge(what: what, length: n, limit: limit) }
        try need(n * 8, what)
        var out: [NodeID] = []
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(NodeID(try u64(what))) }
        return out
    }

    public func expectEnd() throws(DecodeError) {
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
