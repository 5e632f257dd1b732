import Foundation
import SynodClient
import SynodCore
import SynodStateMachine
import SynodTransport
import SynodWire
import SynodTestSupport
import Testing

extension RealProcessTests {
@Suite("Leases, watches and locks on real clusters")
struct CoordinationTests {
    @Test("lease expiry deletes attached keys on every node")
    func leaseExpiry() async throws {
        let cluster = try Cluster(size: 3)
        let client = cluster.client()
        defer { Task { await client.close() } }
        let lease = try await client.leaseGrant(ttlMillis: 800)
        try await client.put(b("ephemeral/a"), b("1"), lease: lease)
        try await client.put(b("ephemeral/b"), b("2"), lease: lease)
        try await client.put(b("durable"), b("3"))
        #expect(try await client.lease(lease)?.keys.count == 2)
        // Asked through any member, a linearizable lease query answers with the leader's remaining time.
        for n in 1...3 {
            let node = SynodClient(ClientConfiguration(endpoints: [cluster.endpoints[n - 1]]))
            let remaining = try await node.lease(lease)?.remainingMillis ?? -1
            #expect((1...800).contains(remaining), "node \(n) says \(remaining) ms remain")
            await node.close()
        }
        // Kept alive past its TTL, it survives.
        for _ in 0..<4 {
            try await Task.sleep(nanoseconds: 300_000_000)
            try await client.leaseKeepAlive(lease)
        }
        #expect(try await client.get(b("ephemeral/a")) != nil)
        // Left alone, it expires and its keys go on all nodes.
        try await Task.sleep(nanoseconds: 1_800_000_000)
        for n in 1...3 {
            let node = SynodClient(ClientConfiguration(endpoints: [cluster.endpoints[n - 1]]))
            var gone = false
            for _ in 0..<40 where !gone {
                gone = try await node.range(RangeRequest.prefix(b("ephemeral/")), consistency: .serializable).kvs.isEmpty
                if !gone { try await Task.sleep(nanoseconds: 50_000_000) }
            }
            #expect(gone, "node \(n) still has the expired lease's keys")
            #expect(try await node.get(b("durable"), consistency: .serializable)?.value == b("3"))
            await node.close()
        }
        await #expect(throws: ClientError.self) { try await client.leaseKeepAlive(lease) }
    }

    /// The test cluster ticks every 5 ms with a 40-tick election timeout: 200 ms, so the
    /// shortest lease is 300 ms. A 50 ms lease would expire before a new leader could be elected.
    @Test("a TTL below 1.5 election timeouts is granted at that minimum, and the grant says so")
    func minimumLeaseTTL() async throws {
        let cluster = try Cluster(size: 3)
        let client = cluster.client()
        defer { Task { await client.close() } }
        let short = try await client.leaseGrantDetailed(ttlMillis: 50)
        #expect(short.ttlMillis == 300)
        #expect(try await client.lease(short.id)?.ttlMillis == 300)
        let long = try await client.leaseGrantDetailed(ttlMillis: 301)
        #expect(long.ttlMillis == 301)
        await #expect(throws: ClientError.kv(.invalidLease(LeaseID(7), ttlMillis: 0))) {
            _ = try await client.write(.leaseGrant(id: LeaseID(7), ttlMillis: 0))
        }
    }

    /// etcd's revision-mode auto-compaction: with a 100-revision window (step 10) the leader
    /// compacts as writes go on, on every node alike; reads inside the window still work.
    @Test("the leader compacts history beyond --auto-compact-revisions; older reads answer compacted, recent ones still work")
    func autoCompaction() async throws {
        let cluster = try Cluster(size: 3, extraArgs: ["--auto-compact-revisions", "100"])
        let client = cluster.client()
        defer { Task { await client.close() } }
        var current: Int64 = 0
        for i in 1...300 { current = try await client.put(b("auto-\(i % 10)"), b("\(i)")).revision }
        // Every node ends with the history compacted to within a step (10) of the window.
        for n in 1...3 {
            let node = SynodClient(ClientConfiguration(endpoints: [cluster.endpoints[n - 1]]))
            var oldest: Int64 = 0
            for _ in 0..<100 where oldest < current - 100 - 10 {
                do {
                    _ = try await node.range(RangeRequest(key: b("auto-1"), revision: 1), consistency: .serializable)
                } catch let ClientError.kv(.compacted(_, available)) {
                    oldest = available
                }
                if oldest < current - 100 - 10 { try await Task.sleep(nanoseconds: 50_000_000) }
            }
            #expect(oldest >= current - 100 - 10 && oldest <= current - 100, "node \(n) compacted to \(oldest) at revision \(current)")
            await node.close()
        }
        // Inside the window the past still reads: key auto-1 at revision current - 5.
        let past = try await client.range(RangeRequest(key: b("auto-5"), revision: current - 5))
        #expect(!past.kvs.isEmpty)
    }

