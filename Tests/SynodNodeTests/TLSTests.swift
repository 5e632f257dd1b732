import Foundation
import Logging
import NIOPosix
import SynodRaft
import SynodClient
import SynodCore
import SynodTestSupport
import SynodTransport
import SynodWire
import Testing

extension RealProcessTests {
/// TLS on real processes: clients (with client certificates required) and peer links (mutual)
/// encrypted; plain clients and clients without a certificate are turned away.
@Suite("TLS on a real cluster")
struct TLSTests {
    @Test("with client and peer TLS the cluster replicates and serves TLS clients; plain or certificate-less clients are refused")
    func clientAndPeerTLS() async throws {
        let certs = try TestCertificates(in: NSTemporaryDirectory() + "synod-tls-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let tlsArgs = ["--cert-file", certs.nodeCert, "--key-file", certs.nodeKey, "--trusted-ca-file", certs.ca, "--client-cert-auth",
                       "--peer-cert-file", certs.nodeCert, "--peer-key-file", certs.nodeKey, "--peer-trusted-ca-file", certs.ca]
        let cluster = try Cluster(size: 3, extraArgs: tlsArgs)
        func client(_ tls: TLSFiles?, deadline: Int64 = 20_000) -> SynodClient {
            var c = ClientConfiguration(endpoints: cluster.endpoints)
            c.retryDeadlineMillis = deadline
            c.requestTimeoutMillis = 1_000
            c.tls = tls
            return SynodClient(c)
        }
        let good = client(TLSFiles(certificate: certs.clientCert, privateKey: certs.clientKey, trustedCA: certs.ca))
        defer { Task { await good.close() } }
        // A put commits only if the leader's appends reach a follower: peer TLS works too.
        try await good.put(b("secret"), b("kept"))
        #expect(try await good.get(b("secret"))?.value == b("kept"))
        let plain = client(nil, deadline: 1_500)
        await #expect(throws: (any Error).self) { _ = try await plain.get(b("secret")) }
        await plain.close()
        let noCert = client(TLSFiles(trustedCA: certs.ca), deadline: 1_500)
        await #expect(throws: (any Error).self) { _ = try await noCert.get(b("secret")) }
        await noCert.close()
        // The CLI's etcdctl-style flags.
        let tlsCLI = ["--endpoints", cluster.endpointsText, "--cacert", certs.ca, "--cert", certs.clientCert, "--key", certs.clientKey]
        #expect(try runSynod(tlsCLI + ["put", "cli", "ok"]).0 == 0)
        #expect(try runSynod(tlsCLI + ["get", "cli"]).1 == "ok\n")
        #expect(try runSynod(["--endpoints", cluster.endpointsText, "--timeout", "2", "get", "cli"]).0 == 3)
    }

