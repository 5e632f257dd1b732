import Foundation
import SynodClient
import SynodTestSupport
import SynodTransport

/// Real `synod serve` processes on 127.0.0.1, each stopped by PID when the harness goes away.
final class Cluster: @unchecked Sendable {
    let size: Int
    let directory: String
    let basePort: Int
    var processes: [Int: Process] = [:]
    let extraArgs: [String]
    /// Arguments for one node only (e.g. its key file in BFT mode).
    var nodeArgs: (Int) -> [String] = { _ in [] }

    /// Nodes beyond `size` that may join later (their ports are reserved).
    let spare: Int
    /// The port node `from` dials to reach node `to` (set in `beforeStart`): a `LinkProxy`'s,
    /// for partition tests. Nil: each node's own peer port.
    var dialPort: ((_ from: Int, _ to: Int) -> Int)?
    /// Link proxies the cluster owns (stopped with it).
    var proxies: [LinkProxy] = []

    /// `beforeStart` runs once the directory and ports exist, before any node starts (e.g. to
    /// restore data directories from a snapshot).
    convenience init(size: Int, spare: Int = 0, extraArgs: [String] = [], beforeStart: (Cluster) throws -> Void = { _ in }) throws {
        try self.init(size: size, spare: spare, extraArgs: extraArgs, nodeArgs: { _ in [] }, beforeStart: beforeStart)
    }

    init(size: Int, spare: Int = 0, extraArgs: [String] = [], nodeArgs: @escaping (Int) -> [String], beforeStart: (Cluster) throws -> Void = { _ in }) throws {
        self.nodeArgs = nodeArgs
        self.size = size
        self.spare = spare
        self.extraArgs = extraArgs
        directory = NSTemporaryDirectory() + "synod-cluster-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        basePort = LoopbackPorts.freeBase(count: 2 * (size + spare) + 2)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try beforeStart(self)
        for n in 1...size { try start(n) }
    }

    deinit {
        stopAll()
        for p in proxies { p.stop() }
        // SYNOD_TEST_KEEP=1 keeps the data directories and node logs for a post-mortem.
        if ProcessInfo.processInfo.environment["SYNOD_TEST_KEEP"] == nil { try? FileManager.default.removeItem(atPath: directory) }
    }

    func clientPort(_ n: Int) -> Int { basePort + n }
    func peerPort(_ n: Int) -> Int { basePort + size + spare + 1 + n }
    var endpoints: [HostPort] { (1...size).map { HostPort(host: "127.0.0.1", port: clientPort($0)) } }
    var endpointsText: String { endpoints.map(\.description).joined(separator: ",") }
    var peersText: String { (1...size).map { "\($0)=127.0.0.1:\(peerPort($0))" }.joined(separator: ",") }
    func dataDirectory(_ n: Int) -> String { "\(directory)/n\(n)" }

    /// Starts node `n`; a spare node (n > size) joins instead of bootstrapping.
    func start(_ n: Int) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: synodExecutable())
        let peers = n > size ? (1...n).map { "\($0)=127.0.0.1:\(peerPort($0))" }.joined(separator: ",")
            : dialPort.map { port in (1...size).map { "\($0)=127.0.0.1:\($0 == n ? peerPort($0) : port(n, $0))" }.joined(separator: ",") } ?? peersText
        p.arguments = ["serve", "--id", "\(n)", "--data", dataDirectory(n), "--peers", peers, "--listen-client", "127.0.0.1:\(clientPort(n))",
                       "--tick-ms", "5", "--election-ticks", "40", "--heartbeat-ticks", "4", "--log-level", "notice"] + extraArgs + nodeArgs(n) + (n > size ? ["--join"] : [])
        let log = "\(directory)/n\(n).log"
        if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        handle.seekToEndOfFile()
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        processes[n] = p
    }

    func kill(_ n: Int, signal: Int32 = SIGKILL) {
        guard let p = processes[n] else { return }
        Glibc.kill(p.processIdentifier, signal)
        p.waitUntilExit()
        processes[n] = nil
    }

    /// Freezes node `n` (SIGSTOP): its sockets stay open and fill, its clocks run on; as a
    /// process paused by the host, a long GC-like stall or a debugger would.
    func pause(_ n: Int) {
        guard let p = processes[n] else { return }
        Glibc.kill(p.processIdentifier, SIGSTOP)
    }

    /// Lets a paused node run again (SIGCONT).
    func resume(_ n: Int) {
        guard let p = processes[n] else { return }
        Glibc.kill(p.processIdentifier, SIGCONT)
    }

    func wipe(_ n: Int) { try? FileManager.default.removeItem(atPath: dataDirectory(n)) }

    func isRunning(_ n: Int) -> Bool { processes[n]?.isRunning ?? false }

    /// The exit status of node `n` once it exited by itself (nil while it runs, or if it was
    /// never started or was killed through `kill`).
    func exitStatus(_ n: Int) -> Int32? { processes[n].flatMap { $0.isRunning ? nil : $0.terminationStatus } }

    func stopAll() {
        // A paused node would keep SIGTERM pending: let it run first.
        for (_, p) in processes where p.isRunning { Glibc.kill(p.processIdentifier, SIGCONT); Glibc.kill(p.processIdentifier, SIGTERM) }
        let deadline = Date().addingTimeInterval(5)
        while processes.values.contains(where: \.isRunning) && Date() < deadline { usleep(20_000) }
        for (_, p) in processes where p.isRunning { Glibc.kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        processes.removeAll()
    }

    /// A client of the whole cluster, or (`only`) of one node: it starts there and leaves only
    /// when the node redirects it.
    func client(deadlineMillis: Int64 = 20_000, only node: Int? = nil) -> SynodClient {
        var c = ClientConfiguration(endpoints: node.map { [endpoints[$0 - 1]] } ?? endpoints)
        c.retryDeadlineMillis = deadlineMillis
        c.requestTimeoutMillis = 2_000
        return SynodClient(c)
    }

    /// The node that says it leads, by asking each running node (spares included).
    func leader(using client: SynodClient) async -> Int? {
        for n in 1...(size + spare) where isRunning(n) {
            if let s = try? await client.status(of: HostPort(host: "127.0.0.1", port: clientPort(n))), s.role == "leader" { return Int(s.id.rawValue) }
        }
        return nil
    }

    func log(_ n: Int) -> String { (try? String(contentsOfFile: "\(directory)/n\(n).log", encoding: .utf8)) ?? "" }

}

import Testing

/// Every test that starts real `synod serve` processes, one at a time: clusters running side by
/// side on two cores would starve each other's elections and prove nothing.
@Suite("Real processes", .serialized)
struct RealProcessTests {}
