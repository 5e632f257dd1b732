import ArgumentParser
import Foundation
import SynodClient
import SynodTransport
import SynodWire

/// `synod hashkv`: etcd's `endpoint hashkv` with the comparison done for the operator — every
/// endpoint hashes its history at one revision, and hashes must agree wherever compaction
/// points do.
struct HashKVCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hashkv",
        abstract: "Hash every endpoint's key-value history at one revision and check that the replicas agree (exit 6 if they do not).")
    @OptionGroup var globals: GlobalOptions
    @Option(help: "Revision to hash at (default: the lowest current revision among the endpoints).") var rev: Int64?
    @Flag(help: "Hash every member of the cluster (its member list's client addresses), not just --endpoints.") var cluster = false

    func validate() throws { if let rev, rev < 1 { throw ValidationError("--rev must be at least 1") } }

    /// Attempts while compaction points differ (a compaction applied on some nodes only).
    static let attemptsMax = 5

    func run() async throws {
        let client = try globals.client()
        defer { Task { await client.close() } }
        let endpoints = try await globals.endpoints(cluster: cluster, using: client)
        var revision = rev ?? 0
        if revision == 0 {
            var revisions: [Int64] = []
            for e in endpoints { if let s = try? await client.status(of: e) { revisions.append(s.revision) } }
            guard let low = revisions.min() else { throw fail("no endpoint answered", status: ExitStatus.unreachable) }
            revision = low
        }
        var rows: [(HostPort, Result<KVHash, any Error>)] = []
        for attempt in 1...Self.attemptsMax {
            rows = []
            for e in endpoints {
                do { rows.append((e, .success(try await client.hashKV(of: e, revision: revision)))) } catch { rows.append((e, .failure(error))) }
            }
            if Set(rows.compactMap { try? $0.1.get().compactedRevision }).count <= 1 || attempt == Self.attemptsMax { break }
            try await Task.sleep(nanoseconds: 200_000_000)
        }
        let hashes = rows.compactMap { e, r in (try? r.get()).map { (e, $0) } }
        guard !hashes.isEmpty else {
            // Every node refusing (a compacted or future revision) is the cluster's answer, not an outage.
            if case let .rejected(_, message)? = rows.first?.1.failureValue as? ClientError {
                throw fail(message, status: ExitStatus.refused)
            }
            throw fail("no endpoint answered: " + rows.map { "\($0.0): \(describeConnectionFailure($0.1.failureValue!))" }.joined(separator: "; "),
                       status: ExitStatus.unreachable)
        }
        // Replicas at the same compaction point must agree; different points are not comparable.
        let odd = KVHash.minority(hashes)
        let diverged = odd.isEmpty ? [] : ["odd " + odd.map(\.description).joined(separator: ", ") + " (" + hashes.map { "\($0.0) \($0.1.hex.prefix(16))" }.joined(separator: ", ") + ")"]
        let comparable = Set(hashes.map(\.1.compactedRevision)).count == 1
        if globals.output == .json {
            let items = rows.map { e, r -> String in
                switch r {
                case let .success(h):
                    return JSON.object([("endpoint", JSON.string(e.description)), ("revision", "\(h.revision)"),
                                        ("compact_revision", "\(h.compactedRevision)"), ("hash", JSON.string(h.hex))])
                case let .failure(error):
                    return JSON.object([("endpoint", JSON.string(e.description)), ("error", JSON.string(describeConnectionFailure(error)))])
                }
            }
            print(JSON.object([("revision", "\(revision)"), ("agree", "\(diverged.isEmpty)"), ("comparable", "\(comparable)"), ("nodes", JSON.array(items))]))
        } else {
            for (e, r) in rows {
                let name = e.description.padding(toLength: 22, withPad: " ", startingAt: 0)
                switch r {
                case let .success(h): print(name + "revision \(h.revision)  compacted \(h.compactedRevision)  \(h.hex)")
                case let .failure(error): print(name + describeConnectionFailure(error))
                }
            }
            if diverged.isEmpty {
                print(comparable ? "\(hashes.count) of \(rows.count) endpoints agree at revision \(revision)"
                                 : "no disagreement, but compaction points differ (compare again once every node applied the latest compaction)")
            }
        }
        if !diverged.isEmpty {
            throw fail("the replicas' histories differ at revision \(revision): " + diverged.joined(separator: "; "), status: ExitStatus.diverged)
        }
    }
}

extension Result {
    var failureValue: Failure? { if case let .failure(e) = self { return e } else { return nil } }
}
