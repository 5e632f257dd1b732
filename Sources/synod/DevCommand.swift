import ArgumentParser
import Foundation
import Synchronization
import SynodTransport

/// `synod dev`: a local cluster of `synod serve` child processes, stopped together on Ctrl-C.
struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dev", abstract: "Start a local cluster of child processes (Ctrl-C stops them all).")

    @Option(help: "Number of nodes (1...7; default 3, or 4 with --mode bft).") var nodes: Int?
    @Option(help: "raft, or bft (pBFT replicas; keys generated into DATA/keys).") var mode: String = "raft"
    @Option(name: .customLong("data"), help: "Data directory; node N uses DATA/nN (default ./data, ./data-bft with --mode bft).") var dataOption: String?
    @Option(help: "First client port; node N listens on PORT+N-1.") var clientPort: Int = 7001
    @Option(help: "First peer port; node N listens on PORT+N-1.") var peerPort: Int = 7101
    @Option(help: "First metrics port (raft mode; node N serves /metrics and /health on PORT+N-1; 0 = none).") var metricsPort: Int = 7201
    @Option(help: "First JSON gateway port (raft mode; node N serves etcd's /v3 HTTP API on PORT+N-1; 0 = none).") var httpPort: Int = 7301
    @Flag(name: .customLong("unsafe-no-fsync"), help: "UNSAFE: start the nodes without fsync (benchmarks only).") var unsafeNoFsync = false
    @Option(help: "Extra arguments for every `synod serve` (quoted).") var serveArgs: String = ""
    @Flag(help: "TLS everywhere (raft mode): a throwaway CA and certificates in DATA/tls (made with openssl, kept across restarts), client certificates required, mutual TLS between peers.") var tls = false

    var data: String { dataOption ?? (mode == "bft" ? "./data-bft" : "./data") }

    var count: Int { nodes ?? (mode == "bft" ? 4 : 3) }

    func validate() throws {
        guard ["raft", "bft"].contains(mode) else { throw ValidationError("--mode must be raft or bft") }
        guard (1...7).contains(count) else { throw ValidationError("--nodes must be 1...7") }
        guard mode == "raft" || count >= 4 else { throw ValidationError("--mode bft needs at least 4 nodes (3f+1)") }
        guard !tls || mode == "raft" else { throw ValidationError("--tls is for raft mode (BFT mode signs and MACs its messages instead)") }
        let nodes = count
        guard (1...65000).contains(clientPort), (1...65000).contains(peerPort) else { throw ValidationError("ports must be 1...65000") }
        guard abs(clientPort - peerPort) >= nodes else { throw ValidationError("client and peer port ranges overlap") }
        if metricsPort != 0 {
            guard (1...65000).contains(metricsPort) else { throw ValidationError("ports must be 1...65000") }
            guard abs(metricsPort - clientPort) >= nodes, abs(metricsPort - peerPort) >= nodes else { throw ValidationError("the metrics port range overlaps the client or peer ports") }
        }
        if httpPort != 0 {
            guard (1...65000).contains(httpPort) else { throw ValidationError("ports must be 1...65000") }
            guard abs(httpPort - clientPort) >= nodes, abs(httpPort - peerPort) >= nodes, metricsPort == 0 || abs(httpPort - metricsPort) >= nodes else {
                throw ValidationError("the JSON gateway port range overlaps the client, peer or metrics ports")
            }
        }
    }

    var endpoints: String { (0..<count).map { "127.0.0.1:\(clientPort + $0)" }.joined(separator: ",") }

    func run() async throws {
        let nodes = count
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let peers = (1...nodes).map { "\($0)=127.0.0.1:\(peerPort + $0 - 1)" }.joined(separator: ",")
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let keys = "\(data)/keys"
        if mode == "bft" && !FileManager.default.fileExists(atPath: "\(keys)/replica-1.key") {
            var keygen = try BFTKeygenCommand.parse(["--replicas", "\(nodes)", "--clients", "16", "--out", keys])
            try keygen.run()
        }
        if mode == "bft" {
            // BFT replicas keep no state across a restart of every replica at once (docs/PBFT.md):
            // a dev cluster starts empty each time.
            for n in 1...nodes where FileManager.default.fileExists(atPath: "\(data)/n\(n)") {
                guard FileManager.default.fileExists(atPath: "\(data)/n\(n)/BFT_REPLICA") else {
                    throw fail("\(data)/n\(n) is not a BFT replica's directory; give another --data", status: 1)
                }
                try FileManager.default.removeItem(atPath: "\(data)/n\(n)")
            }
        }
        var tlsArgs: [String] = []
        var certificates: DevCertificates?
        if tls {
            let c: DevCertificates
            do { c = try DevCertificates(in: "\(data)/tls") } catch { throw fail("--tls: \(error)", status: 1) }
            tlsArgs = ["--cert-file", c.nodeCert, "--key-file", c.nodeKey, "--trusted-ca-file", c.ca, "--client-cert-auth",
                       "--peer-cert-file", c.nodeCert, "--peer-key-file", c.nodeKey, "--peer-trusted-ca-file", c.ca]
            certificates = c
        }
        var children: [Process] = []
        for n in 1...nodes {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: exe)
            var args = ["serve", "--id", "\(n)", "--data", "\(data)/n\(n)", "--peers", peers, "--listen-client", "127.0.0.1:\(clientPort + n - 1)"]
            if mode == "bft" { args += ["--mode", "bft", "--keys", "\(keys)/replica-\(n).key"] }
            if mode != "bft" && metricsPort != 0 { args += ["--listen-metrics", "127.0.0.1:\(metricsPort + n - 1)"] }
            if mode != "bft" && httpPort != 0 { args += ["--listen-http", "127.0.0.1:\(httpPort + n - 1)"] }
            if unsafeNoFsync { args.append("--unsafe-no-fsync") }
            args += tlsArgs
            p.arguments = args + serveArgs.split(separator: " ").map(String.init)
            let logPath = "\(data)/n\(n).log"
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
            let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
            log.seekToEndOfFile()
            p.standardOutput = log
            p.standardError = log
            try p.run()
            children.append(p)
        }
        say("synod dev: \(nodes) nodes running (logs in \(data)/nN.log)")
        for n in 1...nodes {
            let metrics = mode != "bft" && metricsPort != 0 ? "  metrics http://127.0.0.1:\(metricsPort + n - 1)/metrics" : ""
            let http = mode != "bft" && httpPort != 0 ? "  JSON \(tls ? "https" : "http")://127.0.0.1:\(httpPort + n - 1)/v3/" : ""
            say("  node \(n): client 127.0.0.1:\(clientPort + n - 1)  peer 127.0.0.1:\(peerPort + n - 1)\(metrics)\(http)  pid \(children[n - 1].processIdentifier)")
        }
        if mode == "bft" {
            say("""

                Try, in another shell (any f = \((nodes - 1) / 3) replica may fail or lie):
                  export SYNOD_BFT_ENDPOINTS=\(endpoints) SYNOD_BFT_KEY=\(keys)/client-1.key
                  synod bft put greeting hello
                  synod bft get greeting

                Ctrl-C stops every node.
                """)
        } else {
        let tlsExports = certificates.map { c in
            "\n  export SYNOD_CACERT=\(Self.absolute(c.ca)) SYNOD_CERT=\(Self.absolute(c.clientCert)) SYNOD_KEY=\(Self.absolute(c.clientKey))" } ?? ""
        say("""

            Try, in another shell:
              export SYNOD_ENDPOINTS=\(endpoints)\(tlsExports)
              synod put greeting hello
              synod get greeting
              synod status
              synod txn --if 'value(greeting) = hello' --then 'put greeting world'
              synod hashkv                 # do the replicas hold the same history?\(httpPort != 0 && !tls ? "\n  curl -s -X POST http://127.0.0.1:\(httpPort)/v3/kv/range -d '{\"key\":\"Z3JlZXRpbmc=\"}'   # etcd's JSON API (base64 keys)" : "")

            Ctrl-C stops every node.
            """)
        }
        await Signals.waitForTermination()
        say("stopping \(children.count) nodes")
        for p in children where p.isRunning { kill(p.processIdentifier, SIGTERM) }
        let deadline = Date().addingTimeInterval(5)
        while children.contains(where: \.isRunning) && Date() < deadline { try? await Task.sleep(nanoseconds: 50_000_000) }
        for p in children where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        say("stopped")
    }
}

extension DevCommand {
    /// `path` made absolute against the working directory, for the printed exports.
    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + (path.hasPrefix("./") ? String(path.dropFirst(2)) : path)
    }
}

/// Writes a line to standard output unbuffered (so a supervising process sees it at once).
/// A reader that went away (`synod mesh agent | head -1`) makes the write fail with EPIPE (NIO
/// ignores SIGPIPE); Foundation's non-throwing `write` traps on that, so this one records it in
/// `StandardOutput.isClosed` and writes nothing more: a mesh agent then leaves the mesh.
func say(_ line: String) {
    guard !StandardOutput.isClosed.load(ordering: .relaxed) else { return }
    do { try FileHandle.standardOutput.write(contentsOf: Data((line + "\n").utf8)) } catch {
        StandardOutput.isClosed.store(true, ordering: .relaxed)
    }
}

enum StandardOutput {
    /// Set once a write to standard output failed (its reader is gone).
    static let isClosed = Atomic<Bool>(false)
}
