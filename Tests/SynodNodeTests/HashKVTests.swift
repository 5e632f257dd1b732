import Foundation
import SynodClient
import SynodCore
import SynodStateMachine
import SynodTestSupport
import Testing

extension RealProcessTests {
/// `synod hashkv` on real processes: replicas that went through puts, deletes, transactions,
/// leases, a compaction and a follower's SIGKILL and restart hash their history alike; a replica
/// whose state machine corrupts values (an injected bug) is reported, with exit status 6.
@Suite("hashkv: replicas compared on a real cluster")
struct HashKVTests {
    func endpoints(_ cluster: Cluster) -> String { cluster.endpoints.map(\.description).joined(separator: ",") }

    func workload(_ client: SynodClient, _ round: Int) async throws {
        for i in 0..<40 { try await client.put(b("h/\(i % 13)"), b("\(round)-\(i)")) }
        try await client.delete(b("h/3"))
        _ = try await client.txn(Txn(compares: [Compare(key: b("h/4"), .notEqual, .value([]))],
                                     success: [.put(key: b("h/txn"), value: b("\(round)"), lease: nil, prevKV: false), .delete(key: b("h/5"), prevKV: false)]))
        let lease = try await client.leaseGrant(ttlMillis: 60_000)
        try await client.put(b("h/leased"), b("\(round)"), lease: lease)
        try await client.leaseRevoke(lease)
    }

    @Test("replicas agree after mixed writes, a compaction and a follower's SIGKILL")
    func replicasAgree() async throws {
        let cluster = try Cluster(size: 3)
        let client = cluster.client()
        defer { Task { await client.close() } }
        try await workload(client, 1)
        let leader = try #require(await cluster.leader(using: client))
        let follower = leader % 3 + 1
        cluster.kill(follower)
        try await workload(client, 2)
        let revision = try await client.put(b("h/mark"), b("1")).revision
        _ = try await client.compact(revision: revision - 20)
        try cluster.start(follower)
        try await workload(client, 3)
        // The restarted follower catches up from the log; then every replica hashes alike.
        var out = ""
        var status: Int32 = -1
        for _ in 0..<50 where status != 0 {
            (status, out, _) = try runSynod(["hashkv", "--endpoints", endpoints(cluster)])
            if status != 0 { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        #expect(status == 0, "hashkv: \(out)")
        #expect(out.contains("3 of 3 endpoints agree"), "\(out)")
        // --cluster (etcdctl's): every member from one endpoint's member list, for hashkv and status.
        let one = cluster.endpoints[0].description
        let (all, allOut, allErr) = try runSynod(["hashkv", "--cluster", "--endpoints", one])
        #expect(all == 0 && allOut.contains("3 of 3 endpoints agree"), "\(allOut) \(allErr)")
        let (st, stOut, _) = try runSynod(["status", "--cluster", "--endpoints", one])
        #expect(st == 0 && stOut.split(separator: "\n").count == 4, "\(stOut)")
    }

    @Test("a replica whose state machine corrupts values is reported (injected bug), exit 6")
    func divergenceCaught() async throws {
        let cluster = try Cluster(size: 3, nodeArgs: { $0 == 3 ? ["--testing-corrupt-puts"] : [] })
        let client = cluster.client()
        defer { Task { await client.close() } }
        try await workload(client, 1)
        var (status, out, err) = (Int32(-1), "", "")
        for _ in 0..<50 where status != 6 {
            (status, out, err) = try runSynod(["hashkv", "--endpoints", endpoints(cluster)])
            if status != 6 { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        #expect(status == 6, "hashkv did not report the corrupt replica: \(out) \(err)")
        #expect(err.contains("differ"), "\(err)")
    }
}
}
