import Foundation
import SynodClient
import SynodCore
import SynodStateMachine
import SynodTestSupport
import Testing

extension RealProcessTests {
/// The leader's periodic corruption check on real processes: with one replica whose state
/// machine corrupts values (an injected bug) it raises CORRUPT and writes stop; a healthy cluster
/// checked every second raises nothing.
@Suite("Corruption check on a real cluster")
struct CorruptionCheckTests {
    func work(_ client: SynodClient) async throws {
        for i in 0..<30 { try await client.put(b("c/\(i % 7)"), b("\(i)")) }
        try await client.delete(b("c/1"))
    }

    @Test("a replica that corrupts values is found within seconds; CORRUPT stops writes until disarmed")
    func divergenceRaisesCorrupt() async throws {
        let cluster = try Cluster(size: 3, extraArgs: ["--corrupt-check-interval", "1"], nodeArgs: { $0 == 3 ? ["--testing-corrupt-puts"] : [] })
        let client = cluster.client()
        defer { Task { await client.close() } }
        try await work(client)
        var raised = false
        for _ in 0..<100 where !raised {
            try await Task.sleep(nanoseconds: 100_000_000)
            raised = (try? await client.alarms()) == [.corrupt]
        }
        #expect(raised, "no CORRUPT alarm within 10 s")
        await #expect(throws: ClientError.kv(.corruptCluster)) { try await client.put(b("c/after"), b("x")) }
        #expect(try await client.get(b("c/2")) != nil, "reads still run")
        let logs = (1...3).map(cluster.log).joined()
        #expect(logs.contains("odd_members=[3]"), "the leader names the odd member: \(logs.suffix(600))")
        #expect(try await client.disarm(.corrupt) == [])
    }

    @Test("a healthy cluster checked every second raises nothing")
    func healthyClusterStaysClear() async throws {
        let cluster = try Cluster(size: 3, extraArgs: ["--corrupt-check-interval", "1"])
        let client = cluster.client()
        defer { Task { await client.close() } }
        try await work(client)
        try await Task.sleep(nanoseconds: 2_500_000_000)
        try await work(client)
        #expect(try await client.alarms() == [])
    }
}
}
