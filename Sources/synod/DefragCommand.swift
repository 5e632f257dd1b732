import ArgumentParser
import Foundation
import SynodClient
import SynodTransport
import SynodWire

/// `synod defrag`: etcdctl's `defrag` — compacts the storage file of each endpoint in turn,
/// while the nodes run (each is blocked for the time its own copy takes). Offline, the same is
/// `synod storage compact --data DIR`.
struct DefragCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "defrag",
        abstract: "Compact the storage file of each endpoint, one at a time, while the nodes run (etcd's defrag).",
        discussion: "LMDB reuses freed pages but never returns them to the filesystem. Each node writes a compacted copy of data.mdb, checks it, and swaps it in; it serves nothing meanwhile, so endpoints are done one after another. Exit 5 if any endpoint refused or failed, 3 if one was unreachable.")
    @OptionGroup var globals: GlobalOptions
    @Option(help: "Seconds to wait for each endpoint (a large store takes longer to copy).") var waitSeconds: Int = 120
    @Flag(help: "Defragment every member of the cluster (its member list's client addresses), not just --endpoints, as etcdctl defrag --cluster.") var cluster = false

    func validate() throws { guard (1...3600).contains(waitSeconds) else { throw ValidationError("--wait-seconds must be 1...3600") } }

    func run() async throws {
        let client = try globals.client()
        defer { Task { await client.close() } }
        let endpoints = try await globals.endpoints(cluster: cluster, using: client)
        var failures: [(HostPort, any Error)] = []
        var items: [String] = []
        for e in endpoints {
            do {
                let r = try await client.defragment(e, timeoutMillis: Int64(waitSeconds) * 1000)
                if globals.output == .json {
                    items.append(JSON.object([("endpoint", JSON.string(e.description)), ("bytes_before", "\(r.bytesBefore)"),
                                              ("bytes_after", "\(r.bytesAfter)"), ("ms", "\(r.millis)")]))
                } else {
                    print("defragmented \(e): \(r.bytesBefore) -> \(r.bytesAfter) bytes (\(StatusCommand.size(r.bytesBefore)) -> \(StatusCommand.size(r.bytesAfter))) in \(r.millis) ms")
                }
            } catch {
                failures.append((e, error))
                if globals.output == .json {
                    items.append(JSON.object([("endpoint", JSON.string(e.description)), ("error", JSON.string(describeConnectionFailure(error)))]))
                } else {
                    print("failed to defragment \(e): \(describeConnectionFailure(error))")
                }
            }
        }
        if globals.output == .json { print(JSON.array(items)) }
        guard let first = failures.first else { return }
        let unreachable = failures.allSatisfy { if case .unreachable? = $0.1 as? ClientError { return true } else { return false } }
        throw fail("\(failures.count) of \(endpoints.count) endpoints not defragmented (first: \(first.0))",
                   status: unreachable ? ExitStatus.unreachable : ExitStatus.refused)
    }
}
