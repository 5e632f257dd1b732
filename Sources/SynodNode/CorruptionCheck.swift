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

    /// Checks in a row that proved nothing (errors, or fewer than two members answered) before
    /// a warning: a check that silently never runs is no check.
    static let inconclusiveWarnAfter = 3

    func run() async {
        let c = node.configuration
        let me = c.advertiseClientAddress ?? HostPort(host: c.clientAddress.host, port: node.clientPort)
        var config = ClientConfiguration(endpoints: [me])
        config.retryDeadlineMillis = 5_000
        // Hashing a large history at idle priority can take a while.
        config.requestTimeoutMillis = 60_000
        // With client TLS the node dials the members' client ports as a client, presenting its
        // own certificate (which must then also be valid for client authentication) and
        // checking theirs against the client CA, else the peer CA.
        if let tls = c.clientTLS {
            config.tls = TLSFiles(certificate: tls.certificate, privateKey: tls.privateKey, trustedCA: tls.trustedCA ?? c.peerTLS?.trustedCA)
        }
        let client = SynodClient(config)
        var inconclusive = 0
        while !Task.isCancelled {
            do { try await Task.sleep(nanoseconds: UInt64(interval) * 1_000_000_000) } catch { break }
            guard node.loop.metrics.leading.load(ordering: .relaxed) else { continue }
            var why: String?
            do {
                if case let .inconclusive(reason) = try await checkOnce(client) { why = reason }
            } catch {
                why = "\(error)"
            }
            guard let why else {
                inconclusive = 0
                continue
            }
            inconclusive += 1
            if inconclusive == Self.inconclusiveWarnAfter {
                logger.warning("corruption checks keep proving nothing", metadata: ["checks": "\(inconclusive)", "last_reason": "\(why)"])
            } else {
                logger.debug("corruption check inconclusive", metadata: ["reason": "\(why)"])
            }
        }
        await client.close()
    }

    enum Outcome: Equatable {
        case passed
        /// The members holding a minority hash (the CORRUPT alarm was proposed).
        case diverged([NodeID])
        case inconclusive(String)
    }

    /// One check.
    @discardableResult
    func checkOnce(_ client: SynodClient) async throws -> Outcome {
        guard try await !client.alarms().contains(.corrupt) else { return .passed }
        let members = try await client.members().compactMap { m in (try? HostPort(parsing: m.clientAddress)).map { (m.id, $0) } }
        var revisions: [Int64] = []
        for (_, e) in members { if let s = try? await client.status(of: e) { revisions.append(s.revision) } }
        guard let revision = revisions.min() else { return .inconclusive("no member reported its status") }
        var hashes: [(NodeID, KVHash)] = []
        for (id, e) in members { if let h = try? await client.hashKV(of: e, revision: revision) { hashes.append((id, h)) } }
        guard hashes.count >= 2 else { return .inconclusive("\(hashes.count) of \(members.count) members answered with a hash") }
        var odd = KVHash.minority(hashes)
        guard !odd.isEmpty else {
            logger.debug("corruption check passed", metadata: ["revision": "\(revision)", "members": "\(hashes.count)"])
            return .passed
        }
        odd.sort()
        logger.error("corruption check: members' histories differ; raising the CORRUPT alarm (writes stop until an operator replaces the odd members and disarms it)",
                     metadata: ["revision": "\(revision)", "odd_members": "\(odd.map(\.rawValue))",
                                "hashes": "\(hashes.map { "\($0.0.rawValue)=\($0.1.hex.prefix(16))" })"])
        _ = try await client.write(.alarm(.corrupt, raised: true))
        return .diverged(odd)
    }
}
