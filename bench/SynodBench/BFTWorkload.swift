import Foundation
import Histogram
import NIOCore
import NIOPosix
import SynodClient
import SynodCore
import SynodCrypto
import SynodPBFT
import SynodStateMachine
import SynodTransport

/// BFT mode (`--mode bft`): one `SynodBFTClient` per simulated client (pBFT allows one request
/// in flight per client id), all on one event-loop thread. Writes are accepted on f+1 matching
/// replies, reads are ordered (f+1) — the same guarantees a BFT-SMaRt client gets.
func runBFTWorkload(_ spec: WorkloadSpec, endpoints: [HostPort], keyDirectory: String, pids: [Int32], live: Bool) async throws -> RunResult {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var built: [SynodBFTClient] = []
    for c in 1...spec.clients {
        guard let data = FileManager.default.contents(atPath: keyDirectory + "/client-\(c).key") else { throw BenchError("no key file for client \(c)") }
        let (_, keys) = try PBFTKeyring.decode(Array(data))
        var config = SynodBFTClient.Configuration(endpoints: endpoints, keys: keys, id: ClientID(UInt64(c)))
        config.timeoutMillis = 30_000
        built.append(try SynodBFTClient(config, group: group))
    }
    let clients = built
    // Wait until the replicas answer.
    var ready = false
    for _ in 0..<100 where !ready {
        ready = (try? await clients[0].put(Array("bench-ready".utf8), [1])) != nil
    }
    guard ready else {
        for c in clients { await c.close() }
        throw BenchError("the BFT cluster did not answer")
    }
    let value = [UInt8](repeating: 0x61, count: spec.valueSize)
    if spec.kind == .get || spec.kind == .mixed {
        let fill = min(spec.keySpace, 2_000)
        await withTaskGroup(of: Void.self) { g in
            for w in 0..<min(clients.count, fill) {
                g.addTask { for k in stride(from: w, to: fill, by: clients.count) { _ = try? await clients[w].put(keyBytes(k, size: spec.keySize), value) } }
            }
        }
    }
    var rounds: [WorkloadSpec] = []
    if spec.warmupSeconds > 0 {
        var warm = spec
        warm.durationSeconds = spec.warmupSeconds
        warm.total = nil
        rounds.append(warm)
    }
    rounds.append(spec)
    var result: RunResult?
    for (i, s) in rounds.enumerated() {
        let last = i == rounds.count - 1
        result = await measured(s, pids: pids, live: live && last) { progress, deadline, perClient in
            await clientLoops(s, progress: progress, deadline: deadline, perClient: perClient) { c, next, key in
                switch next {
                case .put: _ = try await clients[c].put(key, value)
                case .get: _ = try await clients[c].get(key)
                case .txn: _ = try await clients[c].txn(s.casTxn(key, value))
                }
            }
        }
    }
    for c in clients { await c.close() }
    try? await group.shutdownGracefully()
    return result!
}
