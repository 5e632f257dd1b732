import NIOCore
import SynodCore
import SynodTransport
import SynodWire

extension SynodClient {
    /// Fetches a consistent snapshot of the state from one node (the leader if known). The node
    /// announces the snapshot's SHA-256 first; bytes that arrive otherwise are
    /// `SnapshotFileError.streamMismatch` (a node from before the digest announces none).
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
        var announced: [UInt8]?
        var digest: SnapshotFile.Digest?
        var chunks: [SnapshotChunk] = []
        for await r in responses {
            switch r.status {
            case .ok:
                var reader = ByteReader(r.body)
                let h = (LogIndex(try reader.u64("applied index")), Int64(bitPattern: try reader.u64("revision")))
                header = h
                if reader.remaining == 32 { announced = try reader.raw(32, "snapshot sha256") }
                digest = SnapshotFile.Digest(appliedIndex: h.0, revision: h.1)
            case .snapshotChunk:
                digest?.update(r.body)
                let decoded = try SnapshotCodec.decode(r.body)
                chunks += decoded
                if decoded.last?.isLast == true, let header {
                    if let announced, let received = digest?.finalize(), received != announced {
                        throw SnapshotFileError.streamMismatch(announced: SnapshotFile.hex(announced), received: SnapshotFile.hex(received))
                    }
                    return SnapshotFile(appliedIndex: header.0, revision: header.1, chunks: chunks)
                }
            default:
                throw ClientError.rejected(status: r.status, message: r.message)
            }
        }
        throw ClientError.connectionLost
    }
}
