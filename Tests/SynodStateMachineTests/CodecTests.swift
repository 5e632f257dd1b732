import SynodCore
@testable import SynodStateMachine
import Testing

/// A small deterministic generator (SplitMix64) so a failing case reproduces from its seed.
struct Mix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

let kvSample = KeyValue(key: b("k"), value: b("v"), createRevision: 2, modRevision: 3, version: 2, lease: LeaseID(9))

let sampleEnvelopes: [CommandEnvelope] = [
    CommandEnvelope(command: .put(key: b("a"), value: b("1"), lease: nil, prevKV: false)),
    CommandEnvelope(session: ClientSession(clientID: 3, sequence: 4), command: .put(key: b("a"), value: [0, 255], lease: LeaseID(2), prevKV: true)),
    CommandEnvelope(command: .delete(key: b("a"), prevKV: true)),
    CommandEnvelope(command: .putIgnoring(key: b("a"), value: [], lease: LeaseID(4), prevKV: true, ignoreValue: true, ignoreLease: false)),
    CommandEnvelope(command: .txn(Txn(compares: [Compare(key: b("a"), .greater, .lease(LeaseID(9))), Compare(key: b("b"), .equal, .lease(nil))], success: []))),
    CommandEnvelope(command: .putIgnoring(key: b("a"), value: b("v"), lease: nil, prevKV: false, ignoreValue: false, ignoreLease: true)),
    CommandEnvelope(command: .deleteRange(from: b("a"), to: [], prevKV: false)),
    CommandEnvelope(command: .txn(Txn(
        compares: [Compare(key: b("a"), .equal, .value(b("x"))), Compare(key: b("b"), .less, .version(3)),
                   Compare(key: b("c"), .greater, .createRevision(1)), Compare(key: b("d"), .notEqual, .modRevision(-1)),
                   Compare(key: b("e"), .equal, .exists(false))],
        success: [.put(key: b("a"), value: b("y"), lease: nil, prevKV: true), .range(RangeRequest(key: b("a"), rangeEnd: [0], limit: 5, keysOnly: true, countOnly: false, revision: nil))],
        failure: [.delete(key: b("a"), prevKV: false), .deleteRange(from: b("a"), to: b("b"), prevKV: true)]))),
    CommandEnvelope(command: .txn(Txn(compares: [], success: [.range({
        var r = RangeRequest(key: b("a"), rangeEnd: [0], limit: 2, sortOrder: .descend, sortTarget: .mod)
        (r.minModRevision, r.maxModRevision, r.minCreateRevision, r.maxCreateRevision) = (1, 2, 3, 4)
        return r
    }())]))),
    CommandEnvelope(command: .leaseGrant(id: LeaseID(1), ttlMillis: 10_000)),
    CommandEnvelope(command: .leaseRevoke(id: LeaseID(1))),
    CommandEnvelope(command: .leaseExpire(ids: [LeaseID(1), LeaseID(2)])),
    CommandEnvelope(command: .compact(revision: 77)),
    CommandEnvelope(command: .mesh(.join(agent: "a", capabilities: ["gpu", "ssd"], resources: 500), ifVersion: nil)),
    CommandEnvelope(command: .mesh(.report(agent: "a", load: 250, resources: 1000), ifVersion: 12)),
    CommandEnvelope(command: .mesh(.report(agent: "a", load: 0, resources: nil), ifVersion: nil)),
    CommandEnvelope(command: .mesh(.suspect(agent: "a", observer: "b"), ifVersion: nil)),
    CommandEnvelope(command: .mesh(.leave(agent: "a"), ifVersion: nil)),
    CommandEnvelope(command: .mesh(.submit(task: "t", requires: ["gpu"], cost: 100), ifVersion: 3)),
    CommandEnvelope(command: .mesh(.complete(task: "t", agent: "a"), ifVersion: nil)),
    CommandEnvelope(command: .mesh(.steal(agent: "b"), ifVersion: nil)),
    CommandEnvelope(command: .mesh(.rebalance, ifVersion: 1)),
    CommandEnvelope(command: .alarm(.noSpace, raised: true)),
    CommandEnvelope(command: .alarm(.corrupt, raised: true)),
    CommandEnvelope(session: ClientSession(clientID: 1, sequence: 1), command: .alarm(.noSpace, raised: false)),
    CommandEnvelope(command: .clusterVersion(1)), CommandEnvelope(command: .clusterVersion(513)),
    CommandEnvelope(session: ClientSession(clientID: 2, sequence: 3), command: .auth(.roleGrantPermission(role: "r", permission: KeyPermission(.readWrite, key: [1], rangeEnd: [0]))),
                    principal: AuthPrincipal(user: "root", generation: 4)),
    CommandEnvelope(command: .auth(.userAdd(name: "u", credential: PasswordCredential(salt: [1, 2], hash: [3, 4], rounds: 10_000)))),
    CommandEnvelope(command: .put(key: [1], value: [2], lease: nil, prevKV: false), principal: .anonymous),
]

