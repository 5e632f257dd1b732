import Foundation
import SynodClient
import SynodCore
import SynodStateMachine
import SynodTestSupport
import Testing

/// Everything a watch stream delivered, in order, shared with the task that reads it.
final class UpdateLog: @unchecked Sendable {
    private let lock = NSLock()
    private var updates: [WatchUpdate] = []
    func append(_ u: WatchUpdate) { lock.withLock { updates.append(u) } }
    var all: [WatchUpdate] { lock.withLock { updates } }
    var progress: [Int64] { all.compactMap { if case let .progress(r) = $0 { r } else { nil } } }
    var events: [WatchEvent] { all.compactMap { if case let .event(e) = $0 { e } else { nil } } }
}

extension RealProcessTests {
@Suite("Watch progress notifications on a real cluster")
struct WatchProgressTests {
    static func collect(_ stream: AsyncThrowingStream<WatchUpdate, any Error>, into log: UpdateLog) -> Task<Void, Never> {
        Task { do { for try await u in stream { log.append(u) } } catch {} }
    }

    /// A watch on a key nobody writes, while other keys are written: with progress
    /// notifications (interval 100 ms) it learns it is current to the last write's revision,
    /// with no event; without them it hears nothing. A write to the key then arrives as an
    /// event after every progress revision sent before it.
    @Test("a quiet watch with progress notifications learns the revision it is current to; one without hears nothing")
    func quietWatchLearnsItsRevision() async throws {
        let cluster = try Cluster(size: 3, extraArgs: ["--watch-progress-notify-interval-ms", "100"])
        let client = cluster.client()
        defer { Task { await client.close() } }
        _ = try await client.put(b("warmup"), b("1"))
        let withProgress = UpdateLog(), without = UpdateLog()
        let a = Self.collect(client.watchUpdates(b("quiet"), progressNotify: true), into: withProgress)
        let c = Self.collect(client.watchUpdates(b("quiet"), progressNotify: false), into: without)
        defer { a.cancel(); c.cancel() }
        var last: Int64 = 0
        for i in 0..<20 { last = try await client.put(b("other-\(i)"), b("\(i)")).revision }
        let current = try await eventuallyAsync(tries: 30) { withProgress.progress.last.map { $0 >= last } ?? false }
        #expect(current, "progress never reached revision \(last): \(withProgress.progress)")
        #expect(withProgress.events.isEmpty)
        #expect(withProgress.progress == withProgress.progress.sorted(), "progress went back: \(withProgress.progress)")
        let write = try await client.put(b("quiet"), b("now")).revision
        let arrived = try await eventuallyAsync(tries: 30) { !withProgress.events.isEmpty && !without.events.isEmpty }
        #expect(arrived)
        #expect(withProgress.events.first?.revision == write && without.events.first?.revision == write)
        let before = withProgress.all.prefix { if case .event = $0 { false } else { true } }
        #expect(before.allSatisfy { if case let .progress(r) = $0 { r < write } else { false } })
        #expect(without.progress.isEmpty, "a watch that did not ask got progress: \(without.progress)")
    }

