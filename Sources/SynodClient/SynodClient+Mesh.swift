import SynodCore
import SynodStateMachine
import SynodWire

/// What mesh agents and tools need of a cluster, in either consensus mode: `SynodClient` (Raft)
/// and `SynodBFTClient` (BFT, answers accepted on f+1 matching replies) both provide it.
public protocol MeshClient: Sendable {
    /// Proposes a mesh command; the state machine decides when it commits (see `SynodClient.mesh`).
    @discardableResult
    func mesh(_ command: MeshCommand, ifVersion: Int64?) async throws -> MeshResult
    /// The mesh as of a linearizable (ordered, in BFT mode) read.
    func meshView() async throws -> MeshView
    /// Closes the client's connections.
    func close() async
}

extension SynodClient: MeshClient {
    /// The mesh, read linearizably (`meshView(consistency:)` picks another consistency).
    public func meshView() async throws -> MeshView { try await meshView(consistency: .linearizable) }
}

extension SynodBFTClient: MeshClient {}

extension SynodClient {
    /// Proposes a mesh command (DESIGN.md §5): the state machine decides when it commits — the
    /// auction's winner, a failure verdict, what moves — and the answer says what it decided.
    /// With `ifVersion`, the command is refused (`KVError.meshVersionStale`, thrown as
    /// `ClientError.kv`) unless the mesh is still at that version. Capability lists may come in
    /// any order; they are sorted and de-duplicated here.
    @discardableResult
    public func mesh(_ command: MeshCommand, ifVersion: Int64? = nil) async throws -> MeshResult {
        guard case let .mesh(r) = try await write(.mesh(command.normalized, ifVersion: ifVersion)) else { throw unexpected() }
        return r
    }

    /// The mesh: agents, tasks and version, read at `consistency`.
    public func meshView(consistency: Consistency) async throws -> MeshView {
        let r = try await range(RangeRequest.prefix(MeshKeys.prefix), consistency: consistency)
        do { return try MeshView.decode(r.kvs) } catch { throw ClientError.badResponse("mesh record: \(error)") }
    }
}

extension MeshCommand {
    /// The command with its capability lists sorted and de-duplicated, as the state machine wants them.
    public var normalized: MeshCommand {
        func set(_ v: [String]) -> [String] { Array(Set(v)).sorted() }
        switch self {
        case let .join(agent, capabilities, resources): return .join(agent: agent, capabilities: set(capabilities), resources: resources)
        case let .submit(task, requires, cost): return .submit(task: task, requires: set(requires), cost: cost)
        default: return self
        }
    }
}
