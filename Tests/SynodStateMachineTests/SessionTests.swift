import SynodCore
@testable import SynodStateMachine
import Testing

extension UInt64 {
    /// The first eight bytes of `bytes`, big-endian (a `session_lru` key's log index).
    init(bigEndianBytes bytes: [UInt8]) { self = bytes.prefix(8).reduce(0) { $0 << 8 | UInt64($1) } }
}

@Suite("Client sessions: exactly-once apply")
struct SessionTests {
    @Test("a retried command applies once and returns the cached response", arguments: StoreKind.allCases)
    func retry(kind: StoreKind) throws {
        let h = try Harness(kind)
        let s1 = ClientSession(clientID: 42, sequence: 1)
        let first = try h.run(.put(key: b("k"), value: b("1"), lease: nil, prevKV: false), session: s1)
        #expect(first.response?.put?.revision == 2)
        let retry = try h.run(.put(key: b("k"), value: b("1"), lease: nil, prevKV: false), session: s1)
        #expect(retry.response == first.response)
        #expect(retry.events.isEmpty)
        #expect(h.sm.revision == 2)
        #expect(try h.get("k")?.version == 1)
        let s2 = ClientSession(clientID: 42, sequence: 2)
        #expect(try h.run(.put(key: b("k"), value: b("2"), lease: nil, prevKV: false), session: s2).response?.put?.revision == 3)
        let stale = try h.run(.put(key: b("k"), value: b("1"), lease: nil, prevKV: false), session: s1)
        #expect(stale.response?.error == .staleSession(clientID: 42, sequence: 1, lastApplied: 2))
        #expect(try h.get("k")?.value == b("2"))
        // Another client is independent.
        let other = try h.run(.put(key: b("k"), value: b("3"), lease: nil, prevKV: false), session: ClientSession(clientID: 7, sequence: 1))
        #expect(other.response?.put?.revision == 4)
    }

    @Test("a failed command's error response is cached too", arguments: StoreKind.allCases)
    func cachedFailure(kind: StoreKind) throws {
        let h = try Harness(kind)
        let s = ClientSession(clientID: 1, sequence: 5)
        let first = try h.run(.leaseRevoke(id: LeaseID(3)), session: s)
        #expect(first.response?.error == .leaseNotFound(LeaseID(3)))
        try h.run(.leaseGrant(id: LeaseID(3), ttlMillis: 10))
        #expect(try h.run(.leaseRevoke(id: LeaseID(3)), session: s).response == first.response)
        #expect(try h.sm.leases().count == 1)
    }

    @Test("retry within the same batch applies once", arguments: StoreKind.allCases)
    func sameBatch(kind: StoreKind) throws {
        let h = try Harness(kind)
        let s = ClientSession(clientID: 9, sequence: 1)
        let cmd = Command.put(key: b("k"), value: b("v"), lease: nil, prevKV: false)
        let applied = try h.sm.apply([h.entry(cmd, session: s), h.entry(cmd, session: s)])
        #expect(applied.map(\.response) == [applied[0].response, applied[0].response])
        #expect(applied[1].events.isEmpty)
        #expect(h.sm.revision == 2)
    }

    @Test("the session table is bounded: the least recently active client is evicted", arguments: StoreKind.allCases)
    func eviction(kind: StoreKind) throws {
        let h = try Harness(kind)
        let n = KVLimits.sessionsMax
        // One batch of sessionsMax + 1 clients; client 0 was least recently active.
        var entries: [Entry] = []
        for c in 0...UInt64(n) {
            entries.append(h.entry(.leaseGrant(id: LeaseID(0), ttlMillis: 0), session: ClientSession(clientID: c, sequence: 1)))
        }
        _ = try h.sm.apply(entries)
        var sessions = 0
        try h.store.read { r in try r.scan(Tables.sessions, from: [], limit: .max) { _, _ in sessions += 1; return true } }
        #expect(sessions == n)
        #expect(try h.store.read { r in try r.get(Tables.sessions, LayoutKeys.sessionKey(0)) } == nil)
        #expect(try h.store.read { r in try r.get(Tables.sessions, LayoutKeys.sessionKey(1)) } != nil)
        // Client 0's retry is no longer recognised, so it applies again (documented limit).
        let again = try h.run(.leaseGrant(id: LeaseID(0), ttlMillis: 0), session: ClientSession(clientID: 0, sequence: 1))
        #expect(again.response?.error == .invalidLease(LeaseID(0), ttlMillis: 0))
    }