    /// The promise a progress revision makes — every event of the range up to it was already
    /// delivered — checked under load: writers put inside and outside a watched prefix (and
    /// two-key transactions) while the node serving the watch is killed twice; at the end the
    /// prefix's full history (a second watch from revision 1) must hold, for each progress R,
    /// exactly the events the first watch delivered before R.
    @Test("under writes and kills of the serving node, each progress revision covers exactly the events delivered before it")
    func progressCoversWhatWasDelivered() async throws {
        let cluster = try Cluster(size: 3, extraArgs: ["--watch-progress-notify-interval-ms", "10"])
        let client = cluster.client()
        defer { Task { await client.close() } }
        _ = try await client.put(b("warmup"), b("1"))
        let node = 1
        let pinned = cluster.client(only: node)
        defer { Task { await pinned.close() } }
        // History to replay first (10,000 events of 1 kB, over ten passes or more): while a watch
        // replays it is behind the store, and a progress naming the store's revision then would
        // promise events not yet sent.
        let big = [UInt8](repeating: 0x61, count: 1_000)
        for t in 0..<100 {
            _ = try await client.txn(Txn(compares: [], success: (0..<100).map { .put(key: b("p/old-\(t)-\($0)"), value: big, lease: nil, prevKV: false) }))
        }
        let log = UpdateLog()
        let watch = Self.collect(pinned.watchUpdates(b("p/"), rangeEnd: KeyRange.prefixEnd(b("p/")), fromRevision: 1, progressNotify: true), into: log)
        defer { watch.cancel() }
        var last: Int64 = 0, lastInPrefix: Int64 = 0
        for i in 0..<150 {
            if i % 3 == 0 {
                last = try await client.txn(Txn(compares: [], success: [.put(key: b("p/\(i % 5)"), value: b("\(i)"), lease: nil, prevKV: false),
                                                                     .put(key: b("q/\(i % 5)"), value: b("\(i)"), lease: nil, prevKV: false)])).revision
                lastInPrefix = last
            } else {
                last = try await client.put(b(i % 3 == 1 ? "p/\(i % 7)" : "q/\(i % 7)"), b("\(i)")).revision
                if i % 3 == 1 { lastInPrefix = last }
            }
            if i == 50 || i == 100 {
                cluster.kill(node)
                try await Task.sleep(nanoseconds: 150_000_000)
                try cluster.start(node)
            }
            if i % 10 == 0 { try await Task.sleep(nanoseconds: 40_000_000) }
        }
        let caughtUp = try await eventuallyAsync(tries: 100) { (log.progress.last ?? 0) >= last }
        #expect(caughtUp, "progress never reached \(last): last \(log.progress.last ?? -1)")
        // The reference: the prefix's whole history, from a plain watch.
        var history: [WatchEvent] = []
        for try await e in client.watch(b("p/"), rangeEnd: KeyRange.prefixEnd(b("p/")), fromRevision: 1) {
            history.append(e)
            if e.revision >= lastInPrefix { break }
        }
        #expect(log.progress.count >= 5, "progress notifications: \(log.progress)")
        var delivered: [WatchEvent] = []
        for u in log.all {
            switch u {
            case let .event(e): delivered.append(e)
            case let .progress(r):
                let owed = history.filter { $0.revision <= r }
                let covered = delivered == owed
                #expect(covered, "progress \(r) after \(delivered.count) events (last revision \(delivered.last?.revision ?? 0)); history holds \(owed.count) up to it")
                if !covered { return }
            }
        }
    }

    /// Asks for progress until the watch is connected (`connectionLost` until then).
    static func requestProgress(_ watch: SynodWatch) async throws {
        for attempt in 0..<50 {
            do { return try await watch.requestProgress() } catch ClientError.connectionLost where attempt < 49 {
                try await Task.sleep(nanoseconds: 50_000_000)
            }
        }
    }

