import NIOCore
import SynodCore
import SynodTransport
import SynodWire

extension SynodClient {
    /// Fetches a consistent snapshot of the state from one node (the leader if known).
    public func snapshot() async throws -> SnapshotFile {
        let endpoint = preferredEndpoint()
        let conn = try await connection(to: endpoint)
        let (responses, feed) = AsyncStream<ClientResponse>.makeStream()
        let id = conn.stream(.snapshot) { r in
            feed.yield(r)
            if r.status != .ok && r.status != .snapshotChunk { feed.finish() }
        }
        defer { conn.endStream(id) }
        var header: (LogIndex, Int64)?
        var chunks: [SnapshotChunk] = []
        for await r in responses {
            switch r.status {
            case .ok:
                var reader = ByteReader(r.body)
                header = (LogIndex(try reader.u64("applied index")), Int64(bitPattern: try reader.u64("revision")))
            case .snapshotChunk:
                let decoded = try SnapshotCodec.decode(r.body)
                chunks += decoded
                if decoded.last?.isLast == true, let header {
                    return SnapshotFile(appliedIndex: header.0, revision: header.1, chunks: chunks)
                }
            default:
                throw ClientError.rejected(status: r.status, message: r.message)
            }
        }
        throw ClientError.connectionLost
    }
}
