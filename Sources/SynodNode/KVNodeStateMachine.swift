import Logging
import SynodCore
import SynodLMDB
import SynodStateMachine
import SynodWire

/// The node's view of Synod's KV state machine: apply, queries, snapshots.
/// Called on the node loop only.
public final class KVNodeStateMachine {
    public let kv: KVStateMachine
    let store: LMDBStore
    /// The state store the KV machine writes through: bound to the node's per-Ready transaction
    /// so log persistence and apply commit together.
    let combined: LMDBCombinedStateStore
    /// Snapshot chunk size when serialising the state.
    static let snapshotChunkBytes = 256 * 1024

    public init(store: LMDBStore) throws {
        self.store = store
        combined = LMDBCombinedStateStore(store)
        kv = try KVStateMachine(store: combined)
    }

    /// The tables an LMDB store must hold for this state machine.
    public static var tables: [StateTable] { KVStateMachine.tables }

    /// Applies committed entries in one atomic store write (see `KVStateMachine.apply`).
    func apply(_ entries: [Entry]) throws -> [AppliedEntry] { try kv.apply(entries) }

    /// Answers a range query from the applied state.
    func range(_ request: RangeRequest) -> Response {
        do { return try kv.range(request) } catch let e as KVError { return .failure(e) } catch { return .failure(.invalidRequest("\(error)")) }
    }

    var appliedIndex: LogIndex { (try? kv.appliedIndex()) ?? .zero }
    var revision: Int64 { kv.revision }

    /// Serialises the committed state from one consistent LMDB read transaction, and says which
    /// applied index it holds. Safe on any thread: the node builds snapshots on a background
    /// thread while it keeps writing (LMDB readers never block the writer). `sealed`: with the
    /// SHA-256 seal a follower checks (`SnapshotSeal`) — Raft snapshots; BFT checkpoint state is
    /// digested by the protocol itself.
    static func buildSnapshot(_ store: LMDBStore, sealed: Bool = true) throws -> (index: LogIndex, data: [UInt8]) {
        let (manifest, chunks) = try readSnapshot(store, chunkBytesMax: Self.snapshotChunkBytes)
        let body = SnapshotCodec.encode(chunks)
        return (manifest.appliedIndex, sealed ? SnapshotSeal.seal(body) : body)
    }

    /// Every state table as chunks, from one read transaction, with its manifest.
    static func readSnapshot(_ store: LMDBStore, chunkBytesMax: Int) throws -> (SnapshotManifest, [SnapshotChunk]) {
        var chunks: [SnapshotChunk] = []
        let manifest = try store.streamSnapshot(chunkBytesMax: chunkBytesMax) { chunks.append($0) }
        return (manifest, chunks)
    }

    /// Replaces the log and all state with a leader's snapshot, in one transaction.
    func install(_ data: [UInt8], checkpoint: Checkpoint) throws {
        let chunks = try SnapshotCodec.decode(try Self.unseal(data))
        try store.installSnapshot(checkpoint, chunks: chunks)
        try kv.reload()
        try checkClusterVersion()
    }

    /// A snapshot from a cluster past this build's rules: stop, as applying that version's
    /// entry would (`ClusterVersionUnsupported`); at restart the start-up check refuses too.
    func checkClusterVersion() throws {
        guard kv.clusterVersion > kv.supportedClusterVersion else { return }
        throw ClusterVersionUnsupported(clusterVersion: kv.clusterVersion, supported: kv.supportedClusterVersion)
    }

    /// The body of sealed snapshot bytes (unsealed ones as they are). The core checked the seal
    /// already (`RaftCore.snapshotCheck`); this is the last line, for bytes from elsewhere.
    static func unseal(_ data: [UInt8]) throws -> [UInt8] {
        guard let body = SnapshotSeal.open(data) else { throw StoreError.corrupt("snapshot bytes do not match their SHA-256") }
        return body
    }

    /// Legacy: replaces the state (not the log) with snapshot bytes saved by format-1 nodes.
    func install(_ data: [UInt8], at index: LogIndex) throws {
        let chunks = try SnapshotCodec.decode(try Self.unseal(data))
        try store.installSnapshot(appliedIndex: index, chunks: chunks)
        try kv.reload()
        try checkClusterVersion()
    }
}

extension SynodNode {
    /// Starts a node serving Synod's key-value store (what `synod serve` runs).
    public static func start(_ configuration: NodeConfiguration, logger: Logger = Logger(label: "synod")) async throws -> SynodNode {
        try configuration.validate()
        var options = LMDBOptions()
        options.unsafeNoSync = configuration.unsafeNoSync
        options.mapSizeBytes = configuration.mapSizeMiB << 20
        // Before the store opens, and until shutdown: one process per member directory.
        let lock = try DataDirectoryLock.acquire(configuration.dataDirectory)
        let store = try LMDBStore(directory: configuration.dataDirectory, tables: KVNodeStateMachine.tables, options: options)
        let stateMachine = try KVNodeStateMachine(store: store)
        stateMachine.kv.testingCorruptPuts = configuration.testingCorruptPuts
        stateMachine.kv.testingApplyRetriesAgain = configuration.testingApplyRetriesAgain
        stateMachine.kv.supportedClusterVersion = configuration.supportedClusterVersion
        // A store the cluster moved past this build's rules: applying anything more would use
        // rules this build does not have (a downgrade after the cluster version moved).
        do { try stateMachine.checkClusterVersion() } catch {
            lock.release()
            throw error
        }
        let node = try SynodNode(configuration: configuration, store: store, stateMachine: stateMachine, logger: logger)
        node.dataLock = lock
        do { try await node.bind() } catch {
            lock.release()   // this process may try again (an embedding program), not only a new one
            throw error
        }
        node.startThread()
        node.startCorruptionChecks()
        return node
    }
}