    @Test("a busy client's LRU position moves only once it has fallen sessionLRURefreshEntries behind", arguments: StoreKind.allCases)
    func lruRefresh(kind: StoreKind) throws {
        let h = try Harness(kind)
        func lruIndexes() throws -> [UInt64] {
            var out: [UInt64] = []
            try h.store.read { r in try r.scan(Tables.sessionLRU, from: [], limit: .max) { k, _ in out.append(UInt64(bigEndianBytes: k)); return true } }
            return out
        }
        let put = Command.put(key: b("k"), value: b("v"), lease: nil, prevKV: false)
        let first = h.nextIndex
        try h.run(put, session: ClientSession(clientID: 5, sequence: 1))
        try h.run(put, session: ClientSession(clientID: 5, sequence: 2))
        #expect(try lruIndexes() == [first], "the second command is within the refresh window")
        // Entries without the client until its position is a whole window old.
        let gap = Int(KVLimits.sessionLRURefreshEntries)
        _ = try h.sm.apply((0..<gap).map { _ in h.entry(put) })
        let moved = h.nextIndex
        try h.run(put, session: ClientSession(clientID: 5, sequence: 3))
        #expect(try lruIndexes() == [moved], "one key per client, moved to the refreshing command")
        #expect(try h.run(put, session: ClientSession(clientID: 5, sequence: 3)).events.isEmpty, "the retry is still recognised")
    }

    @Test("a client that just wrote is not the one evicted, however many clients came before", arguments: StoreKind.allCases)
    func recentWriterSurvives(kind: StoreKind) throws {
        // Fails if the LRU window reaches sessionsMax: the client's position would still be its
        // first command's, the oldest in the table.
        let h = try Harness(kind)
        let n = KVLimits.sessionsMax
        let grant = Command.leaseGrant(id: LeaseID(0), ttlMillis: 0)
        var entries = [h.entry(grant, session: ClientSession(clientID: 0, sequence: 1))]
        for c in 1..<UInt64(n) { entries.append(h.entry(grant, session: ClientSession(clientID: c, sequence: 1))) }
        entries.append(h.entry(grant, session: ClientSession(clientID: 0, sequence: 2)))   // the table is full
        entries.append(h.entry(grant, session: ClientSession(clientID: UInt64(n), sequence: 1)))   // one eviction
        _ = try h.sm.apply(entries)
        #expect(try h.store.read { r in try r.get(Tables.sessions, LayoutKeys.sessionKey(0)) } != nil)
        #expect(try h.store.read { r in try r.get(Tables.sessions, LayoutKeys.sessionKey(1)) } == nil)
    }

    @Test("session records: without an owner, format 1 byte for byte; with one, format 2; hostile owners refused")
    func recordFormats() throws {
        let plain = StoredSession(sequence: 3, index: LogIndex(9), response: [1, 2])
        #expect(plain.encode().first == 1 && plain.encode().count == 1 + 8 + 8 + 1 + 4 + 2)
        var owned = plain
        owned.owner = "alice"
        #expect(owned.encode().first == 2)
        let back = try StoredSession.decode(owned.encode())
        #expect(back.owner == "alice" && back.sequence == 3 && back.response == [1, 2])
        #expect(try StoredSession.decode(plain.encode()).owner == nil)
        var empty = plain.encode()
        empty[0] = 2
        empty += [0, 0, 0, 0]
        #expect(throws: DecodeError.self) { try StoredSession.decode(empty) }
        var invalid = plain.encode()
        invalid[0] = 2
        invalid += [0, 0, 0, 1, 0xFF]
        #expect(throws: DecodeError.self) { try StoredSession.decode(invalid) }
    }
}
