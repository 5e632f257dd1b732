import Foundation
import SynodClient
import SynodStateMachine
import SynodTestSupport
import Testing

extension RealProcessTests {
/// Forms an etcdctl user types: `get`/`del` ranges (KEY RANGE_END, --prefix, --from-key) with
/// --count-only and --print-value-only, and `lease timetolive --keys`.
@Suite("CLI forms from etcdctl")
struct CLIRangeTests {
    @Test("get KEY END, --from-key, --count-only, --print-value-only; del --from-key; conflicting forms are refused")
    func rangeForms() async throws {
        let cluster = try Cluster(size: 3)
        let client = cluster.client()
        defer { Task { await client.close() } }
        for k in ["a", "b", "c", "d", "e"] { try await client.put(b(k), b("v" + k)) }
        func synod(_ args: [String]) throws -> (Int32, String) {
            let (status, out, err) = try runSynod(["--endpoints", cluster.endpointsText] + args)
            return (status, out + err)
        }
        #expect(try synod(["get", "b", "d"]) == (0, "b\nvb\nc\nvc\n"))
        #expect(try synod(["get", "c", "--from-key", "--print-value-only"]) == (0, "vc\nvd\nve\n"))
        #expect(try synod(["get", "a", "--from-key", "--count-only"]) == (0, "5\n"))
        #expect(try synod(["get", "a", "--prefix", "--from-key"]).0 == 64)
        #expect(try synod(["get", "a", "b", "--keys-only", "--print-value-only"]).0 == 64)
        #expect(try synod(["del", "d", "--from-key"]) == (0, "2\n"))
        #expect(try synod(["get", "a", "--from-key", "--keys-only"]) == (0, "a\nb\nc\n"))
        #expect(try synod(["del", "a", "c"]) == (0, "2\n"))
        #expect(try synod(["get", "c"]) == (0, "vc\n"))
    }

    @Test("get --sort-by/--order (the limit after the sort); a transaction with a sorted range once the cluster runs version 3")
    func sortedRanges() async throws {
        let cluster = try Cluster(size: 3)
        let client = cluster.client()
        defer { Task { await client.close() } }
        for (k, v) in [("s/c", "1"), ("s/a", "3"), ("s/b", "2"), ("s/c", "4")] { try await client.put(b(k), b(v)) }
        func synod(_ args: [String]) throws -> (Int32, String) {
            let (status, out, err) = try runSynod(["--endpoints", cluster.endpointsText] + args)
            return (status, out + err)
        }
        #expect(try synod(["get", "s/", "--prefix", "--sort-by", "MODIFY", "--order", "DESCEND", "--limit", "2", "--keys-only"]) == (0, "s/c\ns/b\n"))
        #expect(try synod(["get", "s/", "--prefix", "--sort-by", "VALUE", "--print-value-only"]) == (0, "2\n3\n4\n"))
        #expect(try synod(["get", "s/", "--prefix", "--order", "DESCEND", "--keys-only", "--consistency", "s"]) == (0, "s/c\ns/b\ns/a\n"))
        #expect(try synod(["get", "s/", "--prefix", "--sort-by", "SIDEWAYS"]).0 == 64)
        // New clusters move to the newest cluster version within about a second.
        var version: UInt16 = 0
        for _ in 0..<100 {
            version = try await client.authStatus().clusterVersion
            if version >= KVStateMachine.orderedRangeClusterVersion { break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        #expect(version >= KVStateMachine.orderedRangeClusterVersion)
        let t = try await client.txn(Txn(compares: [], success: [.range(RangeRequest(key: b("s/"), rangeEnd: b("s0"), limit: 1, sortOrder: .descend, sortTarget: .version))]))
        guard case let .range(r) = t.results.first else { Issue.record("no range result: \(t)"); return }
        #expect(r.kvs.map(\.key) == [b("s/c")] && r.more && r.count == 3)
        // etcdctl put KEY --ignore-value --lease ID: attach a key to a lease without knowing its value.
        let lease = try await client.leaseGrant(ttlMillis: 60_000)
        #expect(try synod(["put", "s/a", "--ignore-value", "--lease", String(lease.rawValue, radix: 16)]) == (0, "OK\n"))
        let attached = try await client.get(b("s/a"))
        #expect(attached?.value == b("3") && attached?.lease == lease && attached?.version == 2)
        #expect(try synod(["put", "s/missing", "--ignore-value"]).0 != 0, "a missing key is refused")
        #expect(try synod(["put", "s/a", "x", "--ignore-value"]).0 == 64)
        // A compare on the key's lease: holds for the lease it is attached to, not for another.
        let hex = String(lease.rawValue, radix: 16)
        #expect(try synod(["txn", "--if", "lease(s/a) = \(hex)", "--then", "put s/t yes"]).1.hasPrefix("SUCCESS"))
        #expect(try synod(["txn", "--if", "lease(s/b) = \(hex)", "--then", "put s/t no"]).1.hasPrefix("FAILURE"))
        #expect(try await client.get(b("s/t"))?.value == b("yes"))
    }

    @Test("lease timetolive ID --keys shows TTL, remaining time and the attached keys; a missing lease exits 1")
    func leaseTimeToLive() async throws {
        let cluster = try Cluster(size: 3)
        let client = cluster.client()
        defer { Task { await client.close() } }
        let lease = try await client.leaseGrant(ttlMillis: 60_000)
        try await client.put(b("x"), b("1"), lease: lease)
        try await client.put(b("y"), b("2"), lease: lease)
        let hex = String(lease.rawValue, radix: 16)
        let (status, out, _) = try runSynod(["--endpoints", cluster.endpointsText, "lease", "timetolive", hex, "--keys"])
        #expect(status == 0)
        #expect(out.hasPrefix("lease \(hex) granted with TTL(60s), remaining(") && out.hasSuffix("attached keys([x y])\n"), "\(out)")
        try await client.leaseRevoke(lease)
        #expect(try runSynod(["--endpoints", cluster.endpointsText, "lease", "timetolive", hex]).0 == 1)
    }
}
}
