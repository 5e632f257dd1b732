import Foundation
import Histogram
import NIOConcurrencyHelpers
import SynodClient
import SynodCore
import SynodStateMachine
import SynodTransport
import NIOCore
import SynodWire

enum WorkloadKind: String, CaseIterable, Sendable {
    /// `keepalive`: lease keep-alives (one lease per simulated client, granted first, wire
    /// driver only) — what a fleet of lock holders or mesh agents costs the leader.
    case put, get, mixed, txn, watch, keepalive
}

enum KeyOrder: String, CaseIterable, Sendable {
    case sequential, random
}

/// What one run does.
struct WorkloadSpec: Sendable {
    var kind: WorkloadKind
    var clients: Int
    var conns: Int
    var keySize: Int
    var valueSize: Int
    var keys: KeyOrder
    var keySpace: Int
    var durationSeconds: Double?
    var total: Int?
    var warmupSeconds: Double
    var consistency: Consistency
    var readFraction: Double
    var watchers: Int
    /// `keepalive`: the leases the simulated clients renew (granted before the run).
    var leases: [UInt64] = []

    /// The next key number for a simulated client whose sequence is `seq` (both drivers).
    func nextKey(_ seq: inout Int, _ rng: inout SystemRandomNumberGenerator) -> Int {
        guard keys == .sequential else { return Int.random(in: 0..<keySpace, using: &rng) }
        defer { seq += clients }
        return seq % keySpace
    }

    /// Whether the next request is a read (get always, mixed by `readFraction`).
    func nextIsRead(_ rng: inout SystemRandomNumberGenerator) -> Bool {
        switch kind {
        case .get: return true
        case .mixed: return Double.random(in: 0..<1, using: &rng) < readFraction
        default: return false
        }
    }
}

/// What one run measured.
struct RunResult: Sendable {
    var spec: WorkloadSpec
    var ops: Int
    var errors: Int
    var seconds: Double
    var histogram: Histogram<UInt64>
    var clusterCPUSeconds: Double
    var benchCPUSeconds: Double
    var firstError: String?

    var opsPerSecond: Double { Double(ops) / seconds }
    func ms(_ percentile: Double) -> Double { Double(histogram.valueAtPercentile(percentile)) / 1000 }
    var maxMs: Double { Double(histogram.max) / 1000 }
}

/// Shared counters for progress and stop.
final class Progress: Sendable {
    let state = NIOLockedValueBox<(ops: Int, errors: Int, firstError: String?)>((0, 0, nil))
    func add(okCount: Int) { state.withLockedValue { $0.ops += okCount } }
    func add(ok: Bool, error: (any Error)? = nil) {
        state.withLockedValue { s in
            if ok { s.ops += 1 } else {
                s.errors += 1
                if s.firstError == nil, let error { s.firstError = "\(error)" }
            }
        }
    }
    var snapshot: (ops: Int, errors: Int, firstError: String?) { state.withLockedValue { $0 } }
}

func keyBytes(_ n: Int, size: Int) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: size)
    var v = UInt64(n)
    var i = size - 1
    while i >= 0 && v > 0 {
        out[i] = UInt8(truncatingIfNeeded: v)
        v >>= 8
        i -= 1
    }
    return out
}

func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Which load generator drives the requests (see WireDriver.swift).
enum Driver: String, CaseIterable, Sendable {
    /// NIO handlers sending the next request from the event loop (default).
    case wire
    /// SynodClient's async API, one task per simulated client.
    case client
}

/// Runs one workload against `clients` (one per connection) and returns its measurements.
/// With `wire` targets, the measured phases use the wire driver against them (the leader first;
/// connections take the targets in turn).
func runWorkload(_ spec: WorkloadSpec, clients: [SynodClient], wire: WireTargets?, pids: [Int32], live: Bool) async -> RunResult {
    let value = [UInt8](repeating: 0x61, count: spec.valueSize)
    if spec.kind == .get || spec.kind == .mixed {
        // Reads need something to read: fill the key space once.
        let fill = min(spec.keySpace, 10_000)
        await withTaskGroup(of: Void.self) { g in
            for w in 0..<min(64, fill) {
                g.addTask {
                    for k in stride(from: w, to: fill, by: 64) { _ = try? await clients[k % clients.count].put(keyBytes(k, size: spec.keySize), value) }
                }
            }
        }
    }
    var spec = spec
    if spec.kind == .keepalive {
        // One lease per simulated client (at most 1,000), long enough to outlive the run.
        for _ in 0..<min(spec.clients, 1_000) {
            if let id = try? await clients[0].leaseGrant(ttlMillis: 600_000) { spec.leases.append(id.rawValue) }
        }
    }
    if spec.warmupSeconds > 0 {
        var warm = spec
        warm.durationSeconds = spec.warmupSeconds
        warm.total = nil
        if let wire {
            _ = await measureWire(warm, wire, value: value, pids: pids, live: false)
        } else {
            _ = await measure(warm, clients: clients, value: value, pids: pids, live: false)
        }
    }
    if let wire { return await measureWire(spec, wire, value: value, pids: pids, live: live) }
    return await measure(spec, clients: clients, value: value, pids: pids, live: live)
}

