import SynodTransport
import SynodWire

extension SynodClient {
    /// The KV hash of the node at `endpoint` at `revision` (0: its current revision), as
    /// etcd's `endpoint hashkv` (no retries, no redirects: every node answers for itself).
    /// A revision the node compacted or has not applied is `ClientError.rejected(.badRequest, ...)`.
    public func hashKV(of endpoint: HostPort, revision: Int64 = 0) async throws -> KVHash {
        let conn = try await connection(to: endpoint)
        let response = try await withTimeout(conn.request(.hashKV(revision: revision)), configuration.requestTimeoutMillis)
        guard response.status == .ok else { throw ClientError.rejected(status: response.status, message: response.message) }
        do { return try KVHash.decode(response.body) } catch { throw ClientError.badResponse("\(error)") }
    }
}
