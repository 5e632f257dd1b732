import Foundation
import SynodClient
import SynodStateMachine
import SynodTestSupport
import Testing

/// Runs a program (looked up on PATH) and returns its exit status; output is discarded.
func runProgram(_ arguments: [String]) throws -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = arguments
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    return p.terminationStatus
}

/// Whether this machine lets a test mount a tmpfs (root with CAP_SYS_ADMIN, as the CI machine
/// and the development machines are). Without it the disk-full test is skipped, not failed.
let canMountTmpfs: Bool = {
    let dir = NSTemporaryDirectory() + "synod-mount-probe-\(getpid())"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    guard (try? runProgram(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir])) == 0 else { return false }
    _ = try? runProgram(["umount", dir])
    return true
}()

extension RealProcessTests {
@Suite("A node's disk fills up")
struct DiskFullTests {
    /// Node 3's data directory is a 6 MiB tmpfs; 4 KiB puts fill it within a few hundred writes.
    /// LMDB's commit fails with ENOSPC part-way through writing its pages: the node must stop (a
    /// node that cannot persist must not answer), the other two must go on, and once the disk
    /// has room the same directory must open — the failed commit left the last good one intact —
    /// and catch up with every write the cluster acknowledged.
    @Test("a node's disk fills: it stops with a storage failure, the others go on; given room and restarted it catches up with every acknowledged write",
          .enabled(if: canMountTmpfs))
    func diskFull() async throws {
        var mountPoint: String?
        let cluster = try Cluster(size: 3) { c in
            let dir = c.dataDirectory(3)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            guard try runProgram(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", dir]) == 0 else { throw BenchFailure("cannot mount a tmpfs at \(dir)") }
            mountPoint = dir
        }
        defer {
            cluster.stopAll()
            if let m = mountPoint { _ = try? runProgram(["umount", "-l", m]) }
        }
        let client = cluster.client(deadlineMillis: 10_000)
        defer { Task { await client.close() } }
        let value = [UInt8](repeating: 0x61, count: 4096)
        var acknowledged: [Int] = []
        var failures = 0
        var deadAt: Int?
        let started = Date()
        var i = 0
        while i < 20_000, Date().timeIntervalSince(started) < 60 {
            if deadAt == nil, !cluster.isRunning(3) { deadAt = acknowledged.count }
            if let d = deadAt, acknowledged.count >= d + 200 { break }
            do {
                try await client.put(b("full-\(i)"), value)
                acknowledged.append(i)
            } catch {
                failures += 1
            }
            i += 1
        }
        let log3 = cluster.log(3)
        #expect(deadAt != nil, "node 3 never stopped after \(acknowledged.count) puts of 4 KiB on a 6 MiB disk: \(log3.suffix(600))")
        #expect(log3.contains("storage failure") && log3.contains("is full"), "\(log3.suffix(800))")
        #expect(acknowledged.count >= (deadAt ?? 0) + 200, "the other two stopped taking writes: \(acknowledged.count) acknowledged, \(failures) failed")
        // Room again (the tmpfs keeps its files), and the same directory restarted.
        let m = try #require(mountPoint)
        #expect(try runProgram(["mount", "-o", "remount,size=512m", m]) == 0)
        try cluster.start(3)
        let node3 = cluster.client(deadlineMillis: 10_000, only: 3)
        defer { Task { await node3.close() } }
        let last = try #require(acknowledged.last)
        let caughtUp = try await eventuallyAsync(tries: 200) {
            (try? await node3.get(b("full-\(last)"), consistency: .serializable)) != nil
        }
        #expect(caughtUp, "node 3 never caught up: \(cluster.log(3).suffix(800))")
        let stored = try await node3.range(RangeRequest.prefix(b("full-"), keysOnly: true), consistency: .serializable).kvs.map { s($0.key) }
        let missing = acknowledged.filter { !Set(stored).contains("full-\($0)") }
        #expect(missing.isEmpty, "node 3 lost \(missing.count) acknowledged writes, e.g. \(missing.prefix(5))")
        var agree = false
        for _ in 0..<50 where !agree {
            agree = try runSynod(["hashkv", "--endpoints", cluster.endpointsText]).0 == 0
            if !agree { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        #expect(agree, "hashkv: the three replicas differ after node 3 caught up")
    }
}
}
