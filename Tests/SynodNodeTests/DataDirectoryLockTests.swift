import Foundation
import SynodClient
import SynodStateMachine
import SynodTestSupport
import SynodTransport
import Testing

extension RealProcessTests {
/// One process per member directory (`DataDirectoryLock`). Before it, a second `synod serve`
/// on a running node's directory started and both acted as the same member (checked by hand on
/// the tenth session's build: both processes ran, the second logged "node started").
@Suite("Data directory: lock, offline compaction and defrag")
struct DataDirectoryLockTests {
    /// Runs `synod` with `arguments`, killing it after `seconds` if it has not exited: a second
    /// serve that is not refused would otherwise run forever. Returns (exit status or nil when
    /// it had to be killed, stderr).
    static func runBounded(_ arguments: [String], seconds: Double) throws -> (Int32?, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: synodExecutable())
        p.arguments = arguments
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        try p.run()
        let deadline = Date().addingTimeInterval(seconds)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        let killed = p.isRunning
        if killed { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (killed ? nil : p.terminationStatus, text)
    }

    @Test("a second synod serve on a running node's directory is refused, naming the holder; a killed node leaves it free")
    func secondServeRefused() async throws {
        let cluster = try Cluster(size: 1)
        let client = cluster.client()
        defer { Task { await client.close() } }
        try await client.put(b("k"), b("v1"))
        let holder = cluster.processes[1]!.processIdentifier
        let ports = LoopbackPorts.freeBase(count: 2)
        let (status, stderr) = try Self.runBounded(["serve", "--id", "1", "--data", cluster.dataDirectory(1),
                                                    "--peers", "1=127.0.0.1:\(ports)", "--listen-client", "127.0.0.1:\(ports + 1)"], seconds: 10)
        #expect(status != nil && status != 0, "the second serve was not refused: \(stderr)")
        #expect(stderr.contains("is in use by another synod process (pid \(holder))"), "stderr: \(stderr)")
        // The first node is untouched and still serves.
        try await client.put(b("k"), b("v2"))
        // SIGKILL: the lock dies with its process; the same directory starts again and holds the data.
        cluster.kill(1)
        try cluster.start(1)
        let after = cluster.client()
        defer { Task { await after.close() } }
        #expect(try await after.get(b("k")).map { s($0.value) } == "v2")
    }

    /// BFT replicas take the same lock (on `BFT_LOCK`): a second replica would empty the first
    /// one's working copy and vote with its keys.
    @Test("a second BFT replica on a running replica's directory is refused, naming the holder")
    func secondBFTReplicaRefused() async throws {
        let cluster = try bftCluster()
        let holder = cluster.processes[1]!.processIdentifier
        let own = LoopbackPorts.freeBase(count: 2)
        let peers = (["1=127.0.0.1:\(own)"] + (2...4).map { "\($0)=127.0.0.1:\(cluster.peerPort($0))" }).joined(separator: ",")
        _ = try await eventually { statusField(cluster, 1, "role") != nil }
        let (status, stderr) = try Self.runBounded(["serve", "--mode", "bft", "--id", "1", "--keys", cluster.directory + "/keys/replica-1.key",
                                                    "--data", cluster.dataDirectory(1), "--peers", peers, "--listen-client", "127.0.0.1:\(own + 1)"], seconds: 10)
        #expect(status != nil && status != 0, "the second replica was not refused: \(stderr)")
        #expect(stderr.contains("is in use by another synod process (pid \(holder))"), "stderr: \(stderr)")
        #expect(FileManager.default.fileExists(atPath: cluster.dataDirectory(1) + "/data.mdb"), "the running replica's working copy was emptied")
    }

    /// 300 puts of 4 KB, deleted and their history compacted away: pages LMDB will reuse but
    /// never give back to the filesystem. Returns the revision of the one key kept (`keep`).
    static func leaveFreedPages(_ client: SynodClient) async throws -> Int64 {
        let value = [UInt8](repeating: 0x78, count: 4000)
        for i in 0..<300 { try await client.put(b("big-\(i)"), value) }
        _ = try await client.deleteRange(from: b("big-"), to: KeyRange.prefixEnd(b("big-")))
        try await client.put(b("keep"), b("yes"))
        let revision = try #require(try await client.get(b("keep"))).modRevision
        _ = try await client.compact(revision: revision)
        return revision
    }

    static func fileSize(_ path: String) throws -> Int64 {
        try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber).int64Value
    }