    @Test("a client checks that the node's certificate names the address it dialled: a certificate for localhost only is refused at 127.0.0.1")
    func serverIdentityChecked() async throws {
        let certs = try TestCertificates(in: NSTemporaryDirectory() + "synod-tls-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let cluster = try Cluster(size: 1, extraArgs: ["--cert-file", certs.namedCert, "--key-file", certs.namedKey])
        func client(host: String, deadline: Int64) -> SynodClient {
            var c = ClientConfiguration(endpoints: [HostPort(host: host, port: cluster.clientPort(1))])
            c.retryDeadlineMillis = deadline
            c.requestTimeoutMillis = 1_000
            c.tls = TLSFiles(trustedCA: certs.ca)
            return SynodClient(c)
        }
        let byName = client(host: "localhost", deadline: 20_000)
        defer { Task { await byName.close() } }
        try await byName.put(b("k"), b("v"))
        let byAddress = client(host: "127.0.0.1", deadline: 1_500)
        await #expect(throws: (any Error).self) { _ = try await byAddress.get(b("k")) }
        await byAddress.close()
    }

    /// `PeerIdentity`: a client certificate of the same CA (which names no member's address)
    /// dials a follower's peer port, says it is the leader, and sends a heartbeat fifty terms
    /// ahead. Checked, the link is closed and the follower's term does not move; with the check
    /// off (`--testing-skip-peer-identity`) the follower takes the forged term — the hole closed.
    @Test("under peer TLS a link's member id must be backed by its certificate", arguments: [false, true])
    func peerIdentityChecked(skipCheck: Bool) async throws {
        let certs = try TestCertificates(in: NSTemporaryDirectory() + "synod-tls-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        var args = ["--peer-cert-file", certs.nodeCert, "--peer-key-file", certs.nodeKey, "--peer-trusted-ca-file", certs.ca]
        if skipCheck { args.append("--testing-skip-peer-identity") }
        let metricsBase = LoopbackPorts.freeBase(count: 3)
        let cluster = try Cluster(size: 3, extraArgs: args, nodeArgs: { ["--listen-metrics", "127.0.0.1:\(metricsBase + $0 - 1)"] })
        let client = cluster.client()
        defer { Task { await client.close() } }
        try await client.put(b("k"), b("v"))
        let leader = try #require(await cluster.leader(using: client))
        let follower = leader == 1 ? 2 : 1
        let followerEndpoint = HostPort(host: "127.0.0.1", port: cluster.clientPort(follower))
        let term = try await client.status(of: followerEndpoint).term
        let forged = term + 50

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let impostor = PeerTransport(id: NodeID(UInt64(leader)), clusterID: 1, clientAddress: "127.0.0.1:1",
                                     peers: [(NodeID(UInt64(follower)), HostPort(host: "127.0.0.1", port: cluster.peerPort(follower)))],
                                     group: group, logger: Logger(label: "impostor"),
                                     tls: try PeerTLS(TLSFiles(certificate: certs.clientCert, privateKey: certs.clientKey, trustedCA: certs.ca)))
        try await impostor.start(listen: HostPort(host: "127.0.0.1", port: 0), delegate: SilentPeer())
        var seen = term
        for _ in 0..<30 where seen < forged {
            var m = Message(type: .heartbeat, from: NodeID(UInt64(leader)), to: NodeID(UInt64(follower)), term: Term(forged))
            m.commit = .zero
            impostor.send([m])
            try await Task.sleep(for: .milliseconds(100))
            seen = max(seen, (try? await client.status(of: followerEndpoint).term) ?? 0)
        }
        await impostor.shutdown()
        try await group.shutdownGracefully()
        if skipCheck {
            #expect(seen >= forged, "without the check the forged heartbeat is taken (term \(seen))")
        } else {
            #expect(seen < forged, "the follower took a heartbeat from a certificate that is not the leader's (term \(seen))")
            #expect(cluster.log(follower).contains("does not back the member id"), "the refusal is logged")
            var refused: Double?
            for _ in 0..<20 where (refused ?? 0) < 1 {
                let text = httpGet(port: metricsBase + follower - 1, path: "/metrics")?.body ?? ""
                refused = text.split(separator: "\n").first { $0.hasPrefix("synod_network_peer_links_refused_total ") }
                    .flatMap { Double($0.split(separator: " ")[1]) }
                if (refused ?? 0) < 1 { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect((refused ?? 0) >= 1, "the refusal is counted in /metrics")
        }
    }
}
}

extension RealProcessTests.TLSTests {
    /// `synod dev --tls`: a local cluster with TLS everywhere, whose printed exports are all a
    /// client needs; a plain client is refused; stopping `dev` stops its nodes.
    @Test("synod dev --tls starts a TLS cluster; its printed exports make the CLI work; plain clients are refused")
    func devTLS() async throws {
        let directory = NSTemporaryDirectory() + "synod-devtls-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { if ProcessInfo.processInfo.environment["SYNOD_TEST_KEEP"] == nil { try? FileManager.default.removeItem(atPath: directory) } }
        let base = LoopbackPorts.freeBase(count: 6)
        let dev = Process()
        dev.executableURL = URL(fileURLWithPath: synodExecutable())
        dev.arguments = ["dev", "--tls", "--data", directory + "/data", "--client-port", "\(base)", "--peer-port", "\(base + 3)", "--metrics-port", "0", "--http-port", "0"]
        let out = Pipe()
        dev.standardOutput = out
        dev.standardError = FileHandle.nullDevice
        try dev.run()
        defer {
            if dev.isRunning { kill(dev.processIdentifier, SIGTERM) }
            dev.waitUntilExit()
        }
        // The banner ends with "Ctrl-C stops every node."
        var banner = ""
        let deadline = Date().addingTimeInterval(20)
        while !banner.contains("Ctrl-C") && Date() < deadline {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            banner += String(decoding: chunk, as: UTF8.self)
        }
        let exports = try #require(banner.split(separator: "\n").first { $0.contains("SYNOD_CACERT=") }, "\(banner)")
        var environment: [String: String] = [:]
        for pair in exports.split(separator: " ") where pair.contains("=") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            environment[String(kv[0])] = String(kv[1])
        }
        environment["SYNOD_ENDPOINTS"] = (0..<3).map { "127.0.0.1:\(base + $0)" }.joined(separator: ",")
        #expect(environment.keys.sorted() == ["SYNOD_CACERT", "SYNOD_CERT", "SYNOD_ENDPOINTS", "SYNOD_KEY"])
        #expect(try runSynod(["put", "greeting", "hello"], environment: environment).0 == 0)
        #expect(try runSynod(["get", "greeting"], environment: environment).1 == "hello\n")
        var plain = environment
        plain["SYNOD_CACERT"] = nil; plain["SYNOD_CERT"] = nil; plain["SYNOD_KEY"] = nil
        #expect(try runSynod(["--timeout", "2", "get", "greeting"], environment: plain).0 == 3, "a plain client must be refused")
        let pids = try (1...3).map { n in try String(contentsOfFile: "\(directory)/data/n\(n)/synod.lock", encoding: .utf8) }
        kill(dev.processIdentifier, SIGTERM)
        dev.waitUntilExit()
        for text in pids {
            guard let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { continue }
            #expect(kill(pid, 0) != 0, "node \(pid) outlived synod dev")
        }
    }
}

/// Receives nothing of interest: the impostor only sends.
final class SilentPeer: PeerTransportDelegate {
    func peerTransport(hello: PeerHello) {}
}
