import Foundation
import SynodClient
import SynodCore
import SynodStateMachine
import SynodTestSupport
import Testing

extension RealProcessTests {
/// etcd's space quota on real processes: the leader raises NOSPACE when the state outgrows
/// `--quota-bytes`, writes that add data are refused on every path, a disarm without freeing
/// space does not stick, and freeing space then disarming restores writes.
@Suite("Space quota on a real cluster")
struct QuotaTests {
    @Test("over the quota, NOSPACE refuses puts; freed and disarmed, writes run again")
    func noSpaceAlarm() async throws {
        let cluster = try Cluster(size: 3, extraArgs: ["--quota-bytes", "\(1 << 20)", "--auto-compact-revisions", "0"])
        let client = cluster.client()
        defer { Task { await client.close() } }
        let value = [UInt8](repeating: 7, count: 8 << 10)
        // 8 KiB values: the 1 MiB quota is passed after ~100 puts; the leader measures twice a
        // second, so the refusal comes within a few hundred more.
        var refusedAt: Int?
        for i in 0..<3000 where refusedAt == nil {
            do { try await client.put(b("q/\(i)"), value) } catch ClientError.kv(.noSpace) { refusedAt = i }
        }
        let first = try #require(refusedAt, "no write was refused in 3,000 puts of 8 KiB over a 1 MiB quota")
        #expect(first >= 64, "refused after \(first) puts: below the quota")
        #expect(try await client.alarms() == [.noSpace])
        // `synod health` (etcdctl endpoint health) reports the alarm on every endpoint, exit 7.
        let (sick, sickOut, _) = try runSynod(["--endpoints", cluster.endpointsText, "health"])
        #expect(sick == 7 && sickOut.components(separatedBy: "is unhealthy: active alarm(s): NOSPACE").count == 4, "\(sickOut)")
        // Every node refuses alike: the alarm is replicated state.
        for n in 1...3 {
            let node = SynodClient(ClientConfiguration(endpoints: [cluster.endpoints[n - 1]]))
            do {
                try await node.put(b("q/more"), b("x"))
                Issue.record("node \(n) accepted a put under NOSPACE")
            } catch ClientError.kv(.noSpace) {}
            await node.close()
        }
        let txn = Txn(compares: [], success: [.put(key: b("q/txn"), value: b("x"), lease: nil, prevKV: false)])
        await #expect(throws: ClientError.kv(.noSpace)) { try await client.txn(txn) }
        await #expect(throws: ClientError.kv(.noSpace)) { try await client.leaseGrant(ttlMillis: 5000) }

        // A disarm without freeing space does not stick: the leader raises it again.
        #expect(try await client.disarm() == [])
        var raisedAgain = false
        for _ in 0..<60 where !raisedAgain {
            try await Task.sleep(nanoseconds: 100_000_000)
            raisedAgain = try await client.alarms() == [.noSpace]
        }
        #expect(raisedAgain, "the leader did not raise NOSPACE again within 6 s")

        // Deletes and compaction still run; with the space freed, a disarm sticks.
        let deleted = try await client.deleteRange(from: b("q/"), to: KeyRange.prefixEnd(b("q/")))
        #expect(deleted.deleted == Int64(first))
        _ = try await client.compact(revision: deleted.revision)
        try await client.disarm()
        try await Task.sleep(nanoseconds: 1_200_000_000)
        #expect(try await client.alarms() == [])
        try await client.put(b("q/after"), b("fits"))
        #expect(try await client.get(b("q/after"))?.value == b("fits"))
        let (well, wellOut, _) = try runSynod(["--endpoints", cluster.endpoints[0].description, "health", "--cluster"])
        #expect(well == 0 && wellOut.components(separatedBy: "is healthy").count == 4, "\(wellOut)")
    }
}
}
