import SynodCore

/// Client sessions for exactly-once commands (dissertation §6.3), for a state machine to embed.
///
/// Each client numbers its commands 1, 2, 3...; a retried command keeps its number. Before
/// applying a committed command the state machine asks `check`: a new number is executed and
/// its result recorded; the current number again is a retry, answered from the cache without
/// executing; an older number is stale and must not be applied. Deterministic: depends only on
/// the order of calls, so every replica holds the same sessions.
///
/// Invariants: `sessions` is sorted by client id with no duplicates; at most `sessionsMax` entries.
public struct ClientSessions<Result: Hashable & Sendable>: Hashable, Sendable {
    public struct Session: Hashable, Sendable {
        public var client: UInt64
        public var seq: UInt64
        public var result: Result
        /// Log index of the command that last touched the session (for eviction).
        public var lastIndex: LogIndex

        public init(client: UInt64, seq: UInt64, result: Result, lastIndex: LogIndex) {
            self.client = client
            self.seq = seq
            self.result = result
            self.lastIndex = lastIndex
        }
    }

    public enum Verdict: Hashable, Sendable {
        case new
        case duplicate(Result)
        case stale
    }

    /// Most sessions kept; beyond it the least recently used is expired (as in the dissertation,
    /// an expired client's retries are then treated as new).
    public let sessionsMax: Int
    public private(set) var sessions: [Session] = []

    public init(sessionsMax: Int = 4096) {
        precondition(sessionsMax >= 1)
        self.sessionsMax = sessionsMax
    }

    private func position(_ client: UInt64) -> (Int, Bool) {
        var lo = 0, hi = sessions.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if sessions[mid].client < client { lo = mid + 1 } else { hi = mid }
        }
        return (lo, lo < sessions.count && sessions[lo].client == client)
    }

    public func check(client: UInt64, seq: UInt64) -> Verdict {
        let (i, found) = position(client)
        guard found else { return .new }
        if seq == sessions[i].seq { return .duplicate(sessions[i].result) }
        return seq < sessions[i].seq ? .stale : .new
    }

    /// Records the result of a command `check` called new.
    public mutating func record(client: UInt64, seq: UInt64, result: Result, at index: LogIndex) {
        let session = Session(client: client, seq: seq, result: result, lastIndex: index)
        let (i, found) = position(client)
        if found {
            precondition(seq > sessions[i].seq, "session sequence numbers only grow")
            sessions[i] = session
            return
        }
        sessions.insert(session, at: i)
        if sessions.count > sessionsMax {
            let oldest = sessions.indices.min { sessions[$0].lastIndex < sessions[$1].lastIndex }!
            sessions.remove(at: oldest)
        }
        precondition(sessions.count <= sessionsMax)
    }

    /// Rebuilds sessions from a snapshot. Throws on unsorted, duplicate or too many sessions.
    public init(sessionsMax: Int = 4096, restoring list: [Session]) throws(DecodeError) {
        self.init(sessionsMax: sessionsMax)
        guard list.count <= sessionsMax else { throw .lengthTooLarge(what: "sessions", length: list.count, limit: sessionsMax) }
        for (a, b) in zip(list, list.dropFirst()) where a.client >= b.client { throw .invalid("sessions not sorted") }
        sessions = list
    }
}
