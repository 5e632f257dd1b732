import Logging
import SynodCore
import SynodLMDB
import SynodStateMachine

/// Plugs Synod's KV state machine into the node.
public final class KVNodeStateMachine: NodeStateMachine {
    public let kv: KVStateMachine
    let store: LMDBStore
    /// Snapshot chunk size when serialising the state.
    static let snapshotChunkBytes = 256 * 1024

    public init(store: LMDBStore) throws {
        self.store = store
        kv = try KVStateMachine(store: store)
    }

    /// The tables an LMDB store must hold for this state machine.
    public static var tables: [StateTable] { KVStateMachine.tables }

    public func apply(_ entries: [Entry]) throws -> [(index: LogIndex, response: [UInt8])] {
        try kv.apply(entries).compactMap { a in a.response.map { (a.index, $0.encode()) } }
    }

    public func query(_ request: [UInt8]) -> [UInt8] {
        do {
            return try kv.range(try RangeRequest.decode(request)).encode()
        } catch let e as DecodeError {
            return Response.failure(.invalidRequest("query: \(e)")).encode()
        } catch let e as KVError {
            return Response.failure(e).encode()
        } catch {
            return Response.failure(.invalidRequest("\(error)")).encode()
        }
    }

    public var appliedIndex: LogIndex { (try? kv.appliedIndex()) ?? .zero }
    public var revision: Int64 { kv.revision }

    public func snapshot() throws -> [UInt8] {
        var chunks: [SnapshotChunk] = []
        _ = try store.streamSnapshot(chunkBytesMax: Self.snapshotChunkBytes) { chunks.append($0) }
        return SnapshotCodec.encode(chunks)
    }

    public func install(_ data: [UInt8], at index: LogIndex) throws {
        let chunks = try SnapshotCodec.decode(data)
        try store.installSnapshot(appliedIndex: index, chunks: chunks)
        try kv.reload()
    }
}

extension SynodNode {
    /// Starts a node serving Synod's key-value store (what `synod serve` runs).
    public static func start(_ configuration: NodeConfiguration, logger: Logger) async throws -> SynodNode {
        try await start(configuration, stateMachine: { try KVNodeStateMachine(store: $0) }, tables: KVNodeStateMachine.tables, logger: logger)
    }
}
