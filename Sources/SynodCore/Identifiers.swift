// Typed identifiers, so an index is never passed where a term belongs (STYLE.md: typed IDs).

/// A cluster member's identity. `0` is reserved to mean "none" (for example "voted for nobody").
public struct NodeID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt64) { self.rawValue = value }
    /// The reserved "no node" value.
    public static let none = NodeID(0)
    public var isNone: Bool { rawValue == 0 }
    @inlinable public static func < (a: NodeID, b: NodeID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "n\(rawValue)" }
}

/// A Raft term (or, in BFT mode, a view number where the same slot is reused). Monotonic.
public struct Term: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt64) { self.rawValue = value }
    public static let zero = Term(0)
    @inlinable public static func < (a: Term, b: Term) -> Bool { a.rawValue < b.rawValue }
    /// The next term. Traps on overflow, which would take 2^64 elections.
    @inlinable public var next: Term { Term(rawValue + 1) }
    public var description: String { "t\(rawValue)" }
}

/// A position in the replicated log. Index 0 is "before the first entry"; real entries start at 1.
public struct LogIndex: RawRepresentable, Hashable, Comparable, Strideable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt64) { self.rawValue = value }
    public static let zero = LogIndex(0)
    @inlinable public static func < (a: LogIndex, b: LogIndex) -> Bool { a.rawValue < b.rawValue }
    @inlinable public func distance(to other: LogIndex) -> Int64 { Int64(bitPattern: other.rawValue &- rawValue) }
    @inlinable public func advanced(by n: Int64) -> LogIndex { LogIndex(UInt64(bitPattern: Int64(bitPattern: rawValue) &+ n)) }
    /// The following index. Traps on overflow.
    @inlinable public var next: LogIndex { LogIndex(rawValue + 1) }
    /// The preceding index. Precondition: not zero.
    @inlinable public var previous: LogIndex {
        precondition(rawValue > 0, "LogIndex.zero has no predecessor")
        return LogIndex(rawValue - 1)
    }
    public var description: String { "i\(rawValue)" }
}

/// A (term, index) pair naming one log position, as used for snapshots and log matching.
public struct LogPosition: Hashable, Sendable, CustomStringConvertible {
    public var index: LogIndex
    public var term: Term
    @inlinable public init(index: LogIndex, term: Term) { self.index = index; self.term = term }
    public static let zero = LogPosition(index: .zero, term: .zero)
    public var description: String { "\(term)/\(index)" }
}
