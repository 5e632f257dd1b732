import Foundation
import SynodClient
import SynodStateMachine
import SynodTestSupport
import SynodTransport
import Testing

extension RealProcessTests {
/// Exactly-once writes (client sessions) on real processes: what etcd does not promise. Every
/// client connection goes through a `LinkProxy` (each node advertises its proxy, so redirects
/// stay behind it too), and the proxies reset every connection every 30 ms while writers put
/// fresh keys: responses are lost in flight, and `SynodClient` retries under the same session
/// sequence number. Each key's `version` counts the puts applied to it — 1 if its put was
/// applied once, 2 if a retry was applied again.
@Suite("Exactly-once writes under client connection resets")
struct ExactlyOnceTests {
    struct Outcome {
        var acknowledged = 0
        var unknown = 0
        var doubled: [String] = []
        var lost: [String] = []
        var resets = 0
    }

    static let writers = 6
    static let putsPerWriter = 40

    static func run(extraArgs: [String]) async throws -> Outcome {
        let cluster = try Cluster(size: 3, extraArgs: extraArgs) { c in
            let base = LoopbackPorts.freeBase(count: c.size)
            for n in 1...c.size { c.proxies.append(try LinkProxy(listenPort: base + n - 1, targetPort: c.clientPort(n))) }
            c.nodeArgs = { n in ["--advertise-client", "127.0.0.1:\(base + n - 1)"] }
        }
        var configuration = ClientConfiguration(endpoints: cluster.proxies.map { HostPort(host: "127.0.0.1", port: $0.listenPort) })
        configuration.retryDeadlineMillis = 20_000
        configuration.requestTimeoutMillis = 2_000
        let client = SynodClient(configuration)
        try await client.put(b("warmup"), b("1"))
        let stop = StopFlag()
        defer { stop.set() }   // on any throw too: the resetter holds the cluster, whose deinit stops the nodes
        let resetter = Task.detached { () -> Int in
            var resets = 0
            while !stop.isSet {
                for p in cluster.proxies { p.resetConnections() }
                resets += 1
                try? await Task.sleep(nanoseconds: 30_000_000)
            }
            return resets
        }
        let results = await withTaskGroup(of: [(String, Bool)].self) { group in
            for w in 0..<Self.writers {
                group.addTask {
                    var out: [(String, Bool)] = []
                    for i in 0..<Self.putsPerWriter {
                        let key = "once-\(w)-\(i)"
                        do { try await client.put(b(key), b("v")); out.append((key, true)) } catch { out.append((key, false)) }
                    }
                    return out
                }
            }
            var all: [(String, Bool)] = []
            for await r in group { all += r }
            return all
        }
        stop.set()
        var outcome = Outcome()
        outcome.resets = await resetter.value
        await client.close()
        // Read back directly (no proxy), from the leader.
        let reader = cluster.client()
        defer { Task { await reader.close() } }
        for (key, acknowledged) in results.sorted(by: { $0.0 < $1.0 }) {
            let kv = try await reader.get(b(key))
            if acknowledged { outcome.acknowledged += 1 } else { outcome.unknown += 1 }
            if acknowledged && kv == nil { outcome.lost.append(key) }
            if let kv, kv.version > 1 { outcome.doubled.append("\(key) version \(kv.version)") }
        }
        return outcome
    }

    @Test("fresh keys put while every client connection is reset every 30 ms: each applied once, none acknowledged lost")
    func resetsApplyOnce() async throws {
        let o = try await Self.run(extraArgs: [])
        print("exactly-once: \(o.acknowledged) acknowledged, \(o.unknown) unknown, \(o.resets) reset rounds, doubled \(o.doubled.count), lost \(o.lost.count)")
        #expect(o.resets >= 20, "the proxies barely reset anything (\(o.resets))")
        #expect(o.acknowledged >= Self.writers * Self.putsPerWriter / 2, "only \(o.acknowledged) puts acknowledged")
        #expect(o.doubled.isEmpty, "applied twice: \(o.doubled.prefix(5))")
        #expect(o.lost.isEmpty, "acknowledged and lost: \(o.lost.prefix(5))")
    }

    /// The twin: nodes that apply a retried command again (`--testing-apply-retries-again`)
    /// must be caught with a key at version 2.
    @Test("the same run catches nodes that apply a retried command again")
    func doubleApplyIsCaught() async throws {
        var caught: Outcome?
        for _ in 0..<3 where caught == nil {
            let o = try await Self.run(extraArgs: ["--testing-apply-retries-again"])
            if !o.doubled.isEmpty { caught = o }
        }
        print("double apply: \(caught.map { "\($0.doubled.count) keys doubled, e.g. \($0.doubled.prefix(3))" } ?? "never caught")")
        #expect(caught != nil, "no retried put was applied twice in 3 runs: the test no longer reaches the session check")
    }
}
}