    /// A watch from revision R sees every later event exactly once, in order, while the leader
    /// (and the node serving the watch) is killed.
    @Test("a watch from a revision sees every later event once, in order, across a leader change")
    func watchAcrossLeaderChange() async throws {
        let cluster = try Cluster(size: 3)
        let client = cluster.client()
        defer { Task { await client.close() } }
        let start = try await client.put(b("w/0"), b("0")).revision
        let writes = 60
        let watcher = Task { () -> [WatchEvent] in
            var events: [WatchEvent] = []
            for try await e in client.watch(b("w/"), rangeEnd: KeyRange.prefixEnd(b("w/")), fromRevision: start) {
                events.append(e)
                if events.count == writes + 3 { break }
            }
            return events
        }
        for i in 1...writes {
            try await client.put(b("w/\(i % 7)"), b("\(i)"))
            if i == 20 || i == 40, let leader = await cluster.leader(using: client) {
                cluster.kill(leader)
                try await Task.sleep(nanoseconds: 200_000_000)
                try cluster.start(leader)
            }
        }
        // Two changes in one revision: the watch must deliver both (it once dropped all but the first).
        let both = Txn(compares: [], success: [.put(key: b("w/a"), value: b("a"), lease: nil, prevKV: false),
                                               .put(key: b("w/b"), value: b("b"), lease: nil, prevKV: false)])
        let txnRevision = try await client.txn(both).revision
        // Bounded: after 30 s the watch is cancelled and the events so far are checked.
        let timeout = Task {
            try await Task.sleep(nanoseconds: 30_000_000_000)
            watcher.cancel()
        }
        let events = try await watcher.value
        timeout.cancel()
        #expect(events.count == writes + 3)
        #expect(events.map(\.revision) == Array(start...(start + Int64(writes))) + [txnRevision, txnRevision], "revisions must be consecutive, each once")
        #expect(events.map { s($0.kv.value) } == (0...writes).map { "\($0)" } + ["a", "b"])
    }

    @Test("the lock excludes concurrent holders and fencing tokens increase")
    func lockMutualExclusion() async throws {
        let cluster = try Cluster(size: 3)
        let client = cluster.client()
        defer { Task { await client.close() } }
        let inside = Counter()
        let tokens = TokenLog()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    for _ in 0..<3 {
                        let (held, keepAlive) = try await client.lock("critical", ttlMillis: 5_000)
                        let now = inside.enter()
                        #expect(now == 1, "two holders inside the lock at once")
                        await tokens.append(held.fencingToken)
                        try await Task.sleep(nanoseconds: 20_000_000)
                        inside.leave()
                        try await client.unlock(held, keepAlive: keepAlive)
                    }
                }
            }
            try await group.waitForAll()
        }
        let seen = await tokens.values
        #expect(seen.count == 12)
        #expect(seen == seen.sorted() && Set(seen).count == seen.count, "fencing tokens must strictly increase: \(seen)")
    }
}
}

extension RealProcessTests {
@Suite("Backups")
struct BackupTests {
    @Test("snapshot save writes a consistent snapshot that snapshot status verifies")
    func snapshotSave() async throws {
        let cluster = try Cluster(size: 3)
        let client = cluster.client()
        defer { Task { await client.close() } }
        for i in 0..<100 { try await client.put(b("backup-\(i)"), b("\(i)")) }
        let file = NSTemporaryDirectory() + "synod-backup-\(getpid()).snap"
        defer { try? FileManager.default.removeItem(atPath: file) }
        let (saved, out, err) = try runSynod(["--endpoints", cluster.endpointsText, "snapshot", "save", file])
        #expect(saved == 0, "\(err)")
        #expect(out.contains("snapshot saved"))
        let (checked, report, _) = try runSynod(["snapshot", "status", file])
        #expect(checked == 0)
        #expect(report.contains("ok") && report.contains("verified"), "\(report)")
        let data = try #require(FileManager.default.contents(atPath: file))
        let (snapshot, records) = try SnapshotFile.decode(Array(data), tableCount: KVStateMachine.tables.count)
        #expect(records >= 100)
        #expect(snapshot.revision >= 101)
        #expect(snapshot.checksummed)
        // One bit flipped inside a record: every record still decodes, so only the SHA-256 can
        // tell; status and restore refuse the file.
        var flipped = Array(data)
        flipped[flipped.count - 3] ^= 0x01
        try Data(flipped).write(to: URL(fileURLWithPath: file))
        let (flippedStatus, _, flippedErr) = try runSynod(["snapshot", "status", file])
        #expect(flippedStatus == 1 && flippedErr.contains("checksum mismatch"), "\(flippedErr)")
        let (restored, _, restoreErr) = try runSynod(["snapshot", "restore", file, "--data", cluster.directory + "/restored", "--peers", "1=127.0.0.1:1"])
        #expect(restored == 1 && restoreErr.contains("checksum mismatch"), "\(restoreErr)")
        #expect(!FileManager.default.fileExists(atPath: cluster.directory + "/restored"))
        var damaged = Array(data)
        damaged[40] ^= 0xFF
        damaged.removeLast(10)
        try Data(damaged).write(to: URL(fileURLWithPath: file))
        let (bad, _, badErr) = try runSynod(["snapshot", "status", file])
        #expect(bad == 1)
        #expect(badErr.contains("not a valid snapshot"))
    }

