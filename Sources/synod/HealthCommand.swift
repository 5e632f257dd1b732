import ArgumentParser
import Foundation
import SynodClient
import SynodTransport
import SynodWire

/// `synod health`: etcdctl's `endpoint health`. An endpoint is healthy when a linearizable read
/// sent to it alone completes (it reaches a leader that still has a quorum) and it reports no
/// alarm (as etcd 3.5 also checks).
struct HealthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "Check that each endpoint serves a linearizable read and has no alarm (etcdctl endpoint health); exit 7 if any is unhealthy.")
    @OptionGroup var globals: GlobalOptions
    @Flag(help: "Check every member of the cluster (its member list's client addresses), not just --endpoints.") var cluster = false
    @Option(help: "Seconds each endpoint has to answer (1...60).") var commandTimeout: Int = 5

    func validate() throws { guard (1...60).contains(commandTimeout) else { throw ValidationError("--command-timeout must be 1...60") } }

    struct Row {
        var endpoint: HostPort
        var millis: Double
        var problem: String?
    }

    func run() async throws {
        let lister = try globals.client()
        let endpoints = try await globals.endpoints(cluster: cluster, using: lister)
        await lister.close()
        var rows: [Row] = []
        for e in endpoints { rows.append(await check(e)) }
        if globals.output == .json {
            print(JSON.array(rows.map { r in
                JSON.object([("endpoint", JSON.string(r.endpoint.description)), ("health", r.problem == nil ? "true" : "false"),
                             ("took_ms", String(format: "%.3f", r.millis))] + (r.problem.map { [("error", JSON.string($0))] } ?? []))
            }))
        } else {
            for r in rows {
                if let p = r.problem {
                    print("\(r.endpoint) is unhealthy: \(p)")
                } else {
                    print("\(r.endpoint) is healthy: served a linearizable read in \(String(format: "%.1f", r.millis)) ms")
                }
            }
        }
        let unhealthy = rows.filter { $0.problem != nil }.count
        if unhealthy > 0 { throw fail("\(unhealthy) of \(rows.count) endpoints unhealthy", status: ExitStatus.unhealthy) }
    }

    /// A linearizable read of a key nobody writes, through `endpoint` alone, then its alarms.
    func check(_ endpoint: HostPort) async -> Row {
        let started = Date()
        do {
            let one = try globals.client(endpoints: [endpoint], timeoutSeconds: commandTimeout)
            defer { Task { await one.close() } }
            _ = try await one.get(Array("__synod/health".utf8), consistency: .linearizable)
            let millis = Date().timeIntervalSince(started) * 1000
            let status = try await one.detailedStatus(of: endpoint)
            if let alarms = status.storage?.alarms, !alarms.isEmpty {
                return Row(endpoint: endpoint, millis: millis, problem: "active alarm(s): " + alarms.map { "\($0)" }.joined(separator: ", "))
            }
            return Row(endpoint: endpoint, millis: millis, problem: nil)
        } catch {
            return Row(endpoint: endpoint, millis: Date().timeIntervalSince(started) * 1000, problem: describeConnectionFailure(error))
        }
    }
}
