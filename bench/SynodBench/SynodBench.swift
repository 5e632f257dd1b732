// synod-bench: cluster throughput and latency (docs/BENCHMARKS.md). Starts its own cluster from
// the release `synod` binary next to it, or drives one given by --endpoints.
import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import SynodClient
import SynodTransport
import SynodWire

@main
struct SynodBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "synod-bench", abstract: "Measure a Synod cluster's throughput and latency.")

    @Option(help: "Nodes of the cluster to start (1...7; default 3, 4 with --mode bft); ignored with --endpoints.") var nodes: Int?
    @Option(name: .customLong("bft-keys"), help: "BFT mode with --endpoints: the directory of the cluster's key files (client-1.key ... client-N.key).") var bftKeys: String?
    @Option(help: "Consensus mode of the started cluster: raft, or bft (pBFT, 3f+1 replicas, one signed request in flight per client).") var mode: String = "raft"
    @Option(help: "Drive an existing cluster at these client addresses instead of starting one.") var endpoints: String?
    @Option(help: "put, get, mixed, txn, watch or keepalive.") var workload: String = "put"
    @Option(help: "Concurrent requests in flight.") var clients: Int = 100
    @Option(help: "Connections (client instances) the requests share; default min(clients, 100).") var conns: Int?
    @Option(help: "Key size in bytes.") var keySize: Int = 8
    @Option(help: "Value size in bytes.") var valueSize: Int = 256
    @Option(help: "sequential or random keys.") var keys: String = "sequential"
    @Option(name: .customLong("key-space"), help: "Distinct keys (default 100,000; 1,000 with --mode bft, whose state is bounded at 12 MiB).") var keySpaceOption: Int?
    @Option(help: "Seconds to measure (default 10 unless --total).") var duration: Double?
    @Option(help: "Operations to measure instead of a duration.") var total: Int?
    @Option(help: "Seconds of unmeasured warm-up.") var warmup: Double = 1
    @Option(help: "Reads: l (linearizable) or s (serializable).") var consistency: String = "l"
    @Option(help: "mixed: fraction of reads (0...1).") var readFraction: Double = 0.5
    @Option(help: "watch: number of watchers.") var watchers: Int = 10
    @Option(name: [.customShort("w"), .customLong("write-out")], help: "table or json.") var output: String = "table"
    @Option(help: "Run a series, e.g. clients=1,10,100,1000, and chart throughput against p99 latency.") var sweep: String?
    @Option(help: "Where --sweep writes its SVG chart.") var chart: String = "bench-sweep.svg"
    @Flag(name: .customLong("unsafe-no-fsync"), help: "Start the cluster without fsync (measures everything but the disk).") var unsafeNoFsync = false
    @Option(name: .customLong("serve-option"), parsing: .singleValue, help: "Pass this option to every started `synod serve` (repeatable), e.g. --serve-option=--follower-apply-delay-ms=0.") var serveOptions: [String] = []
    @Flag(help: "Start the cluster with lease reads (opt-in linearizable reads without a heartbeat round).") var leaseReads = false
    @Option(name: .customLong("read-from"), help: "get with the wire driver: send reads only to the leader (leader, default), or to every node in turn (all: followers ask the leader for the read index, as etcd's benchmark spreads ranges over all members).") var readFrom: String = "leader"
    @Option(help: "Load generator: wire (NIO handlers on the protocol, lightest; default) or client (SynodClient's async API). watch always uses client.") var driver: String = "wire"
    @Flag(help: "Start the cluster with TLS everywhere: client TLS with client certificates required, mutual peer TLS (a throwaway CA and certificates made with openssl).") var tls = false
    @Option(help: "With --endpoints: TLS, trusting this CA (PEM), as etcd's benchmark --cacert.") var cacert: String?
    @Option(help: "With --endpoints: the client certificate (PEM) for clusters that require one.") var cert: String?
    @Option(help: "With --endpoints: the client certificate's private key (PEM).") var key: String?
    @Option(help: "With --endpoints: authenticate every connection as NAME:PASSWORD (a cluster with auth enabled; etcd's benchmark --user).") var user: String?

    func validate() throws {
        guard (1...7).contains(nodeCount) else { throw ValidationError("--nodes must be 1...7") }
        guard ["raft", "bft"].contains(mode) else { throw ValidationError("--mode must be raft or bft") }
        if mode == "bft" {
            guard nodeCount >= 4 else { throw ValidationError("--mode bft needs at least 4 nodes (3f+1)") }
            guard (endpoints == nil) == (bftKeys == nil) else { throw ValidationError("--mode bft with --endpoints needs --bft-keys DIR (the cluster's `synod bft keygen` output), and only then") }
            guard workload != "watch" else { throw ValidationError("--mode bft: watch is not served in BFT mode yet") }
            guard clients <= 2_000 else { throw ValidationError("--mode bft: at most 2000 clients (one key file and four connections each)") }
        }
        guard WorkloadKind(rawValue: workload) != nil else { throw ValidationError("--workload must be one of \(WorkloadKind.allCases.map(\.rawValue))") }
        guard readFrom == "all" || readFrom == "leader" else { throw ValidationError("--read-from must be all or leader") }
        guard KeyOrder(rawValue: keys) != nil else { throw ValidationError("--keys must be sequential or random") }
        guard (1...100_000).contains(clients) else { throw ValidationError("--clients must be 1...100000") }
        guard (1...1024).contains(keySize), (0...(1 << 20)).contains(valueSize) else { throw ValidationError("--key-size 1...1024, --value-size 0...1048576") }
        guard keySpace >= 1 else { throw ValidationError("--key-space must be positive") }
        guard ["table", "json"].contains(output) else { throw ValidationError("-w must be table or json") }
        guard ["l", "s"].contains(consistency) else { throw ValidationError("--consistency must be l or s") }
        guard Driver(rawValue: driver) != nil else { throw ValidationError("--driver must be wire or client") }
        if workload == "keepalive" {
            guard Driver(rawValue: driver) == .wire, mode == "raft" else { throw ValidationError("--workload keepalive needs --driver wire and --mode raft") }
        }
        if let conns { guard (1...10_000).contains(conns) else { throw ValidationError("--conns must be 1...10000") } }
        if tls || cacert != nil || cert != nil || key != nil {
            guard mode == "raft" else { throw ValidationError("TLS is for --mode raft (BFT mode signs and MACs its messages instead)") }
            guard !tls || endpoints == nil else { throw ValidationError("--tls starts a TLS cluster; for --endpoints give --cacert (and --cert, --key)") }
            guard tls || endpoints != nil else { throw ValidationError("--cacert, --cert and --key are for --endpoints; --tls starts a TLS cluster") }
            guard (cert == nil) == (key == nil) else { throw ValidationError("--cert and --key go together") }
        }
        if sweep != nil { _ = try sweepValues() }
    }

    var keySpace: Int { keySpaceOption ?? (mode == "bft" ? 1_000 : 100_000) }

    var nodeCount: Int { nodes ?? (mode == "bft" ? 4 : 3) }

    /// The nodes driven: the started cluster's, or as many as `--endpoints` names.
    var nodesDriven: Int { endpoints.map { $0.split(separator: ",").count } ?? nodeCount }

    func sweepValues() throws -> [Int] {
        guard let sweep else { return [clients] }
        guard sweep.hasPrefix("clients=") else { throw ValidationError("--sweep supports clients=N,N,...") }
        let values = sweep.dropFirst(8).split(separator: ",").compactMap { Int($0) }
        guard !values.isEmpty, values.allSatisfy({ $0 >= 1 }) else { throw ValidationError("--sweep clients=1,10,100") }
        return values
    }

    func spec(clients: Int) -> WorkloadSpec {
        WorkloadSpec(kind: WorkloadKind(rawValue: workload)!, clients: clients, conns: conns ?? min(clients, 100), keySize: keySize, valueSize: valueSize,
                     keys: KeyOrder(rawValue: keys)!, keySpace: keySpace, durationSeconds: total == nil ? (duration ?? 10) : duration, total: total,
                     warmupSeconds: warmup, consistency: consistency == "s" ? .serializable : .linearizable, readFraction: readFraction, watchers: watchers)
    }

    func run() async throws {
        var cluster: BenchCluster?
        let eps: [HostPort]
        var clientTLS: TLSFiles? = cacert.map { TLSFiles(certificate: cert, privateKey: key, trustedCA: $0) }
        let certificateDirectory = NSTemporaryDirectory() + "synod-bench-tls-\(getpid())"
        defer { if tls { try? FileManager.default.removeItem(atPath: certificateDirectory) } }
        if let endpoints {
            eps = try endpoints.split(separator: ",").map { try HostPort(parsing: String($0)) }
        } else {
            let synod = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("synod").path
            guard FileManager.default.isExecutableFile(atPath: synod) else { throw ValidationError("no synod binary at \(synod); build with swift build -c release") }
            var tlsArgs: [String] = []
            if tls {
                let c = try DevCertificates(in: certificateDirectory)
                tlsArgs = ["--cert-file", c.nodeCert, "--key-file", c.nodeKey, "--trusted-ca-file", c.ca, "--client-cert-auth",
                           "--peer-cert-file", c.nodeCert, "--peer-key-file", c.nodeKey, "--peer-trusted-ca-file", c.ca]
                clientTLS = TLSFiles(certificate: c.clientCert, privateKey: c.clientKey, trustedCA: c.ca)
            }
            cluster = try BenchCluster(nodes: nodeCount, synod: synod, extraArgs: (unsafeNoFsync ? ["--unsafe-no-fsync"] : []) + (leaseReads ? ["--lease-reads"] : []) + tlsArgs + serveOptions,
                                       bftClients: mode == "bft" ? try sweepValues().max()! : nil)
            eps = cluster!.endpoints
        }
        defer { cluster?.stop() }
        let wireTLS = try clientTLS.map { try $0.clientContext() }
        let credentials = try user.map { text -> Credentials in
            guard let colon = text.firstIndex(of: ":"), colon != text.startIndex else { throw ValidationError("--user takes NAME:PASSWORD") }
            return Credentials(user: String(text[..<colon]), password: String(text[text.index(after: colon)...]))
        }
        let loadBefore = loadAverage()
        var results: [RunResult] = []
        for c in try sweepValues() {
            let s = spec(clients: c)
            if mode == "bft" {
                let r = try await runBFTWorkload(s, endpoints: eps, keyDirectory: bftKeys ?? cluster!.keyDirectory, pids: cluster?.pids ?? [], live: output == "table")
                results.append(r)
                if output == "table" { printTable([r], load: loadBefore) }
                continue
            }
            // One event-loop thread shared by every connection, like a real multiplexing client.
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let clients = (0..<s.conns).map { _ in
                var config = ClientConfiguration(endpoints: eps)
                config.retryDeadlineMillis = 30_000
                config.requestTimeoutMillis = 10_000
                config.tls = clientTLS
                config.credentials = credentials
                return SynodClient(config, group: group)
            }
            // Wait for a leader.
            _ = try? await clients[0].put(Array("bench-ready".utf8), [1])
            var wire: WireTargets?
            if Driver(rawValue: driver) == .wire && s.kind != .watch {
                guard let leader = await findLeader(eps, client: clients[0]) else { throw ValidationError("no leader found among \(eps)") }
                // Writes go to the leader; pure reads to every node when asked (connection c to node c mod n).
                let spread = s.kind == .get && readFrom == "all"
                wire = WireTargets(targets: spread ? [leader] + eps.filter { $0 != leader } : [leader], group: group, tls: wireTLS, credentials: credentials)
            }
            let r = s.kind == .watch
                ? await runWatchWorkload(s, clients: clients, pids: cluster?.pids ?? [], live: output == "table")
                : await runWorkload(s, clients: clients, wire: wire, pids: cluster?.pids ?? [], live: output == "table")
            for client in clients { await client.close() }
            try? await group.shutdownGracefully()
            results.append(r)
            if output == "table" { printTable([r], load: loadBefore) }
        }
        if output == "json" {
            for r in results { print(json(r, load: loadBefore)) }
        }
        if sweep != nil {
            try Chart.svg(results, title: "synod \(mode) \(workload), \(cluster?.nodes ?? eps.count) nodes, value \(valueSize) B").write(toFile: chart, atomically: true, encoding: .utf8)
            FileHandle.standardError.write(Data("chart written to \(chart)\n".utf8))
        }
    }

    /// The endpoint whose node says it leads (the wire driver does not follow redirects).
    func findLeader(_ eps: [HostPort], client: SynodClient) async -> HostPort? {
        for _ in 0..<50 {
            for e in eps {
                if let st = try? await client.status(of: e), st.role == "leader" { return e }
            }
            try? await Task.sleep(nanoseconds: 100_000_000)
        }
        return nil
    }

    func printTable(_ rs: [RunResult], load: String) {
        print("workload  clients  conns  ops/s      p50 ms  p90 ms  p99 ms  p99.9 ms  max ms   errors  cluster CPU  bench CPU")
        for r in rs {
            print(String(format: "%-9@ %7d  %5d  %9.0f  %6.2f  %6.2f  %6.2f  %8.2f  %7.2f  %6d  %9.2f s  %7.2f s",
                         r.spec.kind.rawValue, r.spec.clients, r.spec.conns, r.opsPerSecond, r.ms(50), r.ms(90), r.ms(99), r.ms(99.9), r.maxMs, r.errors,
                         r.clusterCPUSeconds, r.benchCPUSeconds))
        }
        if let e = rs.first?.firstError { print("first error: \(e)") }
        print("load average before: \(load), after: \(loadAverage())")
    }

    func json(_ r: RunResult, load: String) -> String {
        func q(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
        let fields: [(String, String)] = [
            ("workload", q(r.spec.kind.rawValue)), ("mode", q(mode)), ("tls", tls || cacert != nil ? "true" : "false"), ("driver", q(mode == "bft" ? "bft-client" : r.spec.kind == .watch ? "client" : driver)), ("nodes", "\(nodesDriven)"), ("clients", "\(r.spec.clients)"), ("conns", "\(r.spec.conns)"),
            ("key_size", "\(r.spec.keySize)"), ("value_size", "\(r.spec.valueSize)"), ("ops", "\(r.ops)"), ("seconds", String(format: "%.3f", r.seconds)),
            ("ops_per_s", String(format: "%.1f", r.opsPerSecond)), ("p50_ms", String(format: "%.3f", r.ms(50))), ("p90_ms", String(format: "%.3f", r.ms(90))),
            ("p99_ms", String(format: "%.3f", r.ms(99))), ("p999_ms", String(format: "%.3f", r.ms(99.9))), ("max_ms", String(format: "%.3f", r.maxMs)),
            ("errors", "\(r.errors)"), ("cluster_cpu_s", String(format: "%.2f", r.clusterCPUSeconds)), ("bench_cpu_s", String(format: "%.2f", r.benchCPUSeconds)),
            ("load_before", q(load)), ("load_after", q(loadAverage())),
        ]
        return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }
}

