import SynodCore

// Typed identifiers of the pBFT core (STYLE.md: a view is never passed where a sequence number
// belongs). `NodeID` from SynodCore names replicas.

/// A pBFT view. The primary of view `v` is replica `v mod n` (in the sorted replica list).
public struct View: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt64) { self.rawValue = value }
    public static let zero = View(0)
    @inlinable public static func < (a: View, b: View) -> Bool { a.rawValue < b.rawValue }
    /// The following view. Traps on overflow (2^64 view changes).
    @inlinable public var next: View { View(rawValue + 1) }
    public var description: String { "v\(rawValue)" }
}

/// A position in the total order the replicas agree on. 0 is "before the first batch".
public struct SequenceNumber: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt64) { self.rawValue = value }
    public static let zero = SequenceNumber(0)
    @inlinable public static func < (a: SequenceNumber, b: SequenceNumber) -> Bool { a.rawValue < b.rawValue }
    @inlinable public var next: SequenceNumber { SequenceNumber(rawValue + 1) }
    @inlinable public func adding(_ n: UInt64) -> SequenceNumber { SequenceNumber(rawValue + n) }
    public var description: String { "s\(rawValue)" }
}

/// A client's identity. Clients and replicas are separate namespaces.
public struct ClientID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt64) { self.rawValue = value }
    @inlinable public static func < (a: ClientID, b: ClientID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "c\(rawValue)" }
}

/// Who sent or receives a message: a replica or a client.
public enum Principal: Hashable, Sendable, Comparable, CustomStringConvertible {
    case replica(NodeID)
    case client(ClientID)

    public var description: String {
        switch self {
        case let .replica(id): return "\(id)"
        case let .client(id): return "\(id)"
        }
    }

    public var replicaID: NodeID? { if case let .replica(id) = self { return id } else { return nil } }
}

/// A collision-resistant digest (SHA-256 with the real authenticator): request, batch and state
/// digests. Bounded by `Digest.bytesMax`.
public struct Digest: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var bytes: [UInt8]
    public static let bytesMax = 64
    public init(_ bytes: [UInt8]) {
        precondition(bytes.count <= Digest.bytesMax, "digest too long")
        self.bytes = bytes
    }
    /// The digest of nothing in particular; never equal to a real digest (those are non-empty).
    public static let empty = Digest([])
    public static func < (a: Digest, b: Digest) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }
    /// The first four bytes in hex, for traces.
    public var description: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in bytes.prefix(4) { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }
}