let sampleResponses: [Response] = [
    .put(PutResult(revision: 5, prevKV: kvSample)),
    .put(PutResult(revision: 5, prevKV: nil)),
    .delete(DeleteResult(revision: 6, deleted: 2, prevKVs: [kvSample, kvSample])),
    .range(RangeResult(revision: 7, kvs: [kvSample], count: 10, more: true)),
    .txn(TxnResult(revision: 8, succeeded: false, results: [.put(PutResult(revision: 8, prevKV: nil)),
                                                          .delete(DeleteResult(revision: 8, deleted: 0, prevKVs: [])),
                                                          .range(RangeResult(revision: 8, kvs: [], count: 0, more: false))])),
    .leaseGrant(LeaseGrantResult(revision: 1, id: LeaseID(4), ttlMillis: 100)),
    .leaseRevoke(LeaseRevokeResult(revision: 2, leases: [LeaseID(4)], deletedKeys: 3)),
    .leaseExpire(LeaseRevokeResult(revision: 2, leases: [], deletedKeys: 0)),
    .compact(CompactResult(revision: 9, compactedRevision: 4)),
    .failure(.emptyKey), .failure(.keyTooLarge(bytes: 600, limit: 503)), .failure(.valueTooLarge(bytes: 1, limit: 0)),
    .failure(.tooManyOps(count: 200, limit: 128)), .failure(.leaseNotFound(LeaseID(3))), .failure(.leaseExists(LeaseID(3))),
    .failure(.invalidLease(LeaseID(0), ttlMillis: -1)), .failure(.compacted(requested: 3, oldestAvailable: 9)),
    .failure(.futureRevision(requested: 30, current: 9)), .failure(.staleSession(clientID: 1, sequence: 2, lastApplied: 3)),
    .failure(.responseNotCached(clientID: 1, sequence: 2)), .failure(.historyTooLarge(limit: 5)),
    .failure(.invalidRequest("why")), .failure(.malformedCommand("what")),
    .mesh(MeshResult(revision: 4, version: 4, moves: [MeshMove(task: "t", from: nil, to: "a"), MeshMove(task: "u", from: "a", to: nil)], failed: ["a"])),
    .failure(.meshVersionStale(expected: 3, current: 4)), .failure(.meshRefused("no")),
    .alarm(AlarmResult(revision: 3, alarms: [.noSpace])), .alarm(AlarmResult(revision: 3, alarms: [])), .failure(.noSpace),
    .alarm(AlarmResult(revision: 4, alarms: [.noSpace, .corrupt])), .failure(.corruptCluster),
    .clusterVersion(ClusterVersionResult(revision: 5, version: 1)),
]

let sampleMeshRecords: [[UInt8]] = [
    MeshAgent(name: "a", capabilities: ["gpu"], resources: 10, baseLoad: 20, performance: 30, failed: true, suspectedBy: ["b", "c"], beats: 7).encode(),
    MeshTask(id: "t", requires: ["gpu"], cost: 5, sequence: 9, agent: "a").encode(),
    MeshTask(id: "u", requires: [], cost: 0, sequence: 0, agent: nil).encode(),
]

@Suite("Command and response encodings")
struct CodecTests {
    @Test("envelopes round-trip", arguments: sampleEnvelopes)
    func envelopeRoundTrip(e: CommandEnvelope) throws {
        #expect(try CommandEnvelope.decode(e.encode()) == e)
    }

    @Test("responses round-trip", arguments: sampleResponses)
    func responseRoundTrip(r: Response) throws {
        #expect(try Response.decode(r.encode()) == r)
    }

    @Test("range requests and watch events round-trip")
    func others() throws {
        var r = RangeRequest(key: b("a"), rangeEnd: b("b"), limit: 3, keysOnly: true, countOnly: true, revision: 12)
        #expect(try RangeRequest.decode(r.encode()) == r)
        // A plain range encodes as before ordering existed (older builds read it; logs unchanged).
        #expect(r.encode() == [1, 0, 0, 0, 1, 0x61, 0, 0, 0, 1, 0x62, 0, 0, 0, 0, 0, 0, 0, 3, 7, 0, 0, 0, 0, 0, 0, 0, 12])
        for order in RangeSortOrder.allCases {
            for target in RangeSortTarget.allCases {
                r.sortOrder = order
                r.sortTarget = target
                r.maxCreateRevision = Int64(target.rawValue)
                #expect(try RangeRequest.decode(r.encode()) == r)
            }
        }
        // An extension holding only defaults is not canonical: refused, as an older build does.
        var plainFlags = RangeRequest(key: b("a")).encode()
        plainFlags[plainFlags.count - 1] = 8
        plainFlags += [0, 0] + [UInt8](repeating: 0, count: 32)
        #expect(throws: DecodeError.self) { try RangeRequest.decode(plainFlags) }
        var bad = r.encode()
        bad[bad.count - 34] = 3  // the sort order byte (then the target, then four revisions)
        #expect(throws: DecodeError.self) { try RangeRequest.decode(bad) }
        let e = WatchEvent(type: .delete, kv: kvSample, prevKV: kvSample, revision: 3)
        #expect(try WatchEvent.decode(e.encode()) == e)
    }

