import Foundation
import SynodClient
import SynodCore
import SynodTestSupport
import SynodTransport
import Testing

extension RealProcessTests {
/// `synod serve --listen-metrics`: Prometheus metrics and a health check from real processes.
@Suite("Metrics and health endpoints")
struct MetricsTests {
    /// The value of an unlabelled metric line `name value` in a Prometheus text export.
    func value(_ name: String, in text: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.split(separator: " ")[1])
        }
        return nil
    }

    @Test("/metrics reports one leader, the applied writes and commit timings; /health is 200, and 503 without a quorum; other paths 404")
    func metricsAndHealth() async throws {
        let metricsBase = LoopbackPorts.freeBase(count: 3)
        let cluster = try Cluster(size: 3, nodeArgs: { ["--listen-metrics", "127.0.0.1:\(metricsBase + $0 - 1)"] })
        let client = cluster.client()
        defer { Task { await client.close() } }
        var revision: Int64 = 0
        for i in 0..<20 { revision = try await client.put(b("m/\(i)"), b("\(i)")).revision }
        // Metrics are published twice a second: wait until every node reports the last write.
        var texts: [String] = []
        for _ in 0..<50 {
            texts = (0..<3).compactMap { httpGet(port: metricsBase + $0, path: "/metrics")?.body }
            if texts.count == 3, texts.allSatisfy({ value("synod_mvcc_current_revision", in: $0) == Double(revision) }) { break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        #expect(texts.count == 3)
        #expect(texts.allSatisfy { value("synod_mvcc_current_revision", in: $0) == Double(revision) }, "\(texts.first ?? "")")
        #expect(texts.compactMap { value("synod_server_is_leader", in: $0) }.reduce(0, +) == 1, "exactly one leader")
        #expect(texts.allSatisfy { value("synod_server_has_leader", in: $0) == 1 })
        #expect(texts.allSatisfy { (value("synod_disk_backend_commit_duration_seconds_count", in: $0) ?? 0) > 0 })
        #expect(texts.allSatisfy { (value("synod_mvcc_db_total_size_in_use_in_bytes", in: $0) ?? 0) > 0 })
        let health = httpGet(port: metricsBase, path: "/health")
        #expect(health?.status == 200 && health?.body == #"{"health":"true"}"#, "\(String(describing: health))")
        #expect(httpGet(port: metricsBase, path: "/nope")?.status == 404)
        // Alone, node 1 knows no leader (check-quorum, or its election timer): /health is 503.
        cluster.kill(2)
        cluster.kill(3)
        var down: (status: Int, body: String)?
        for _ in 0..<50 where down?.status != 503 {
            try await Task.sleep(nanoseconds: 100_000_000)
            down = httpGet(port: metricsBase, path: "/health")
        }
        #expect(down?.status == 503, "\(String(describing: down))")
    }
}
}
