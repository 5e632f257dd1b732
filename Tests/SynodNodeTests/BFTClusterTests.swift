import Foundation
import NIOCore
import NIOPosix
import SynodClient
import SynodCore
import SynodCrypto
import SynodPBFT
import SynodStateMachine
import SynodTestSupport
import SynodTransport
import Testing

/// A BFT-mode cluster: four `synod serve --mode bft` replicas with keys from `synod bft keygen`.
/// The sequence number a replica restarted without protocol state may have voted through, from
/// its restart log line (`sequence_through=N`).
func sequenceThrough(_ log: String) -> UInt64? {
    guard let r = log.range(of: "sequence_through=") else { return nil }
    return UInt64(log[r.upperBound...].prefix { $0.isNumber })
}

/// The last sequence number replica `n` executed, from `synod status -w json`.
func executed(_ cluster: Cluster, _ n: Int) -> UInt64? {
    statusField(cluster, n, "applied").flatMap { UInt64($0) }
}

/// `proxied`: every peer link runs through a `LinkProxy` (`Cluster.proxyEveryLink`).
func bftCluster(extraArgs: [String] = [], corrupt: Set<Int> = [], proxied: Bool = false, checkpointInterval: Int = 8) throws -> Cluster {
    try Cluster(size: 4, extraArgs: ["--mode", "bft", "--checkpoint-interval", "\(checkpointInterval)"] + extraArgs,
                nodeArgs: { n in [] }) { c in
        if proxied { try c.proxyEveryLink() }
        let (status, _, err) = try runSynod(["bft", "keygen", "--replicas", "4", "--clients", "8", "--out", c.directory + "/keys"])
        guard status == 0 else { throw BenchFailure("keygen failed: \(err)") }
        let dir = c.directory
        c.nodeArgs = { n in ["--keys", dir + "/keys/replica-\(n).key"] + (corrupt.contains(n) ? ["--testing-corrupt-replies"] : []) }
    }
}

/// Polls `condition` every 100 ms, at most `tries` times; true as soon as it holds.
func eventually(tries: Int = 50, _ condition: () throws -> Bool) async throws -> Bool {
    for _ in 0..<tries {
        if try condition() { return true }
        try await Task.sleep(nanoseconds: 100_000_000)
    }
    return false
}

/// `eventually` for a condition that awaits (a client read).
func eventuallyAsync(tries: Int = 50, _ condition: () async throws -> Bool) async throws -> Bool {
    for _ in 0..<tries {
        if try await condition() { return true }
        try await Task.sleep(nanoseconds: 100_000_000)
    }
    return false
}

struct BenchFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

extension Cluster {
    /// A client with `synod bft keygen`'s key `client-<id>.key`. `readOnly`: reads use the
    /// read-only optimization (answered by 2f+1 matching replicas, or `readOnlyReplies`).
    func bftClient(_ id: UInt64, group: any EventLoopGroup, timeoutMillis: Int = 20_000, writeReplies: Int? = nil,
                   readOnly: Bool = false, readOnlyReplies: Int? = nil) throws -> SynodBFTClient {
        let data = FileManager.default.contents(atPath: directory + "/keys/client-\(id).key")!
        let (_, keys) = try PBFTKeyring.decode(Array(data))
        var config = SynodBFTClient.Configuration(endpoints: endpoints, keys: keys, id: ClientID(id))
        config.timeoutMillis = timeoutMillis
        config.testingRepliesRequired = writeReplies
        config.readOnlyOptimization = readOnly
        config.testingReadOnlyRepliesRequired = readOnlyReplies
        return try SynodBFTClient(config, group: group)
    }
}