    @Test("bad versions, tags, trailing bytes and huge lengths are typed errors")
    func badInput() {
        #expect(throws: DecodeError.unknownValue(what: "command envelope version", value: 3)) { try CommandEnvelope.decode([3, 0]) }
        #expect(throws: DecodeError.self) { try CommandEnvelope.decode([2, 0]) }
        #expect(throws: DecodeError.unknownValue(what: "command tag", value: 99)) { try CommandEnvelope.decode([1, 0, 99]) }
        #expect(throws: DecodeError.trailingBytes(count: 1)) { try CommandEnvelope.decode(sampleEnvelopes[0].encode() + [0]) }
        #expect(throws: DecodeError.lengthTooLarge(what: "put key", length: Int(UInt32.max), limit: KVLimits.decodeBytesMax)) {
            try CommandEnvelope.decode([1, 0, 1, 255, 255, 255, 255])
        }
        #expect(throws: DecodeError.self) { try Response.decode([]) }
        // A forged count larger than the input is refused before allocating.
        #expect(throws: DecodeError.self) { try Response.decode([1, 3] + [UInt8](repeating: 0, count: 17) + [0, 15, 255, 255]) }
    }

    @Test("mesh records round-trip")
    func meshRecords() throws {
        let agent = MeshAgent(name: "a", capabilities: ["gpu"], resources: 10, baseLoad: 20, performance: 30, failed: true, suspectedBy: ["b", "c"], beats: 1 << 40)
        #expect(try MeshAgent.decode(agent.encode()) == agent)
        for task in [MeshTask(id: "t", requires: ["gpu"], cost: 5, sequence: 9, agent: "a"), MeshTask(id: "u", requires: [], cost: 0, sequence: 0, agent: nil)] {
            #expect(try MeshTask.decode(task.encode()) == task)
        }
        #expect(throws: DecodeError.self) { try MeshAgent.decode(MeshTask(id: "t", requires: [], cost: 1, sequence: 1, agent: nil).encode()) }
    }

    @Test("random bytes never trap the decoders", arguments: [1, 2, 3] as [UInt64])
    func randomBytes(seed: UInt64) {
        var rng = Mix(state: seed)
        for _ in 0..<3_000 {
            let n = Int.random(in: 0..<64, using: &rng)
            var bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if !bytes.isEmpty && Bool.random(using: &rng) { bytes[0] = 1 } // get past the version byte
            _ = try? CommandEnvelope.decode(bytes)
            _ = try? Response.decode(bytes)
            _ = try? RangeRequest.decode(bytes)
            _ = try? WatchEvent.decode(bytes)
            _ = try? MeshAgent.decode(bytes)
            _ = try? MeshTask.decode(bytes)
        }
    }

    @Test("mutated valid encodings never trap and never decode to garbage silently", arguments: [7, 8] as [UInt64])
    func mutations(seed: UInt64) {
        var rng = Mix(state: seed)
        let envelopes = sampleEnvelopes.map { $0.encode() }
        let responses = sampleResponses.map { $0.encode() }
        for _ in 0..<2_000 {
            for (corpus, decode) in [(envelopes, { (x: [UInt8]) in _ = try CommandEnvelope.decode(x) }),
                                     (responses, { (x: [UInt8]) in _ = try Response.decode(x) }),
                                     (Array(sampleMeshRecords.prefix(1)), { (x: [UInt8]) in _ = try MeshAgent.decode(x) }),
                                     (Array(sampleMeshRecords.dropFirst()), { (x: [UInt8]) in _ = try MeshTask.decode(x) })] {
                var bytes = corpus[Int.random(in: 0..<corpus.count, using: &rng)]
                switch Int.random(in: 0..<4, using: &rng) {
                case 0 where !bytes.isEmpty: bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                case 1 where !bytes.isEmpty: bytes.removeLast(Int.random(in: 1...bytes.count, using: &rng))
                case 2: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 0...bytes.count, using: &rng))
                default: if bytes.count > 4 { let i = Int.random(in: 0..<(bytes.count - 4), using: &rng); bytes.replaceSubrange(i..<(i + 4), with: [255, 255, 255, 255]) }
                }
                do { try decode(bytes) } catch is DecodeError {} catch { Issue.record("untyped error \(error)") }
            }
        }
    }

    @Test("a malformed entry is applied as an error response, never a trap", arguments: StoreKind.allCases)
    func malformedEntries(kind: StoreKind) throws {
        let h = try Harness(kind)
        var rng = Mix(state: 11)
        var entries: [Entry] = []
        // A flipped cluster version still decodes: a version this build does not support stops
        // the replica by design (`ClusterVersionUnsupported`, ClusterVersionTests), not an error.
        let samples = sampleEnvelopes.filter { if case .clusterVersion = $0.command { false } else { true } }
        for i in 1...300 {
            var bytes = samples[i % samples.count].encode()
            if !bytes.isEmpty { bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng) }
            entries.append(Entry(index: LogIndex(UInt64(i)), term: Term(1), kind: .command, payload: bytes))
        }
        let applied = try h.sm.apply(entries)
        #expect(applied.count == 300)
        #expect(applied.allSatisfy { $0.response != nil })
    }
}
