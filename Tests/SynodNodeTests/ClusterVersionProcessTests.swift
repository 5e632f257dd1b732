import Foundation
import SynodClient
import SynodCore
import SynodTestSupport
import SynodTransport
import Testing

// The cluster version on real processes, played as a rolling upgrade: `--testing-cluster-version`
// makes a node claim what an older or newer build would support.
extension RealProcessTests {
@Suite("Cluster version: a rolling upgrade and a refused downgrade")
struct ClusterVersionProcessTests {
    /// The `synod_cluster_version` each node's `/metrics` reports (nil: unreachable).
    static func versions(_ metricsBase: Int) -> [Int?] {
        (0..<3).map { i in
            guard let text = httpGet(port: metricsBase + i, path: "/metrics")?.body else { return nil }
            for line in text.split(separator: "\n") where line.hasPrefix("synod_cluster_version ") {
                return Double(line.split(separator: " ")[1]).map { Int($0) }
            }
            return nil
        }
    }

    /// Nodes 1 and 2 run a "newer build" (version 2), node 3 the older (1): the cluster moves to 1
    /// and stays there. Node 3 is upgraded (restarted claiming 2) under writes: the cluster moves
    /// to 2. Node 3 is then started again on the older build: it refuses to start (exit 78,
    /// naming both versions) and the other two go on serving.
    @Test("an older member holds the cluster version down; upgraded, the version moves; a downgraded member refuses to start")
    func rollingUpgrade() async throws {
        let metricsBase = LoopbackPorts.freeBase(count: 3)
        var node3Version = "1"
        let cluster = try Cluster(size: 3, nodeArgs: { n in
            ["--listen-metrics", "127.0.0.1:\(metricsBase + n - 1)", "--testing-cluster-version", n == 3 ? node3Version : "2"]
        })
        let client = cluster.client()
        defer { Task { await client.close() } }
        try await client.put(b("before"), b("1"))
        // A "newer" node leads, so only the members' hellos can hold the version down.
        if await cluster.leader(using: client) == 3 { try await client.moveLeader(to: NodeID(1)) }
        let atOne = try await eventuallyAsync(tries: 50) { Self.versions(metricsBase) == [1, 1, 1] }
        #expect(atOne, "versions \(Self.versions(metricsBase))")
        try await Task.sleep(nanoseconds: 1_500_000_000)   // more than a leader's check interval
        #expect(Self.versions(metricsBase) == [1, 1, 1], "the older member must hold the version at 1")
        // Upgrade node 3 while writes go on.
        let writer = Task { for i in 0..<100 { try await client.put(b("during-\(i)"), b("\(i)")) } }
        cluster.kill(3, signal: SIGTERM)
        node3Version = "2"
        try cluster.start(3)
        try await writer.value
        let atTwo = try await eventuallyAsync(tries: 80) { Self.versions(metricsBase) == [2, 2, 2] }
        #expect(atTwo, "versions \(Self.versions(metricsBase))")
        #expect((1...3).contains { cluster.log($0).contains("every member supports cluster version 2") })
        let version = httpGet(port: metricsBase, path: "/version")
        #expect(version?.status == 200 && version?.body.contains(#""cluster_version":2,"cluster_version_supported":2"#) == true, "\(String(describing: version))")
        // Downgrade node 3: it must not apply the log under rules it does not have.
        cluster.kill(3, signal: SIGTERM)
        node3Version = "1"
        try cluster.start(3)
        let exited = try await eventuallyAsync(tries: 50) { !cluster.isRunning(3) }
        #expect(exited, "a node of an older build started on a store at a newer cluster version")
        #expect(cluster.exitStatus(3) == 78)
        #expect(cluster.log(3).contains("the cluster runs version 2 of the replicated rules; this build supports up to 1"))
        try await client.put(b("after"), b("1"))
        #expect(try await client.get(b("during-99"))?.value == b("99"))
    }
}
}