extension RealProcessTests {
@Suite("BFT mode: real synod serve --mode bft replicas")
struct BFTClusterTests {
    @Test("CLI keygen, put and get through f+1 matching replies; a key file of the wrong kind is refused")
    func cliRoundTrip() async throws {
        let cluster = try bftCluster()
        let env = ["SYNOD_BFT_ENDPOINTS": cluster.endpointsText, "SYNOD_BFT_KEY": cluster.directory + "/keys/client-1.key"]
        let ok = try await eventually { try runSynod(["bft", "put", "greeting", "hello"], environment: env).0 == 0 }
        #expect(ok, "the BFT cluster never accepted a put: \(cluster.log(1).suffix(800))")
        let (st, out, _) = try runSynod(["bft", "get", "greeting"], environment: env)
        #expect(st == 0 && out == "hello\n")
        let (missing, _, err) = try runSynod(["bft", "get", "nope"], environment: env)
        #expect(missing == 1 && err.contains("key not found"))
        let (wrong, _, wrongErr) = try runSynod(["bft", "get", "greeting", "--key-file", cluster.directory + "/keys/replica-1.key"], environment: env)
        #expect(wrong != 0 && wrongErr.contains("not of a client"))
        // Mesh commands through the same client (`synod bft mesh`): decided by every replica,
        // accepted on f+1 matching replies.
        let (joined, _, joinErr) = try runSynod(["bft", "mesh", "join", "a", "--cap", "x"], environment: env)
        #expect(joined == 0, "\(joinErr)")
        let (submitted, sub, subErr) = try runSynod(["bft", "mesh", "submit", "t1", "--requires", "x"], environment: env)
        #expect(submitted == 0 && sub.contains("task t1 -> a"), "\(sub)\(subErr)")
        let (shown, show, _) = try runSynod(["bft", "mesh", "show"], environment: env)
        #expect(shown == 0 && show.contains("agent a") && show.contains("task t1") && show.contains("on a"), "\(show)")
        let (stale, _, staleErr) = try runSynod(["bft", "mesh", "submit", "t2", "--if-version", "1"], environment: env)
        #expect(stale != 0 && staleErr.contains("version"), "\(staleErr)")
        // `synod status` shows each replica's role, view and progress.
        let (ss, status, _) = try runSynod(["--endpoints", cluster.endpointsText, "status", "-w", "json"])
        #expect(ss == 0 && status.contains("\"role\":\"bft-primary\"") && status.contains("\"role\":\"bft-backup\""), "\(status)")
        // A Raft client talking to a BFT replica gets a clear refusal, not a hang.
        let (raft, _, raftErr) = try runSynod(["--endpoints", cluster.endpointsText, "--timeout", "2", "get", "greeting"])
        #expect(raft != 0 && raftErr.contains("BFT mode"), "\(raftErr)")
    }

    @Test("a replica that lies to every client cannot make one accept its answer (f = 1)")
    func lyingReplica() async throws {
        let cluster = try bftCluster(corrupt: [1])
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = try cluster.bftClient(1, group: group)
        for i in 0..<40 {
            let r = try await client.put(b("k\(i)"), b("v\(i)"))
            #expect(r.revision == Int64(i + 2))
            #expect(try await client.get(b("k\(i)"))?.value == b("v\(i)"))
        }
        // Mesh decisions go through the same f+1 vote: the auction's winner is the correct replicas'.
        try await client.mesh(.join(agent: "a", capabilities: ["gpu"], resources: 500))
        try await client.mesh(.join(agent: "b", capabilities: ["gpu", "ssd"], resources: 500))
        #expect(try await client.mesh(.submit(task: "t", requires: ["ssd", "gpu"], cost: 100)).moves == [MeshMove(task: "t", from: nil, to: "b")])
        #expect(try await client.meshView().tasks.map(\.agent) == ["b"])
        await client.close()
        #expect(cluster.log(1).contains("lies to clients"))
        // The same run with the bug f+1 voting prevents injected (accept the first reply): the
        // lie gets through (replica 1 is the first link the client reads, so it often answers first).
        let gullible = try cluster.bftClient(2, group: group, writeReplies: 1)
        var lied = false
        for i in 0..<40 where !lied {
            do {
                _ = try await gullible.put(b("g\(i)"), b("v"))
                lied = try await gullible.get(b("g\(i)"))?.value != b("v")
            } catch let ClientError.kv(e) {
                lied = "\(e)".contains("a lie")
            }
        }
        #expect(lied, "accepting one reply never let the lying replica through")
        await gullible.close()
        try await group.shutdownGracefully()
    }

