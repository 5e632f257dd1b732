import Foundation
import SynodClient
import SynodCore
import SynodSimulation
import SynodStateMachine
import SynodTestSupport

/// A Jepsen-style run on a real cluster: clients put, read and compare-and-swap a few keys
/// while a nemesis (pauses, partitions) strikes; every operation goes into one history, which
/// must be linearizable. The nemesis gets `faultWindow` to strike inside: during each fault a
/// write goes through the nodes the fault spares and is acknowledged, and only then are reads
/// sent to the node it struck — which must not answer them from its stale state.
struct NemesisRun {
    /// Keys the history uses (few, so operations overlap on them).
    static let keys: ClosedRange<UInt8> = 0...2

    var faults: [String]
    var history: [HistoryOp]
    var completed: Int
    var verdict: LinearizabilityVerdict
    /// `synod hashkv` across every node once the faults ended: "3 of 3 endpoints agree".
    var hashKV: (status: Int32, output: String)

    /// The marker writes and the reads sent to a struck node after them (what to print when
    /// the verdict is wrong).
    var lateOperations: [HistoryOp] { history.filter { $0.client >= 50 && $0.client < 99 } }
    var finalReadsCompleted: Bool { history.suffix(Self.keys.count).allSatisfy { $0.complete != nil } }

    /// What a nemesis round may use.
    struct Context {
        let cluster: Cluster
        let client: SynodClient
        /// One client pinned to each node (index n - 1): it starts there and leaves only when
        /// the node redirects it.
        let pinned: [SynodClient]
        let recorder: HistoryRecorder

        /// While node `struck` is cut off or frozen: a write acknowledged through the node
        /// after it, then three reads sent to `struck`, each begun after the write ended. The
        /// caller ends the fault after `holdNanos`; this returns once the reads are answered.
        func markerWriteThenLateReads(struck: Int, round: Int, holdNanos: UInt64, endFault: () -> Void) async throws {
            let other = pinned[struck % pinned.count]
            let m = (9 << 32) + UInt64(round)
            await recorder.run(client: 50, .put(key: 0, value: m)) {
                try await other.put(b("k0"), b("\(m)"))
                return .ok
            }
            let stale = pinned[struck - 1]
            let late = (0..<3).map { _ in Task { await recorder.run(client: UInt64(60 + round), .get(key: 0)) { try await NemesisRun.read(stale, 0) } } }
            try await Task.sleep(nanoseconds: holdNanos)
            endFault()
            for t in late { await t.value }
        }
    }

