import SynodTransport
import SynodWire

extension SynodClient {
    /// Compacts the storage file of the node at `endpoint` while it runs (etcd's defragment):
    /// the node is blocked meanwhile, so defragment members one at a time. `busy` while the node
    /// reads a snapshot, backup or hash in the background (retry); `badRequest` from a node that
    /// predates it.
    public func defragment(_ endpoint: HostPort, timeoutMillis: Int64 = 120_000) async throws -> DefragResult {
        let conn = try await connection(to: endpoint)
        let response = try await withTimeout(conn.request(.defragment), timeoutMillis)
        guard response.status == .ok else { throw ClientError.rejected(status: response.status, message: response.message) }
        do { return try DefragResult.decode(response.body) } catch { throw ClientError.badResponse("\(error)") }
    }
}