    /// etcd's RequestProgress, with periodic notifications 10 minutes apart (never, here): a
    /// watch that keeps up learns at once the revision it is current to; a watch still replaying
    /// 10,000 events of history learns it only once it has delivered all of them, and the
    /// revision then covers exactly what was delivered; progress for a watch that never asked
    /// for notifications is fine too.
    @Test("on request, a watch that keeps up learns its revision at once; one replaying history learns it after the history")
    func requestedProgress() async throws {
        let cluster = try Cluster(size: 3, extraArgs: ["--watch-progress-notify-interval-ms", "600000"])
        let client = cluster.client()
        defer { Task { await client.close() } }
        var last: Int64 = 0
        for i in 0..<20 { last = try await client.put(b("other-\(i)"), b("\(i)")).revision }
        let quiet = client.openWatch(b("quiet"))
        let quietLog = UpdateLog()
        let a = Task { do { for try await u in quiet { quietLog.append(u) } } catch {} }
        defer { a.cancel() }
        try await Self.requestProgress(quiet)
        let learned = try await eventuallyAsync(tries: 20) { !quietLog.progress.isEmpty }
        #expect(learned && quietLog.progress == [last], "progress \(quietLog.progress), last write \(last)")
        last = try await client.put(b("other-x"), b("x")).revision
        try await quiet.requestProgress()
        let again = try await eventuallyAsync(tries: 20) { quietLog.progress.count == 2 }
        #expect(again && quietLog.progress.last == last, "progress \(quietLog.progress), last write \(last)")
        #expect(quietLog.events.isEmpty)

        // History to replay (10,000 events of 1 kB: ten batches, over ten passes or more).
        let big = [UInt8](repeating: 0x61, count: 1_000)
        for t in 0..<100 {
            last = try await client.txn(Txn(compares: [], success: (0..<100).map { .put(key: b("p/\(t)-\($0)"), value: big, lease: nil, prevKV: false) })).revision
        }
        let replaying = client.openWatch(b("p/"), rangeEnd: KeyRange.prefixEnd(b("p/")), fromRevision: 1)
        let log = UpdateLog()
        let c = Task { do { for try await u in replaying { log.append(u) } } catch {} }
        defer { c.cancel() }
        try await Self.requestProgress(replaying)
        let caughtUp = try await eventuallyAsync(tries: 100) { !log.progress.isEmpty }
        #expect(caughtUp, "no progress after \(log.events.count) events")
        let beforeProgress = log.all.prefix { if case .event = $0 { true } else { false } }.count
        #expect(log.progress.first == last, "progress \(log.progress), last write \(last)")
        #expect(beforeProgress == 10_000, "progress came after \(beforeProgress) of 10,000 events")
    }

    /// The CLI: `synod watch --request-progress` prints the revision it is current to at once,
    /// with no periodic notifications configured.
    @Test("synod watch --request-progress prints PROGRESS REV at once, then the event")
    func cliRequestsProgress() async throws {
        let cluster = try Cluster(size: 3, extraArgs: ["--watch-progress-notify-interval-ms", "600000"])
        let client = cluster.client()
        defer { Task { await client.close() } }
        let rev = try await client.put(b("other"), b("1")).revision
        let endpoints = cluster.endpointsText
        let cli = Task.detached { try runSynod(["watch", "cli-key", "--request-progress", "--count", "1", "--endpoints", endpoints]) }
        try await Task.sleep(nanoseconds: 800_000_000)
        _ = try await client.put(b("cli-key"), b("v"))
        let (status, out, err) = try await cli.value
        #expect(status == 0, "\(err)")
        let lines = out.split(separator: "\n").map(String.init)
        #expect(lines == ["PROGRESS \(rev)", "PUT", "cli-key", "v"], "\(lines)")
    }

    /// The CLI: `synod watch --progress-notify` prints PROGRESS lines until the key changes.
    @Test("synod watch --progress-notify prints PROGRESS REV lines, then the event")
    func cliPrintsProgress() async throws {
        let cluster = try Cluster(size: 3, extraArgs: ["--watch-progress-notify-interval-ms", "100"])
        let client = cluster.client()
        defer { Task { await client.close() } }
        let rev = try await client.put(b("other"), b("1")).revision
        let endpoints = cluster.endpointsText
        let cli = Task.detached { try runSynod(["watch", "cli-key", "--progress-notify", "--count", "1", "--endpoints", endpoints]) }
        try await Task.sleep(nanoseconds: 800_000_000)
        _ = try await client.put(b("cli-key"), b("v"))
        let (status, out, err) = try await cli.value
        #expect(status == 0, "\(err)")
        let lines = out.split(separator: "\n").map(String.init)
        #expect(lines.contains("PROGRESS \(rev)"), "\(lines)")
        #expect(lines.suffix(3) == ["PUT", "cli-key", "v"], "\(lines)")
    }
}
}
