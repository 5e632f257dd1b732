import SynodCore
@testable import SynodStateMachine
import Testing

/// The NOSPACE alarm (etcd's space quota): raised and disarmed by committed commands, it refuses
/// exactly the commands that add data, on every replica alike, and survives restarts.
@Suite("Alarms")
struct AlarmTests {
    static let put = Command.put(key: b("k"), value: b("v"), lease: nil, prevKV: false)

    func raise(_ h: Harness) throws {
        let r = try h.run(.alarm(.noSpace, raised: true)).response
        #expect(r == .alarm(AlarmResult(revision: h.sm.revision, alarms: [.noSpace])))
    }

    @Test("NOSPACE refuses puts, put transactions, lease grants and mesh growth; the rest still runs", arguments: StoreKind.allCases)
    func refusesWhatAddsData(_ kind: StoreKind) throws {
        let h = try Harness(kind)
        try h.put("a", "1")
        try h.put("b", "2")
        let revision = h.sm.revision
        try raise(h)
        #expect(h.sm.revision == revision, "an alarm changes no key")
        #expect(try h.run(Self.put).response == .failure(.noSpace))
        let txnPut = Txn(compares: [], success: [.range(RangeRequest(key: b("a")))], failure: [.put(key: b("x"), value: b("y"), lease: nil, prevKV: false)])
        #expect(try h.run(.txn(txnPut)).response == .failure(.noSpace))
        #expect(try h.run(.leaseGrant(id: LeaseID(5), ttlMillis: 1000)).response == .failure(.noSpace))
        #expect(try h.run(.mesh(.join(agent: "a", capabilities: [], resources: 1), ifVersion: nil)).response == .failure(.noSpace))
        #expect(try h.run(.mesh(.submit(task: "t", requires: [], cost: 1), ifVersion: nil)).response == .failure(.noSpace))
        #expect(h.sm.revision == revision, "refused commands change nothing")
        #expect(try h.get("k") == nil)
        // What frees space, or only reads, still runs.
        let readTxn = Txn(compares: [Compare(key: b("a"), .equal, .value(b("1")))], success: [.range(RangeRequest(key: b("a"))), .delete(key: b("b"), prevKV: false)])
        guard case let .txn(t) = try h.run(.txn(readTxn)).response else { Issue.record("txn refused"); return }
        #expect(t.succeeded)
        guard case .delete = try h.run(.delete(key: b("a"), prevKV: false)).response else { Issue.record("delete refused"); return }
        guard case .compact = try h.run(.compact(revision: h.sm.revision)).response else { Issue.record("compact refused"); return }
        guard case .mesh = try h.run(.mesh(.rebalance, ifVersion: nil)).response else { Issue.record("rebalance refused"); return }
        // Disarmed, writes go through again.
        #expect(try h.run(.alarm(.noSpace, raised: false)).response == .alarm(AlarmResult(revision: h.sm.revision, alarms: [])))
        guard case .put = try h.run(Self.put).response else { Issue.record("put refused after disarm"); return }
    }

    @Test("raised alarms survive a restart, and raising twice is one alarm", arguments: StoreKind.allCases)
    func persisted(_ kind: StoreKind) throws {
        let h = try Harness(kind)
        try raise(h)
        try raise(h)
        #expect(h.sm.alarms == [.noSpace])
        try h.restart()
        #expect(h.sm.alarms == [.noSpace])
        #expect(try h.run(Self.put).response == .failure(.noSpace))
        _ = try h.run(.alarm(.noSpace, raised: false))
        try h.restart()
        #expect(h.sm.alarms.isEmpty)
    }

    @Test("a retried refused put answers the same refusal from its session")
    func sessionsKeepRefusals() throws {
        let h = try Harness(.memory)
        try raise(h)
        let s = ClientSession(clientID: 7, sequence: 1)
        #expect(try h.run(Self.put, session: s).response == .failure(.noSpace))
        _ = try h.run(.alarm(.noSpace, raised: false))
        #expect(try h.run(Self.put, session: s).response == .failure(.noSpace), "a retry is not a new command")
    }

    @Test("the alarm tests catch a state machine that ignores the alarm (injected bug)")
    func ignoredAlarmIsCaught() throws {
        let h = try Harness(.memory)
        h.sm.testingAlarmsIgnored = true
        try raise(h)
        // The assertion `refusesWhatAddsData` makes first would fail: the put goes through.
        guard case .put = try h.run(Self.put).response else { Issue.record("the injected bug did not let the put through"); return }
    }

    @Test("CORRUPT refuses every command but alarm commands; reads still run; disarmed, writes run again", arguments: StoreKind.allCases)
    func corruptRefusesAllWrites(_ kind: StoreKind) throws {
        let h = try Harness(kind)
        try h.put("a", "1")
        #expect(try h.run(.alarm(.corrupt, raised: true)).response == .alarm(AlarmResult(revision: h.sm.revision, alarms: [.corrupt])))
        for command in [Self.put, .delete(key: b("a"), prevKV: false), .deleteRange(from: b("a"), to: [], prevKV: false),
                        .compact(revision: h.sm.revision), .leaseRevoke(id: LeaseID(1)), .mesh(.rebalance, ifVersion: nil)] {
            #expect(try h.run(command).response == .failure(.corruptCluster), "\(command)")
        }
        #expect(try h.get("a")?.value == b("1"))
        // NOSPACE can be raised beside it; disarming one leaves the other.
        _ = try h.run(.alarm(.noSpace, raised: true))
        #expect(h.sm.alarms == [.noSpace, .corrupt])
        _ = try h.run(.alarm(.corrupt, raised: false))
        #expect(h.sm.alarms == [.noSpace])
        guard case .delete = try h.run(.delete(key: b("a"), prevKV: false)).response else { Issue.record("delete refused under NOSPACE alone"); return }
    }

    @Test("a stored alarm set that does not decode is reported as corrupt, not trapped on")
    func corruptAlarms() throws {
        #expect(throws: DecodeError.self) { try StoredAlarms.decode([9]) }
        #expect(throws: DecodeError.self) { try StoredAlarms.decode([1, 1]) }
        #expect(throws: DecodeError.self) { try StoredAlarms.decode([2, 1]) }
        #expect(throws: DecodeError.self) { try StoredAlarms.decode([1, 2, 2]) }
        #expect(try StoredAlarms.decode([1]) == [.noSpace])
        #expect(try StoredAlarms.decode([1, 2]) == [.noSpace, .corrupt])
        #expect(try StoredAlarms.decode([]) == [])
    }
}
