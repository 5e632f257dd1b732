import Foundation
import NIOPosix
@testable import SynodClient
import SynodStateMachine
import SynodTransport
import SynodWire
import Testing

extension RealProcessTests {
/// Followers apply committed entries in batches (`followerApplyDelayMillis`); these pin down
/// what that may and may not change for clients. A one-second delay makes the window wide.
@Suite("Followers apply in batches")
struct FollowerApplyTests {
    /// Three nodes whose followers defer applies by a second, warmed up; and who leads and
    /// which node follows it.
    static func slowApplyCluster() async throws -> (Cluster, SynodClient, leader: Int, follower: Int) {
        let cluster = try Cluster(size: 3, extraArgs: ["--follower-apply-delay-ms", "1000"])
        let client = cluster.client()
        _ = try await client.put(b("warm"), b("up"))
        let leader = try #require(await cluster.leader(using: client))
        return (cluster, client, leader, leader % 3 + 1)
    }

    @Test("a follower's serializable read sees every write it knows committed; its applied index catches up unprompted")
    func deferredApplies() async throws {
        let (cluster, client, leader, follower) = try await Self.slowApplyCluster()
        defer { Task { await client.close() } }
        let followerEndpoint = cluster.endpoints[follower - 1]
        var one = ClientConfiguration(endpoints: [followerEndpoint])
        one.requestTimeoutMillis = 2_000
        let direct = SynodClient(one)
        defer { Task { await direct.close() } }

        /// Waits (bounded) until the follower's commit index reaches `index`; returns its status.
        func followerCommitted(_ index: UInt64) async throws -> NodeStatus {
            let deadline = Date().addingTimeInterval(5)
            var s = try await client.status(of: followerEndpoint)
            while s.commit < index && Date() < deadline {
                usleep(2_000)
                s = try await client.status(of: followerEndpoint)
            }
            return s
        }

        for i in 0..<15 {
            _ = try await client.put(b("k\(i)"), b("v\(i)"))
            let target = try await client.status(of: cluster.endpoints[leader - 1]).commit
            let st = try await followerCommitted(target)
            #expect(st.commit >= target, "follower \(follower) never learned commit \(target)")
            // Known committed at the follower, so visible to its serializable reads at once,
            // however long its applies are deferred.
            let kv = try await direct.get(b("k\(i)"), consistency: .serializable)
            #expect(kv?.value == b("v\(i)"), "follower \(follower) read k\(i) as \(kv.map { s($0.value) } ?? "missing") after committing it")
        }

        // With no reads to prompt it, the follower still applies within one delay.
        _ = try await client.put(b("last"), b("x"))
        let target = try await client.status(of: cluster.endpoints[leader - 1]).commit
        _ = try await followerCommitted(target)
        let deadline = Date().addingTimeInterval(4)
        var applied = try await client.status(of: followerEndpoint).applied
        while applied < target && Date() < deadline {
            usleep(20_000)
            applied = try await client.status(of: followerEndpoint).applied
        }
        #expect(applied >= target, "follower \(follower) applied only \(applied) of \(target) after 4 s")
    }

    @Test("a follower serves linearizable reads itself (read index from the leader): every write acknowledged before a read is visible to it, however long its applies are deferred")
    func followerLinearizableReads() async throws {
        let (cluster, client, leader, follower) = try await Self.slowApplyCluster()
        defer { Task { await client.close() } }
        // On the wire, so a redirect to the leader (what followers answered before) shows.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let conn = try await Connection.connect(cluster.endpoints[follower - 1], group: group, timeoutMillis: 2_000)
        for i in 0..<20 {
            _ = try await client.put(b("r\(i)"), b("v\(i)"))
            let r = try await conn.request(.read(.linearizable, RangeRequest(key: b("r\(i)")).encode())).get()
            #expect(r.status == .ok, "follower \(follower) answered \(r.status): \(r.message)")
            guard r.status == .ok else { continue }
            guard case let .range(result) = try Response.decode(r.body) else {
                Issue.record("follower \(follower) answered a read with another kind of response")
                continue
            }
            #expect(result.kvs.first?.value == b("v\(i)"), "follower \(follower) read r\(i) as \(result.kvs.first.map { s($0.value) } ?? "missing") after the write was acknowledged")
        }
        conn.close()
        try await group.shutdownGracefully()
    }
}
}