    /// etcd's defragment, offline: after deletes and a history compaction the file keeps its
    /// size; `synod storage compact` shrinks it, is refused while the node runs, and the node
    /// restarts on the compacted file with its data and revision.
    @Test("storage compact shrinks a stopped node's data.mdb, is refused while it runs, and the node restarts with its data")
    func offlineCompaction() async throws {
        let cluster = try Cluster(size: 1)
        let client = cluster.client()
        defer { Task { await client.close() } }
        let revision = try await Self.leaveFreedPages(client)
        let dir = cluster.dataDirectory(1)
        let (running, _, runningErr) = try runSynod(["storage", "compact", "--data", dir])
        #expect(running == 1 && runningErr.contains("is in use by another synod process"), "\(runningErr)")
        cluster.kill(1)
        let before = try Self.fileSize(dir + "/data.mdb")
        let (status, out, err) = try runSynod(["storage", "compact", "--data", dir])
        #expect(status == 0, "\(err)")
        let after = try Self.fileSize(dir + "/data.mdb")
        #expect(after < before * 3 / 4, "\(before) -> \(after): \(out)")
        #expect(out.contains("compacted"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/data.mdb.compact"))
        try cluster.start(1)
        let again = cluster.client()
        defer { Task { await again.close() } }
        let kept = try #require(try await again.get(b("keep")))
        #expect(s(kept.value) == "yes" && kept.modRevision == revision)
        #expect(try await again.get(b("big-1")) == nil)
        try await again.put(b("after"), b("ok"))
        // Nothing to compact in a directory without a store.
        let (missing, _, missingErr) = try runSynod(["storage", "compact", "--data", cluster.directory + "/none"])
        #expect(missing == 1 && !missingErr.isEmpty)
        // Nor in a BFT replica's, whose store is rebuilt at every restart.
        let bft = cluster.directory + "/bft"
        try FileManager.default.createDirectory(atPath: bft, withIntermediateDirectories: true)
        for name in ["BFT_REPLICA", "data.mdb"] { _ = FileManager.default.createFile(atPath: bft + "/" + name, contents: Data()) }
        let (bftStatus, _, bftErr) = try runSynod(["storage", "compact", "--data", bft])
        #expect(bftStatus == 1 && bftErr.contains("BFT replica"), "\(bftErr)")
    }

    /// `synod defrag` (etcdctl defrag): each running node compacts its file in turn while a
    /// writer keeps writing; every acknowledged write survives, the replicas' histories agree,
    /// and a node killed afterwards restarts from its compacted file.
    @Test("synod defrag compacts every running node's file under writes; a node restarts from the compacted file")
    func onlineDefrag() async throws {
        let cluster = try Cluster(size: 3)
        let client = cluster.client()
        defer { Task { await client.close() } }
        _ = try await Self.leaveFreedPages(client)
        func size(_ n: Int) throws -> Int64 { try Self.fileSize(cluster.dataDirectory(n) + "/data.mdb") }
        let before = try (1...3).map(size)
        let writer = Task { () -> [Int] in
            let w = cluster.client()
            defer { Task { await w.close() } }
            var acknowledged: [Int] = []
            for i in 0..<2_000 where !Task.isCancelled {
                if (try? await w.put(b("w-\(i)"), b("\(i)"))) != nil { acknowledged.append(i) }
            }
            return acknowledged
        }
        try await Task.sleep(for: .milliseconds(200))
        let (status, out, err) = try runSynod(["--endpoints", cluster.endpointsText, "defrag"])
        writer.cancel()
        let acknowledged = await writer.value
        #expect(status == 0, "\(out) \(err)")
        #expect(out.components(separatedBy: "defragmented ").count == 4, "\(out)")
        let after = try (1...3).map(size)
        for n in 0..<3 { #expect(after[n] < before[n] * 3 / 4, "node \(n + 1): \(before[n]) -> \(after[n])") }
        for n in 1...3 { #expect(!FileManager.default.fileExists(atPath: cluster.dataDirectory(n) + "/data.mdb.compact")) }
        #expect(!acknowledged.isEmpty)
        for i in acknowledged { #expect(try await client.get(b("w-\(i)"))?.value == b("\(i)"), "acknowledged w-\(i) lost") }
        #expect(try runSynod(["--endpoints", cluster.endpointsText, "hashkv"]).0 == 0)
        // --cluster: every member, from one endpoint's member list.
        let (all, allOut, allErr) = try runSynod(["--endpoints", cluster.endpoints[0].description, "defrag", "--cluster", "-w", "json"])
        #expect(all == 0 && allOut.components(separatedBy: "\"bytes_after\"").count == 4, "\(allOut) \(allErr)")
        // A node killed after its defrag restarts from the compacted file and catches up.
        cluster.kill(2)
        try await client.put(b("while-down"), b("1"))
        try cluster.start(2)
        var agreed = false
        for _ in 0..<40 where !agreed {
            try await Task.sleep(for: .milliseconds(250))
            let one = cluster.client(only: 2)
            agreed = (try? await one.get(b("while-down"), consistency: .serializable))?.value == b("1")
            await one.close()
        }
        #expect(agreed, "node 2 did not come back with its data")
        #expect(try runSynod(["--endpoints", cluster.endpointsText, "hashkv"]).0 == 0)
    }
}
}