    @Test("the state stops growing before one state transfer can no longer carry it; deletes still run and a wiped replica still catches up")
    func stateLimit() async throws {
        let cluster = try bftCluster()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = try cluster.bftClient(1, group: group)
        let big = [UInt8](repeating: 0x5A, count: 60_000)
        var refused: String?
        var stored = 0
        for i in 0..<400 where refused == nil {
            do {
                _ = try await client.put(b("big\(i)"), big)
                stored += 1
            } catch let ClientError.kv(e) {
                refused = "\(e)"
            }
        }
        #expect(refused?.contains("at most 12 MiB") == true, "never refused: \(stored) puts of 60 kB stored")
        #expect(stored > 20)
        #expect(try await client.delete(b("big0")).deleted == 1)
        #expect(try await client.get(b("big1"))?.value == big)
        // Every replica is still alive (none hit the hard limit), and an empty one catches up.
        for n in 1...4 { #expect(cluster.isRunning(n), "replica \(n) died: \(cluster.log(n).suffix(400))") }
        cluster.kill(2)
        try cluster.start(2)
        let recovering = try await eventually {
            (try? runSynod(["--endpoints", cluster.endpoints[1].description, "status", "-w", "json"]))?.1.contains("bft-recovering") == true
        }
        #expect(recovering, "a restarted replica should report bft-recovering")
        // The restarted replica votes again from the next view, once the others have moved a log
        // window past what it may have voted on: some progress, then the primary fails. How many
        // writes that progress takes depends on batching (a loaded machine packs more requests
        // per sequence number), so write until the replica has executed two checkpoint intervals
        // past the sequence number its restart line names.
        let through = try #require(sequenceThrough(cluster.log(2)), "no restart line: \(cluster.log(2).suffix(400))")
        var deletes = 0
        while deletes < 3_000, (executed(cluster, 2) ?? 0) < through + 16 {
            for _ in 0..<20 { _ = try await client.delete(b("missing\(deletes)")); deletes += 1 }
        }
        cluster.kill(1)
        #expect(cluster.log(2).contains("restarted without protocol state"))
        let strict = try cluster.bftClient(2, group: group, writeReplies: 3)
        #expect(try await strict.get(b("big\(stored - 1)"))?.value == big)
        await strict.close()
        let voting = try await eventually { cluster.log(2).contains("voting again") }
        #expect(voting, "replica 2 answered through 2f+1 but never logged that it votes again")
        await client.close()
        try await group.shutdownGracefully()
    }

    @Test("the primary is killed: a view change elects another; a replica restarted empty catches up by state transfer and then counts toward the quorum")
    func viewChangeAndStateTransfer() async throws {
        let cluster = try bftCluster()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let clients = try (1...4).map { try cluster.bftClient(UInt64($0), group: group) }
        // Concurrent writers, so batches hold several requests.
        func write(_ range: Range<Int>) async throws {
            try await withThrowingTaskGroup(of: Void.self) { g in
                for (w, c) in clients.enumerated() {
                    g.addTask { for i in range where i % clients.count == w { _ = try await c.put(b("key\(i)"), b("value\(i)")) } }
                }
                try await g.waitForAll()
            }
        }
        try await write(0..<100)
        // View 0's primary is replica 1: kill it; the others must change view and go on.
        cluster.kill(1)
        try await write(100..<200)
        #expect((2...4).contains { cluster.log($0).contains("view changed") }, "no view change logged")
        // Replica 4 crashes and restarts empty; the cluster goes on past several checkpoints
        // (interval 8) so the log it missed is garbage-collected everywhere.
        cluster.kill(4)
        try cluster.start(1)
        try await write(200..<400)
        try cluster.start(4)
        try await write(400..<500)
        let installed = try await eventually(tries: 100) { cluster.log(4).contains("installed state by state transfer") }
        #expect(installed, "replica 4 never installed state: \(cluster.log(4).suffix(800))")
        // Now replica 3 fails: progress needs replica 4's votes, and a reader that wants all
        // three live replicas to agree (2f+1) proves replica 4's transferred state is right.
        cluster.kill(3)
        try await write(500..<600)
        let strict = try cluster.bftClient(5, group: group, writeReplies: 3)
        for i in stride(from: 0, to: 600, by: 37) {
            #expect(try await strict.get(b("key\(i)"))?.value == b("value\(i)"))
        }
        await strict.close()
        for c in clients { await c.close() }
        try await group.shutdownGracefully()
    }
}
}
