import SynodCore
import SynodStateMachine

/// One simulated node's copy of Synod's real state machine, fed the mesh clients' entries of the
/// replicated log (docs/SIMULATOR.md, "Mesh commands under faults"). The simulator's own tiny KV
/// machine takes the other entries; the two never see each other's payloads
/// (`isEnvelope`). Volatile, like the tiny machine: a restart rebuilds it from the node's
/// snapshot and the log the core hands back.
final class MeshReplica {
    let store: MemoryStore
    let sm: SynodStateMachine.KVStateMachine

    /// One applied mesh-client entry: its session and what the state machine answered.
    struct Outcome {
        var index: LogIndex
        var session: ClientSession?
        var response: Response
        /// Mesh invariants broken right after this entry, if it was a mesh command that the state
        /// machine carried out (a hand delete of a mesh record may leave the mesh inconsistent
        /// until the next mesh command mends it: docs/MESH.md).
        var violations: [String]
    }

    init(bugs: MeshBugs) {
        store = MemoryStore(tables: SynodStateMachine.KVStateMachine.tables)
        sm = try! SynodStateMachine.KVStateMachine(store: store)
        sm.testingMeshKeepsTasksOfFailed = bugs.contains(.keepTasksOfFailed)
    }

    /// Restores the state a snapshot recorded (`snapshotBytes`), as of log index `index`.
    convenience init(snapshot bytes: [UInt8], at index: LogIndex, bugs: MeshBugs) throws {
        self.init(bugs: bugs)
        var r = ByteReader(bytes)
        let count = Int(try r.u32("mesh snapshot chunks"))
        guard count <= 1 << 16 else { throw DecodeError.lengthTooLarge(what: "mesh snapshot chunks", length: count, limit: 1 << 16) }
        var chunks: [SnapshotChunk] = []
        for _ in 0..<count {
            let sequence = try r.u32("chunk sequence")
            let records = try r.lengthPrefixed("chunk records", limit: 1 << 24)
            chunks.append(SnapshotChunk(sequence: sequence, records: records, isLast: try r.u8("last chunk") == 1))
        }
        try r.expectEnd()
        try store.installSnapshot(appliedIndex: index, chunks: chunks)
        try sm.reload()
    }

    /// True for payloads in Synod's command envelope (mesh clients), false for the simulator's
    /// KV commands: those start with a client id below 2^56, so their first byte is 0.
    static func isEnvelope(_ payload: [UInt8]) -> Bool { payload.first == CommandEnvelope.encodingVersion || payload.first == CommandEnvelope.stampedEncodingVersion }

    /// Applies the envelope entries among `entries` (committed, ascending) one at a time, and
    /// checks the mesh invariants after each mesh command the state machine carried out — not
    /// after a retry its session table answered, which says nothing about the state now.
    func apply(_ entries: [Entry]) throws -> [Outcome] {
        var out: [Outcome] = []
        for entry in entries where entry.kind == .command && Self.isEnvelope(entry.payload) {
            let session = (try? CommandEnvelope.decode(entry.payload))?.session
            let retry = try session.map { try sm.cachedResponse(client: $0.clientID, sequence: $0.sequence) != nil } ?? false
            guard let response = try sm.apply([entry]).first?.response else { continue }
            var broken: [String] = []
            if case .mesh = response, !retry { broken = try view().violations() }
            out.append(Outcome(index: entry.index, session: session, response: response, violations: broken))
        }
        return out
    }

    /// Every record under the mesh prefix, ascending by key.
    func records() throws -> [KeyValue] {
        guard case let .range(r) = try sm.range(RangeRequest.prefix(MeshKeys.prefix)) else { return [] }
        return r.kvs
    }

    func view() throws -> MeshView { try MeshView.decode(try records()) }

    /// The whole state (every table, sessions included), for the node's snapshot.
    func snapshotBytes() throws -> [UInt8] {
        var chunks: [SnapshotChunk] = []
        _ = try store.streamSnapshot(chunkBytesMax: 1 << 20) { chunks.append($0) }
        var w = ByteWriter()
        w.u32(UInt32(chunks.count))
        for c in chunks {
            w.u32(c.sequence)
            w.lengthPrefixed(c.records)
            w.u8(c.isLast ? 1 : 0)
        }
        return w.bytes
    }
}

/// Test-only mesh bugs the simulator injects into every replica (`SimulationOptions.meshBugs`).
public struct MeshBugs: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// A failure verdict leaves the failed agent's tasks with it (`KVStateMachine.testingMeshKeepsTasksOfFailed`).
    public static let keepTasksOfFailed = MeshBugs(rawValue: 1)
}