    /// Runs the workload on `cluster` while `nemesis` strikes (it returns a description of each
    /// fault), then heals, reads every key once more and checks the history. `hashEndpoints`:
    /// the members `synod hashkv` compares at the end (default: the cluster's first `size` nodes;
    /// a nemesis that changes the membership names the members it left). `pinnedDeadlineMillis`:
    /// how long a pinned reader retries one read (a nemesis that stops a node for good wants it
    /// short, or that node's reader waits out every read).
    static func run(_ cluster: Cluster, hashEndpoints: (() -> String)? = nil, pinnedDeadlineMillis: Int64 = 20_000,
                    nemesis: (Context) async throws -> [String]) async throws -> NemesisRun {
        let client = cluster.client(deadlineMillis: 20_000)
        defer { Task { await client.close() } }
        try await client.put(b("warmup"), b("1"))
        let recorder = HistoryRecorder()
        let stop = StopFlag()
        // One reader per node, pinned to it: as a follower it asks the leader for the read
        // index; as a leader (or a deposed leader that has not heard yet) it answers itself.
        let pinned = (1...cluster.size).map { cluster.client(deadlineMillis: pinnedDeadlineMillis, only: $0) }
        defer { for p in pinned { Task { await p.close() } } }
        let readerTasks = pinned.enumerated().map { i, reader in
            NemesisWorkload.reader(client: UInt64(10 + i), seed: UInt64(i) + 70, reader, recorder, stop)
        }
        let workers = (0..<3).map { w in NemesisWorkload.writer(w, seed: UInt64(w) + 7, client, recorder, stop) }
        let faults = try await nemesis(Context(cluster: cluster, client: client, pinned: pinned, recorder: recorder))
        try await Task.sleep(nanoseconds: 500_000_000)
        stop.set()
        for w in workers { await w.value }
        for r in readerTasks { await r.value }
        for key in keys {
            await recorder.run(client: 99, .get(key: key)) { try await read(client, key) }
        }
        let history = await recorder.history
        // Every replica holds the same store once it has caught up (retried while one lags).
        var hash: (Int32, String) = (-1, "")
        for _ in 0..<50 where hash.0 != 0 {
            let (status, out, err) = try runSynod(["hashkv", "--endpoints", hashEndpoints?() ?? cluster.endpointsText])
            hash = (status, out + err)
            if status != 0 { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        return NemesisRun(faults: faults, history: history, completed: history.filter { $0.complete != nil }.count,
                          verdict: LinearizabilityChecker.check(history), hashKV: hash)
    }

    /// For the bug-injecting twins: runs `attempt` until a history is not linearizable, at most
    /// `tries` times. Whether a struck node takes its clients' bytes or its peers' first when it
    /// wakes is a race, so one run can miss a bug that the next shows (it happened in CI).
    static func firstCatch(tries: Int = 3, _ attempt: () async throws -> NemesisRun) async throws -> (run: NemesisRun, tries: Int) {
        try await NemesisWorkload.firstCatch(tries: tries, verdict: \.verdict, attempt)
    }

    static func read(_ c: SynodClient, _ key: UInt8) async throws -> KVResult { try await NemesisWorkload.read(c, key) }
}

/// What the workload needs of a client, Raft's or BFT's.
protocol NemesisKV: Sendable {
    func nemesisPut(_ key: [UInt8], _ value: [UInt8]) async throws
    func nemesisTxn(_ t: Txn) async throws -> TxnResult
    /// A linearizable read (for a BFT client: ordered, or read-only if it was configured so).
    func nemesisGet(_ key: [UInt8]) async throws -> KeyValue?
}

extension SynodClient: NemesisKV {
    func nemesisPut(_ key: [UInt8], _ value: [UInt8]) async throws { try await put(key, value) }
    func nemesisTxn(_ t: Txn) async throws -> TxnResult { try await txn(t) }
    func nemesisGet(_ key: [UInt8]) async throws -> KeyValue? { try await get(key) }
}

extension SynodBFTClient: NemesisKV {
    func nemesisPut(_ key: [UInt8], _ value: [UInt8]) async throws { _ = try await put(key, value) }
    func nemesisTxn(_ t: Txn) async throws -> TxnResult { try await txn(t) }
    func nemesisGet(_ key: [UInt8]) async throws -> KeyValue? { try await get(key) }
}

/// The clients of a nemesis run, shared by `NemesisRun` (Raft) and `BFTNemesisRun`.
enum NemesisWorkload {
    /// Reads random keys until `stop`, each recorded as client `client`.
    static func reader(client: UInt64, seed: UInt64, _ c: some NemesisKV, _ recorder: HistoryRecorder, _ stop: StopFlag) -> Task<Void, Never> {
        Task {
            var rng = SeededRandom(seed: seed)
            while !stop.isSet {
                let key = UInt8(rng.int(in: Int(NemesisRun.keys.lowerBound)...Int(NemesisRun.keys.upperBound)))
                await recorder.run(client: client, .get(key: key)) { try await read(c, key) }
            }
        }
    }

    /// Worker `w` until `stop`: puts, compare-and-swaps against the value it last read, and
    /// reads, on random keys; its values are `(w + 1) << 32` onwards, unique across workers.
    static func writer(_ w: Int, seed: UInt64, _ c: some NemesisKV, _ recorder: HistoryRecorder, _ stop: StopFlag) -> Task<Void, Never> {
        Task {
            var rng = SeededRandom(seed: seed)
            var next = UInt64(w + 1) << 32
            var seen: [UInt8: UInt64] = [:]
            while !stop.isSet {
                let key = UInt8(rng.int(in: Int(NemesisRun.keys.lowerBound)...Int(NemesisRun.keys.upperBound)))
                next += 1
                let v = next
                switch rng.int(in: 0...2) {
                case 0:
                    await recorder.run(client: UInt64(w), .put(key: key, value: v)) {
                        try await c.nemesisPut(b("k\(key)"), b("\(v)"))
                        return .ok
                    }
                case 1:
                    let expected = seen[key]
                    await recorder.run(client: UInt64(w), .compareAndSwap(key: key, expected: expected, new: v)) {
                        try await compareAndSwap(c, key, expected: expected, new: v)
                    }
                default:
                    let box = ResultBox()
                    await recorder.run(client: UInt64(w), .get(key: key)) {
                        let r = try await read(c, key)
                        box.set(r)
                        return r
                    }
                    if case let .value(x)? = box.value { seen[key] = x }
                }
            }
        }
    }

    /// Runs `attempt` until `verdict` says a history is not linearizable, at most `tries` times.
    static func firstCatch<Run>(tries: Int, verdict: (Run) -> LinearizabilityVerdict, _ attempt: () async throws -> Run) async throws -> (run: Run, tries: Int) {
        var last = try await attempt()
        var n = 1
        while verdict(last) == .linearizable && n < tries {
            last = try await attempt()
            n += 1
        }
        return (last, n)
    }

    static func read(_ c: some NemesisKV, _ key: UInt8) async throws -> KVResult {
        let kv = try await c.nemesisGet(b("k\(key)"))
        return .value(kv.map { UInt64(s($0.value))! })
    }

    /// A compare-and-swap as a transaction: the value equals `expected` (or the key is absent).
    static func compareAndSwap(_ c: some NemesisKV, _ key: UInt8, expected: UInt64?, new: UInt64) async throws -> KVResult {
        let k = b("k\(key)")
        let compare = expected.map { Compare(key: k, .equal, .value(b("\($0)"))) } ?? Compare(key: k, .equal, .exists(false))
        let r = try await c.nemesisTxn(Txn(compares: [compare], success: [.put(key: k, value: b("\(new)"), lease: nil, prevKV: false)]))
        return .swapped(r.succeeded)
    }
}

/// One result handed out of a `@Sendable` closure.
final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: KVResult?
    var value: KVResult? { lock.lock(); defer { lock.unlock() }; return stored }
    func set(_ v: KVResult) { lock.lock(); stored = v; lock.unlock() }
}
