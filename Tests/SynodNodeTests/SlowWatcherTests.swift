import Foundation
import NIOCore
import SynodClient
import SynodStateMachine
import SynodTestSupport
import SynodTransport
import SynodWire
import Testing

extension RealProcessTests {
/// A watcher whose client stops reading must not make the node buffer every event for it
/// (STYLE: limits on everything): it falls behind, and catches up from history when it reads.
@Suite("Slow watchers")
struct SlowWatcherTests {
    /// The node's anonymous memory (heap), in bytes: where unsent responses would pile up.
    static func anonymousBytes(_ pid: Int32) -> Int {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = s.split(separator: "\n").first(where: { $0.hasPrefix("RssAnon:") }),
              let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else { return 0 }
        return kb * 1024
    }

    @Test("a watcher that stops reading costs bounded memory, then gets every event in order")
    func slowWatcher() async throws {
        let cluster = try Cluster(size: 3)
        let client = cluster.client()
        defer { Task { await client.close() } }
        let start = try await client.put(b("slow/start"), b("0")).revision
        // Watch on a follower and compare its heap with the other follower's: both hold the
        // same Raft log in memory, only one has a watcher that reads nothing.
        let leader = try #require(await cluster.leader(using: client))
        let followers = [1, 2, 3].filter { $0 != leader }
        let watched = followers[0], reference = followers[1]
        // A raw connection that sends one watch request and then reads nothing.
        // (A small receive buffer keeps the kernel's share of the backlog small.)
        let fd = try #require(rawConnect(port: cluster.clientPort(watched), receiveBuffer: 64 * 1024))
        defer { close(fd) }
        var request = ByteBufferAllocator().buffer(capacity: 256)
        ClientRequest(id: 7, body: .watch(WatchRequest(key: b("slow/"), rangeEnd: b("slow0"), startRevision: start + 1).encode())).encode(into: &request)
        let bytes = request.readBytes(length: request.readableBytes)!
        #expect(bytes.withUnsafeBytes { send(fd, $0.baseAddress, bytes.count, 0) } == bytes.count)
        try await Task.sleep(nanoseconds: 200_000_000)

        let pid = cluster.processes[watched]!.processIdentifier, referencePID = cluster.processes[reference]!.processIdentifier
        let before = Self.anonymousBytes(pid), referenceBefore = Self.anonymousBytes(referencePID)
        let value = [UInt8](repeating: 0x42, count: 16_000)
        let writers = 16, perWriter = 200 // 3,400 events (writer 0 writes two per txn), 54 MB of values
        let expected = writers * perWriter + perWriter
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<writers {
                group.addTask {
                    for i in 0..<perWriter {
                        if w == 0 {
                            // Two events in one revision: a history batch must never split one.
                            _ = try await client.txn(Txn(compares: [], success: [.put(key: b("slow/\(w)/\(i)"), value: value, lease: nil, prevKV: false),
                                                                                 .put(key: b("slow/t/\(i)"), value: value, lease: nil, prevKV: false)]))
                        } else {
                            try await client.put(b("slow/\(w)/\(i)"), value)
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        try await Task.sleep(nanoseconds: 300_000_000)
        let grown = Self.anonymousBytes(pid) - before, referenceGrown = Self.anonymousBytes(referencePID) - referenceBefore
        #expect(grown - referenceGrown < 16 << 20,
                "node \(watched) heap grew \(grown >> 20) MiB, node \(reference) without the watcher \(referenceGrown >> 20) MiB (51 MB of events)")

        // Now read: every event, once, in revision order.
        var buffer = ByteBufferAllocator().buffer(capacity: 1 << 20)
        var revisions: [Int64] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        let deadline = Date().addingTimeInterval(30)
        var pollFD = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        reading: while revisions.count < expected && Date() < deadline {
            guard poll(&pollFD, 1, 1000) > 0 else { continue }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            buffer.writeBytes(chunk[0..<n])
            while var frame = try FrameDecoder.next(from: &buffer, frameBytesMax: WireProtocol.clientFrameBytesMax) {
                let response = try ClientResponse.decode(&frame.payload)
                guard response.id == 7 else { continue }
                if response.status == .watchEnded { Issue.record("watch ended: \(response.message)"); break reading }
                guard response.status == .watchEvents else { continue }
                revisions += try WatchEvents.decode(response.body).map(\.revision)
            }
        }
        #expect(revisions.count == expected, "received \(revisions.count) of \(expected) events")
        #expect(zip(revisions, revisions.dropFirst()).allSatisfy { $0 <= $1 }, "events in revision order")
        #expect(Set(revisions).count == writers * perWriter, "every revision, once (a txn's two events share one)")
        #expect(cluster.isRunning(watched))
    }

    /// A watch whose consumer stops (its task cancelled) must end on the node too: the client's
    /// connection is shared and stays open, so without a cancel request the node would keep
    /// every abandoned watcher (and send it events) for as long as the client lives.
    @Test("a watch whose consumer stops is cancelled on the node, though the connection stays open")
    func abandonedWatchIsCancelled() async throws {
        let metricsPort = LoopbackPorts.freeBase(count: 1)
        let cluster = try Cluster(size: 1, nodeArgs: { _ in ["--listen-metrics", "127.0.0.1:\(metricsPort)"] })
        let client = cluster.client()
        defer { Task { await client.close() } }
        _ = try await client.put(b("warmup"), b("1"))
        let consumers = (0..<5).map { i in
            Task { do { for try await _ in client.watch(b("abandoned/\(i)")) {} } catch {} }
        }
        let watching = try await eventuallyAsync(tries: 30) { nodeWatchers(metricsPort: metricsPort) == 5 }
        #expect(watching, "\(nodeWatchers(metricsPort: metricsPort) ?? -1)")
        for c in consumers { c.cancel() }
        let dropped = try await eventuallyAsync(tries: 30) { nodeWatchers(metricsPort: metricsPort) == 0 }
        #expect(dropped, "\(nodeWatchers(metricsPort: metricsPort) ?? -1) watchers left on the node")
        _ = try await client.put(b("abandoned/0"), b("still served"))
    }
}
}