/// The frame every measured run shares: a live progress line, the run's deadline and per-client
/// quota, CPU accounting for the cluster and the generator, and the merged result. `body` drives
/// the requests and returns one histogram per simulated client (or connection).
func measured(_ spec: WorkloadSpec, pids: [Int32], live: Bool,
              _ body: (_ progress: Progress, _ deadline: UInt64?, _ perClient: Int?) async -> [Histogram<UInt64>]) async -> RunResult {
    let progress = Progress()
    let start = now()
    let deadline = spec.durationSeconds.map { start + UInt64($0 * 1e9) }
    let perClient = spec.total.map { max(1, $0 / spec.clients) }
    let cpuBefore = pids.map(cpuSeconds).reduce(0, +)
    let benchBefore = cpuSeconds(pid: getpid())
    let reporter = live ? Task {
        var last = 0
        while !Task.isCancelled {
            try? await Task.sleep(nanoseconds: 1_000_000_000)
            if Task.isCancelled { break }
            let s = progress.snapshot
            FileHandle.standardError.write(Data(String(format: "\r%8.1fs  %9d ops  %8d ops/s  %d errors   ", Double(now() - start) / 1e9, s.ops, s.ops - last, s.errors).utf8))
            last = s.ops
        }
    } : nil
    let histograms = await body(progress, deadline, perClient)
    reporter?.cancel()
    if live { FileHandle.standardError.write(Data("\n".utf8)) }
    let seconds = Double(now() - start) / 1e9
    var merged = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    for h in histograms { merged.add(h) }
    let s = progress.snapshot
    return RunResult(spec: spec, ops: s.ops, errors: s.errors, seconds: seconds, histogram: merged,
                     clusterCPUSeconds: pids.map(cpuSeconds).reduce(0, +) - cpuBefore, benchCPUSeconds: cpuSeconds(pid: getpid()) - benchBefore,
                     firstError: s.firstError)
}

/// The operation a simulated client sends next.
enum NextOp: Sendable { case put, get, txn }

extension WorkloadSpec {
    /// Put for put and watch runs, a read by `readFraction` for get and mixed, a compare-and-swap
    /// for txn.
    func nextOp(_ rng: inout SystemRandomNumberGenerator) -> NextOp {
        switch kind {
        case .put, .watch: return .put
        case .get, .mixed: return nextIsRead(&rng) ? .get : .put
        case .txn: return .txn
        case .keepalive: return .put   // never asked: keep-alive runs use the wire driver (validated)
        }
    }

    /// The compare-and-swap a txn run sends: put if the key exists with any version.
    func casTxn(_ key: [UInt8], _ value: [UInt8]) -> Txn {
        Txn(compares: [Compare(key: key, .greater, .version(-1))], success: [.put(key: key, value: value, lease: nil, prevKV: false)])
    }
}

/// One closed-loop task per simulated client (both client-based drivers): pick the next key and
/// operation, run `op`, record its latency, until the deadline or the per-client quota.
func clientLoops(_ spec: WorkloadSpec, progress: Progress, deadline: UInt64?, perClient: Int?,
                 _ op: @escaping @Sendable (_ client: Int, _ next: NextOp, _ key: [UInt8]) async throws -> Void) async -> [Histogram<UInt64>] {
    await withTaskGroup(of: Histogram<UInt64>.self) { group -> [Histogram<UInt64>] in
        for c in 0..<spec.clients {
            group.addTask {
                var h = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
                var rng = SystemRandomNumberGenerator()
                var seq = c
                var done = 0
                while true {
                    if let deadline, now() >= deadline { break }
                    if let perClient, done >= perClient { break }
                    let key = keyBytes(spec.nextKey(&seq, &rng), size: spec.keySize)
                    let next = spec.nextOp(&rng)
                    let t0 = now()
                    do {
                        try await op(c, next, key)
                        h.record((now() - t0) / 1000)
                        progress.add(ok: true)
                    } catch {
                        progress.add(ok: false, error: error)
                    }
                    done += 1
                }
                return h
            }
        }
        var all: [Histogram<UInt64>] = []
        for await h in group { all.append(h) }
        return all
    }
}

private func measure(_ spec: WorkloadSpec, clients: [SynodClient], value: [UInt8], pids: [Int32], live: Bool) async -> RunResult {
    await measured(spec, pids: pids, live: live) { progress, deadline, perClient in
        await clientLoops(spec, progress: progress, deadline: deadline, perClient: perClient) { c, next, key in
            let client = clients[c % clients.count]
            switch next {
            case .put: try await client.put(key, value)
            case .get: _ = try await client.get(key, consistency: spec.consistency)
            case .txn: _ = try await client.txn(spec.casTxn(key, value))
            }
        }
    }
}
