import Logging
import SynodClient
import SynodCore
import SynodStateMachine
import SynodTransport
import SynodWire

/// etcd's periodic corruption check, built on `hashkv`: every `corruptCheckIntervalSeconds` the
/// leader asks every member (as a client would: `SynodClient.hashKV`) for a hash of its history
/// at the lowest revision they all report, and compares hashes between members at the same
/// compaction point. A disagreement is a replica whose state diverged (a bug, or a disk that
/// lied): the leader logs which members hold the minority hash and commits the CORRUPT alarm,
/// which refuses every write until an operator replaces the odd replica and disarms it.
/// Members that do not answer are skipped; a check with fewer than two answers proves nothing.
struct CorruptionChecker: Sendable {
    let node: SynodNode
    let interval: Int
    let logger: Logger

    func run() async {
        let me = HostPort(host: node.configuration.clientAddress.host, port: node.clientPort)
        var config = ClientConfiguration(endpoints: [me])
        config.retryDeadlineMillis = 5_000
        // With client TLS the node dials its peers' client ports as a client, with its own
        // certificate (which must then also be valid for client authentication).
        config.tls = node.configuration.clientTLS
        let client = SynodClient(config)
        while !Task.isCancelled {
            do { try await Task.sleep(nanoseconds: UInt64(interval) * 1_000_000_000) } catch { break }
            guard node.loop.metrics.leading.load(ordering: .relaxed) else { continue }
            do { try await checkOnce(client) } catch {
                logger.debug("corruption check skipped", metadata: ["error": "\(error)"])
            }
        }
        await client.close()
    }

    /// One check; returns the members found to disagree with the majority (empty if none).
    @discardableResult
    func checkOnce(_ client: SynodClient) async throws -> [NodeID] {
        guard try await !client.alarms().contains(.corrupt) else { return [] }
        let members = try await client.members().compactMap { m in (try? HostPort(parsing: m.clientAddress)).map { (m.id, $0) } }
        var revisions: [Int64] = []
        for (_, e) in members { if let s = try? await client.status(of: e) { revisions.append(s.revision) } }
        guard let revision = revisions.min() else { return [] }
        var hashes: [(NodeID, KVHash)] = []
        for (id, e) in members { if let h = try? await client.hashKV(of: e, revision: revision) { hashes.append((id, h)) } }
        // Only members at one compaction point are comparable; in each such group the hash most
        // members hold is taken as the cluster's (ties: the lowest hash, so the verdict is stable).
        var odd: [NodeID] = []
        for compacted in Set(hashes.map(\.1.compactedRevision)).sorted() {
            let group = hashes.filter { $0.1.compactedRevision == compacted }
            guard group.count >= 2, Set(group.map(\.1.hash)).count > 1 else { continue }
            var counts: [[UInt8]: Int] = [:]
            for (_, h) in group { counts[h.hash, default: 0] += 1 }
            let majority = counts.max { a, b in a.value < b.value || (a.value == b.value && b.key.lexicographicallyPrecedes(a.key)) }!.key
            odd += group.filter { $0.1.hash != majority }.map(\.0)
        }
        guard !odd.isEmpty else {
            logger.debug("corruption check passed", metadata: ["revision": "\(revision)", "members": "\(hashes.count)"])
            return []
        }
        odd.sort()
        logger.error("corruption check: members' histories differ; raising the CORRUPT alarm (writes stop until an operator replaces the odd members and disarms it)",
                     metadata: ["revision": "\(revision)", "odd_members": "\(odd.map(\.rawValue))",
                                "hashes": "\(hashes.map { "\($0.0.rawValue)=\($0.1.hex.prefix(16))" })"])
        _ = try await client.write(.alarm(.corrupt, raised: true))
        return odd
    }
}
