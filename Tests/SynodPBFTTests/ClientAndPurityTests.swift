import Glibc
import SynodCore
import SynodCrypto
import SynodPBFT
import Testing

/// §4.1 clients, the read-only optimization (§5.1.3), and the authenticators.
@Suite("pBFT clients, read-only requests, authenticators")
struct ClientTests {
    static func reply(_ c: Cluster, from r: UInt64, result: [UInt8], readOnly: Bool = false, corrupt: Bool = false) -> PBFTEnvelope {
        let req = c.clients[0].currentRequest!
        let rep = Reply(view: .zero, timestamp: req.timestamp, client: req.client, replica: NodeID(r), result: result, readOnly: readOnly)
        let msg = PBFTMessage.reply(rep)
        var mac = c.auth[.replica(NodeID(r))]!.mac(msg.signedBytes, to: .client(req.client))
        if corrupt { mac[3] ^= 1 }
        return PBFTEnvelope(from: .replica(NodeID(r)), to: .client(req.client), message: msg, mac: mac)
    }

    @Test("the client accepts only f+1 matching, authentic replies from distinct replicas")
    func fPlusOne() {
        var c = Cluster()
        _ = c.clients[0].invoke([1])
        #expect(c.clients[0].step(Self.reply(c, from: 1, result: [9])) == nil)
        #expect(c.clients[0].step(Self.reply(c, from: 1, result: [9])) == nil) // same replica twice
        #expect(c.clients[0].step(Self.reply(c, from: 2, result: [8])) == nil) // does not match
        #expect(c.clients[0].step(Self.reply(c, from: 3, result: [9], corrupt: true)) == nil) // forged
        #expect(c.clients[0].step(Self.reply(c, from: 4, result: [9])) == [9])
        #expect(!c.clients[0].isBusy)
    }

    @Test("on timeout the client retransmits to every replica")
    func retransmitToAll() {
        var c = Cluster()
        _ = c.clients[0].invoke([1])
        #expect(c.clients[0].takeMessages().count == 1) // to the primary only
        for _ in 0..<c.clients[0].config.retransmitTicks { c.clients[0].tick() }
        let again = c.clients[0].takeMessages()
        #expect(Set(again.map(\.to)) == Set((1...4).map { Principal.replica(NodeID(UInt64($0))) }))
    }

    @Test("read-only requests are answered without ordering and need 2f+1 matching replies")
    func readOnly() {
        var c = Cluster()
        var config = c.clients[0].config
        config.readOnlyOptimization = true
        c.clients[0] = PBFTClient(config: config, crypto: c.auth[.client(ClientID(1))]!)
        _ = c.clients[0].invoke([0], readOnly: true)
        c.run()
        #expect(c.accepted == [[0]])
        #expect(c.executed.allSatisfy { $0.isEmpty })
    }

    @Test("a replica defers read-only answers while something it prepared is unexecuted")
    func readOnlyDeferred() {
        var c = Cluster()
        c.filter = { e in if case .commit = e.message { return false }; return true }
        _ = c.clients[0].invoke([1])
        c.run()
        let read = c.request(client: 1, 5, [0], readOnly: true)
        c.replicas[1].propose(read)
        #expect(c.replicas[1].ready().readOnly.isEmpty)
    }

    @Test("HMAC and Ed25519: valid ones verify, tampered ones and wrong keys do not")
    func authenticators() {
        let ids = (1...4).map { NodeID(UInt64($0)) }
        let a = DeterministicKeys.authenticators(seed: 1, replicas: ids, clients: [ClientID(1)])
        let n1 = a[.replica(ids[0])]!, n2 = a[.replica(ids[1])]!, n3 = a[.replica(ids[2])]!
        let msg: [UInt8] = [1, 2, 3]
        let sig = n1.sign(msg)
        #expect(n2.verifySignature(sig, of: msg, by: .replica(ids[0])))
        #expect(!n2.verifySignature(sig, of: [1, 2, 4], by: .replica(ids[0])))
        #expect(!n2.verifySignature(sig, of: msg, by: .replica(ids[2])))
        #expect(!n2.verifySignature(Array(sig.dropLast()), of: msg, by: .replica(ids[0])))
        let mac = n1.mac(msg, to: .replica(ids[1]))
        #expect(n2.verifyMAC(mac, of: msg, from: .replica(ids[0])))
        #expect(!n3.verifyMAC(mac, of: msg, from: .replica(ids[0]))) // pairwise keys
        #expect(!n2.verifyMAC(mac, of: [0], from: .replica(ids[0])))
        #expect(!n2.verifyMAC([], of: msg, from: .replica(ids[0])))
        // Deterministic from the seed.
        let again = DeterministicKeys.authenticators(seed: 1, replicas: ids, clients: [ClientID(1)])
        #expect(again[.replica(ids[0])]!.sign(msg) == sig)
        #expect(n1.digest(msg).bytes.count == 32)
    }
}

/// SynodPBFT must stay pure (DESIGN.md §1): no I/O modules, clocks or global randomness.
@Suite("SynodPBFT purity")
struct PBFTPurityTests {
    static let forbiddenImports = ["Foundation", "FoundationEssentials", "NIO", "NIOCore", "NIOPosix", "CLMDB", "Glibc", "Musl", "Darwin", "Dispatch", "Crypto"]
    static let forbiddenCalls = ["Date()", "DispatchTime", "clock_gettime", "ContinuousClock", "SuspendingClock", "UUID()", "SystemRandomNumberGenerator", ".random(", "arc4random"]

    static var sourcesRoot: String {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/") + "/Sources/SynodPBFT"
    }

    @Test("no forbidden imports or calls in SynodPBFT")
    func pure() throws {
        guard let d = opendir(Self.sourcesRoot) else { Issue.record("no Sources/SynodPBFT"); return }
        defer { closedir(d) }
        var files: [String] = []
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name.hasSuffix(".swift") { files.append(Self.sourcesRoot + "/" + name) }
        }
        #expect(files.count >= 5)
        for file in files.sorted() {
            guard let f = fopen(file, "r") else { continue }
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true { let n = fread(&buffer, 1, buffer.count, f); if n <= 0 { break }; bytes += buffer[0..<n] }
            fclose(f)
            for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
                let t = line.drop(while: { $0 == " " })
                if t.hasPrefix("//") { continue }
                for m in Self.forbiddenImports where t == "import \(m)" || t.hasPrefix("import \(m) ") {
                    Issue.record("\(file) imports \(m)")
                }
                for call in Self.forbiddenCalls where t.contains(call) { Issue.record("\(file) uses \(call)") }
            }
        }
    }
}
