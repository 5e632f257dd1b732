import Foundation
import Histogram
import SynodClient
import SynodStateMachine

/// Watch fan-out: `watchers` watches on one prefix, `clients` writers putting under it. Each value
/// carries its send time; the histogram is delivery latency (put sent → event received), and
/// `ops` counts events delivered to all watchers.
func runWatchWorkload(_ spec: WorkloadSpec, clients: [SynodClient], pids: [Int32], live: Bool) async -> RunResult {
    let prefix: [UInt8] = Array("bench-watch/".utf8)
    let progress = Progress()
    let duration = spec.durationSeconds ?? 10
    let start = now()
    let stopAt = start + UInt64(duration * 1e9)
    let cpuBefore = pids.map(cpuSeconds).reduce(0, +)
    let benchBefore = cpuSeconds(pid: getpid())
    let watchTasks = (0..<spec.watchers).map { w in
        Task { () -> Histogram<UInt64> in
            var h = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
            let client = clients[w % clients.count]
            do {
                for try await e in client.watch(prefix, rangeEnd: KeyRange.prefixEnd(prefix)) {
                    let v = e.kv.value
                    guard v.count >= 8 else { continue }
                    let sent = v.prefix(8).reduce(UInt64(0)) { ($0 << 8) | UInt64($1) }
                    let t = now()
                    if t > sent { h.record((t - sent) / 1000) }
                    progress.add(ok: true)
                    if t >= stopAt + 2_000_000_000 { break }
                }
            } catch {
                progress.add(ok: false, error: error)
            }
            return h
        }
    }
    try? await Task.sleep(nanoseconds: 300_000_000) // let the watches establish
    await withTaskGroup(of: Void.self) { g in
        for c in 0..<spec.clients {
            g.addTask {
                var i = c
                while now() < stopAt {
                    var value = withUnsafeBytes(of: now().bigEndian) { Array($0) }
                    value += [UInt8](repeating: 0x61, count: max(0, spec.valueSize - 8))
                    _ = try? await clients[c % clients.count].put(prefix + keyBytes(i % spec.keySpace, size: spec.keySize), value)
                    i += spec.clients
                }
            }
        }
    }
    try? await Task.sleep(nanoseconds: 1_000_000_000)
    var merged = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    for t in watchTasks { t.cancel() }
    for t in watchTasks { merged.add(await t.value) }
    let s = progress.snapshot
    return RunResult(spec: spec, ops: s.ops, errors: s.errors, seconds: Double(now() - start) / 1e9, histogram: merged,
                     clusterCPUSeconds: pids.map(cpuSeconds).reduce(0, +) - cpuBefore, benchCPUSeconds: cpuSeconds(pid: getpid()) - benchBefore, firstError: s.firstError)
}
