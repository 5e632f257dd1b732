import NIOCore
import SynodCore
import SynodStateMachine
import SynodTransport
import SynodWire

extension SynodClient {
    /// Watches `[key, rangeEnd)` (etcd range rules; `rangeEnd` empty = the key alone) from
    /// `fromRevision` (0: changes after now). Events arrive in revision order, each exactly once:
    /// if the serving node goes away the watch resumes on another node from the next revision.
    /// Ends with `ClientError.kv(.compacted)` when the start revision was compacted.
    public func watch(_ key: [UInt8], rangeEnd: [UInt8] = [], fromRevision: Int64 = 0, prevKV: Bool = false) -> AsyncThrowingStream<WatchEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream<WatchEvent, any Error>.makeStream()
        let task = Task {
            var next = fromRevision
            var target = preferredEndpoint()
            var failures = 0
            while !Task.isCancelled {
                do {
                    let conn = try await connection(to: target)
                    let (responses, feed) = AsyncStream<ClientResponse>.makeStream()
                    let request = WatchRequest(key: key, rangeEnd: rangeEnd, startRevision: next, prevKV: prevKV)
                    let id = conn.stream(.watch(request.encode())) { r in
                        feed.yield(r)
                        if r.status == .watchEnded || r.status == .shuttingDown { feed.finish() }
                    }
                    defer { conn.endStream(id) }
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
                                continuation.yield(e)
                                next = e.revision + 1
                            }
                        case .watchEnded:
                            if r.message.contains("compacted") || r.message.contains("revision") {
                                continuation.finish(throwing: ClientError.rejected(status: .watchEnded, message: r.message))
                            } else {
                                continuation.finish()
                            }
                            return
                        default:
                            break // connection lost or node shutting down: resume elsewhere
                        }
                    }
                    if Task.isCancelled { break }
                } catch {
                    failures += 1
                    if failures > 50 {
                        continuation.finish(throwing: error)
                        return
                    }
                }
                drop(target)
                target = nextEndpoint(after: target)
                try? await Task.sleep(nanoseconds: 100_000_000)
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }
}
