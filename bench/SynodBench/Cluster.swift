import Foundation
import SynodCore
import SynodCrypto
import SynodPBFT
import SynodTransport

/// A cluster of `synod serve` processes the benchmark starts itself and stops by PID.
final class BenchCluster {
    let nodes: Int
    let directory: String
    let basePort: Int
    var processes: [Process] = []

    /// BFT mode: where the started replicas' and the clients' key files are.
    var keyDirectory: String { directory + "/keys" }

    init(nodes: Int, synod: String, extraArgs: [String], bftClients: Int? = nil) throws {
        self.nodes = nodes
        directory = NSTemporaryDirectory() + "synod-bench-\(getpid())"
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        basePort = LoopbackPorts.freeBase(count: 2 * nodes + 2)
        let peers = (1...nodes).map { "\($0)=127.0.0.1:\(basePort + nodes + 1 + $0)" }.joined(separator: ",")
        if let bftClients {
            try FileManager.default.createDirectory(atPath: keyDirectory, withIntermediateDirectories: true)
            for (p, keys) in PBFTKeyring.generate(replicas: (1...nodes).map { NodeID(UInt64($0)) }, clients: (1...bftClients).map { ClientID(UInt64($0)) }) {
                _ = FileManager.default.createFile(atPath: keyDirectory + "/" + PBFTKeyring.fileName(p), contents: Data(PBFTKeyring.encode(p, keys)))
            }
        }
        for n in 1...nodes {
            let bft = bftClients == nil ? [] : ["--mode", "bft", "--keys", keyDirectory + "/replica-\(n).key"]
            let p = Process()
            p.executableURL = URL(fileURLWithPath: synod)
            p.arguments = ["serve", "--id", "\(n)", "--data", "\(directory)/n\(n)", "--peers", peers,
                           "--listen-client", "127.0.0.1:\(basePort + n)", "--log-level", "warning"] + bft + extraArgs
            let log = "\(directory)/n\(n).log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            let h = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            p.standardOutput = h
            p.standardError = h
            try p.run()
            processes.append(p)
        }
    }

    var endpoints: [HostPort] { (1...nodes).map { HostPort(host: "127.0.0.1", port: basePort + $0) } }
    var pids: [Int32] { processes.map(\.processIdentifier) }

    func stop() {
        for p in processes where p.isRunning { kill(p.processIdentifier, SIGTERM) }
        let deadline = Date().addingTimeInterval(5)
        while processes.contains(where: \.isRunning) && Date() < deadline { usleep(20_000) }
        for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        processes = []
        try? FileManager.default.removeItem(atPath: directory)
    }

}

/// CPU seconds (user + system) used so far by a process, from /proc.
func cpuSeconds(pid: Int32) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return 0 }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let u = Double(fields[11]), let s = Double(fields[12]) else { return 0 }
    return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

func loadAverage() -> String {
    guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "?" }
    return text.split(separator: " ").prefix(3).joined(separator: " ")
}