    /// The streamed bytes must hash to what the node announced: a node that announces another
    /// digest (`--testing-damage-backups`, as if the stream changed on the way) gets no file
    /// written. Without the client's check this save would succeed.
    @Test("snapshot save refuses a stream whose bytes differ from the digest the node announced, and writes nothing")
    func damagedStreamRefused() async throws {
        let cluster = try Cluster(size: 1, extraArgs: ["--testing-damage-backups"])
        let client = cluster.client()
        defer { Task { await client.close() } }
        for i in 0..<20 { try await client.put(b("backup-\(i)"), b("\(i)")) }
        let file = NSTemporaryDirectory() + "synod-damaged-\(getpid()).snap"
        defer { try? FileManager.default.removeItem(atPath: file) }
        let (saved, _, err) = try runSynod(["--endpoints", cluster.endpointsText, "snapshot", "save", file])
        #expect(saved == 1, "\(err)")
        #expect(err.contains("snapshot stream damaged"), "\(err)")
        #expect(!FileManager.default.fileExists(atPath: file))
    }

    @Test("snapshot restore starts a new cluster with the saved keys, revisions and history, and refuses a used directory")
    func snapshotRestore() async throws {
        let file = NSTemporaryDirectory() + "synod-restore-\(getpid()).snap"
        defer { try? FileManager.default.removeItem(atPath: file) }
        var savedRevision: Int64 = 0
        do {
            let old = try Cluster(size: 3)
            let client = old.client()
            for i in 0..<50 { try await client.put(b("r-\(i)"), b("v\(i)")) }
            try await client.put(b("r-0"), b("v0-again"))
            savedRevision = try await client.put(b("r-last"), b("x")).revision
            let (saved, _, err) = try runSynod(["--endpoints", old.endpointsText, "snapshot", "save", file])
            #expect(saved == 0, "\(err)")
            await client.close()
            old.stopAll()
        }
        var outputs: [String] = []
        let restored = try Cluster(size: 3) { c in
            for n in 1...3 {
                let (status, out, err) = try runSynod(["snapshot", "restore", file, "--data", c.dataDirectory(n), "--peers", c.peersText])
                #expect(status == 0, "restore \(n): \(err)")
                outputs.append(out)
            }
            let (again, _, againErr) = try runSynod(["snapshot", "restore", file, "--data", c.dataDirectory(1), "--peers", c.peersText])
            #expect(again == 1)
            #expect(againErr.contains("already holds a Synod store"))
        }
        #expect(outputs.allSatisfy { $0.contains("restored") })
        let client = restored.client()
        defer { Task { await client.close() } }
        #expect(try await client.get(b("r-7"))?.value == b("v7"))
        #expect(try await client.get(b("r-0"))?.value == b("v0-again"))
        let next = try await client.put(b("after-restore"), b("1")).revision
        #expect(next == savedRevision + 1, "revisions continue from the snapshot")
        let older = try await client.get(b("r-0"), revision: savedRevision - 2)
        #expect(older?.value == b("v0"), "history before the snapshot is kept")
        for n in 1...3 { #expect(restored.isRunning(n), "node \(n): \(restored.log(n).suffix(500))") }
    }
}
}

extension RealProcessTests {
@Suite("Embedding")
struct EmbeddingTests {
    @Test("the embedding example runs a node in-process and uses it")
    func embeddedExample() throws {
        let exe = URL(fileURLWithPath: synodExecutable()).deletingLastPathComponent().appendingPathComponent("synod-embedded-example").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(text.contains("config/mode = active"))
        #expect(text.contains("compare-and-swap succeeded: true"))
        #expect(text.contains("embedded example: ok"))
    }
}
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func enter() -> Int { lock.lock(); defer { lock.unlock() }; n += 1; return n }
    func leave() { lock.lock(); n -= 1; lock.unlock() }
}

actor TokenLog {
    var values: [Int64] = []
    func append(_ v: Int64) { values.append(v) }
}
