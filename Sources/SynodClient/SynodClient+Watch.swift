import NIOConcurrencyHelpers
import NIOCore
import SynodCore
import SynodStateMachine
import SynodTransport
import SynodWire

/// What a watch stream carries (`SynodClient.watchUpdates`).
public enum WatchUpdate: Sendable, Hashable {
    /// One change, in revision order, each exactly once.
    case event(WatchEvent)
    /// Every change in the watch's range up to and including `revision` has been delivered
    /// (etcd's progress notification): a cache fed by this watch is current to `revision`.
    case progress(revision: Int64)
}

extension SynodClient {
    /// Watches `[key, rangeEnd)` (etcd range rules; `rangeEnd` empty = the key alone) from
    /// `fromRevision` (0: changes after now). Events arrive in revision order, each exactly once:
    /// if the serving node goes away the watch resumes on another node from the next revision.
    /// Ends with `ClientError.kv(.compacted)` when the start revision was compacted.
    public func watch(_ key: [UInt8], rangeEnd: [UInt8] = [], fromRevision: Int64 = 0, prevKV: Bool = false) -> AsyncThrowingStream<WatchEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream<WatchEvent, any Error>.makeStream()
        let task = Task {
            await runWatch(key, rangeEnd: rangeEnd, fromRevision: fromRevision, prevKV: prevKV, progressNotify: false,
                           deliver: { if case let .event(e) = $0 { continuation.yield(e) } },
                           finish: { continuation.finish(throwing: $0) })
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    /// `watch`, with progress notifications when `progressNotify` is set: while nothing in the
    /// range changes, the serving node sends `.progress(revision:)` once per its
    /// `--watch-progress-notify-interval-ms` (10 s by default). A progress revision also moves
    /// where the watch resumes after a failover, so the next node replays less history. A node
    /// older than progress notifications refuses such a watch (`ClientError.rejected`).
    public func watchUpdates(_ key: [UInt8], rangeEnd: [UInt8] = [], fromRevision: Int64 = 0, prevKV: Bool = false,
                             progressNotify: Bool) -> AsyncThrowingStream<WatchUpdate, any Error> {
        let (stream, continuation) = AsyncThrowingStream<WatchUpdate, any Error>.makeStream()
        let task = Task {
            await runWatch(key, rangeEnd: rangeEnd, fromRevision: fromRevision, prevKV: prevKV, progressNotify: progressNotify,
                           deliver: { continuation.yield($0) }, finish: { continuation.finish(throwing: $0) })
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    /// `watchUpdates` with a handle: iterate the returned `SynodWatch` for the same updates, and
    /// call its `requestProgress()` to learn at once how far the watch is current (etcd's
    /// `RequestProgress`), with or without periodic notifications (`progressNotify`).
    public func openWatch(_ key: [UInt8], rangeEnd: [UInt8] = [], fromRevision: Int64 = 0, prevKV: Bool = false,
                          progressNotify: Bool = false) -> SynodWatch {
        let (stream, continuation) = AsyncThrowingStream<WatchUpdate, any Error>.makeStream()
        let serving = NIOLockedValueBox<SynodWatch.Serving?>(nil)
        let task = Task {
            await runWatch(key, rangeEnd: rangeEnd, fromRevision: fromRevision, prevKV: prevKV, progressNotify: progressNotify,
                           serving: serving, deliver: { continuation.yield($0) }, finish: { continuation.finish(throwing: $0) })
        }
        continuation.onTermination = { _ in task.cancel() }
        return SynodWatch(updates: stream, serving: serving, client: self)
    }

    /// The watch loop behind `watch`, `watchUpdates` and `openWatch`: hands each update to
    /// `deliver` in order and calls `finish` once (nil: cancelled or ended by the node). While a
    /// node serves the watch, `serving` names its connection and the watch's request id.
    private func runWatch(_ key: [UInt8], rangeEnd: [UInt8], fromRevision: Int64, prevKV: Bool, progressNotify: Bool,
                          serving: NIOLockedValueBox<SynodWatch.Serving?>? = nil,
                          deliver: (WatchUpdate) -> Void, finish: ((any Error)?) -> Void) async {
        var next = fromRevision
        var target = preferredEndpoint()
        var failures = 0
        while !Task.isCancelled {
            do {
                let conn = try await connection(to: target)
                let (responses, feed) = AsyncStream<ClientResponse>.makeStream()
                let request = WatchRequest(key: key, rangeEnd: rangeEnd, startRevision: next, prevKV: prevKV, progressNotify: progressNotify)
                let id = conn.stream(.watch(request.encode())) { r in
                    feed.yield(r)
                    if r.status == .watchEnded || r.status == .shuttingDown { feed.finish() }
                }
                serving?.withLockedValue { $0 = SynodWatch.Serving(connection: conn, id: id) }
                var endedByNode = false
                defer {
                    serving?.withLockedValue { $0 = nil }
                    conn.endStream(id)
                    // A watch its consumer stopped (cancelled, or the stream dropped) is
                    // cancelled on the node too: the connection is shared and lives on.
                    if !endedByNode && conn.isActive { conn.post(.cancelWatch(id: id)) }
                }
                for await r in responses {
                    if Task.isCancelled { break }
                    switch r.status {
                    case .ok:
                        failures = 0
                        if next == 0, r.body.count == 8 { next = Int64(bitPattern: r.body.reduce(0) { ($0 << 8) | UInt64($1) }) }
                    case .watchEvents:
                        // Skip only what an earlier connection delivered: compare with
                        // where this batch starts, not with `next` as it moves, or every
                        // change after the first of a multi-change revision is lost. (A
                        // node never splits a revision across batches: SlowWatcherTests.)
                        let from = next
                        for e in try WatchEvents.decode(r.body) where e.revision >= from {
                            deliver(.event(e))
                            next = e.revision + 1
                        }
                    case .watchProgress:
                        var reader = ByteReader(r.body)
                        let revision = Int64(bitPattern: try reader.u64("progress revision"))
                        try reader.expectEnd()
                        // A node that knows less than an earlier one (a lagging follower
                        // after a failover) may name an older revision: progress never goes back.
                        if revision + 1 >= next {
                            next = revision + 1
                            deliver(.progress(revision: revision))
                        }
                    case .badRequest:
                        endedByNode = true
                        finish(ClientError.rejected(status: r.status, message: r.message))
                        return
                    case .permissionDenied:
                        endedByNode = true
                        finish(ClientError.kv(.permissionDenied(r.message)))
                        return
                    case .watchEnded:
                        endedByNode = true
                        if r.message.contains("compacted") || r.message.contains("revision") {
                            finish(ClientError.rejected(status: .watchEnded, message: r.message))
                        } else {
                            finish(nil)
                        }
                        return
                    default:
                        break // connection lost or node shutting down: resume elsewhere
                    }
                }
                if Task.isCancelled { break }
            } catch {
                failures += 1
                if failures > 50 || (error as? ClientError)?.isRetryable == false {
                    finish(error)
                    return
                }
            }
            drop(target)
            target = nextEndpoint(after: target)
            try? await Task.sleep(nanoseconds: 100_000_000)
        }
        finish(nil)
    }
}

/// A watch opened with `SynodClient.openWatch`: an `AsyncSequence` of its updates (as
/// `watchUpdates` yields them) that can also ask for progress on demand.
public struct SynodWatch: AsyncSequence, Sendable {
    public typealias Element = WatchUpdate
    public typealias AsyncIterator = AsyncThrowingStream<WatchUpdate, any Error>.AsyncIterator

    /// The node connection serving the watch right now, and the watch's request id on it.
    struct Serving: Sendable {
        var connection: Connection
        var id: UInt64
    }

    let updates: AsyncThrowingStream<WatchUpdate, any Error>
    let serving: NIOLockedValueBox<Serving?>
    let client: SynodClient

    public func makeAsyncIterator() -> AsyncIterator { updates.makeAsyncIterator() }

    /// etcd's `RequestProgress`: asks the node serving the watch for a progress notification
    /// now. It arrives in the sequence as `.progress(revision:)` as soon as the watch has caught
    /// up (at once if it keeps up; after its history if it is replaying) and means every change
    /// in the range up to that revision has been delivered. The revision is the serving node's:
    /// to wait for a revision read elsewhere, ask again until it is reached. The request lives
    /// on the serving node: if the watch moves to another node before the notification comes,
    /// ask again (wait with a timeout). Throws
    /// `ClientError.connectionLost` while the watch is moving to another node (retry), and
    /// `ClientError.rejected` from a node that predates it.
    public func requestProgress() async throws {
        guard let current = serving.withLockedValue({ $0 }) else { throw ClientError.connectionLost }
        let r = try await client.withTimeout(current.connection.request(.requestWatchProgress(id: current.id)),
                                             client.configuration.requestTimeoutMillis)
        guard r.status == .ok else { throw ClientError.rejected(status: r.status, message: r.message) }
    }
}
