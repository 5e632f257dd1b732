import SynodCore
import SynodWire

extension SynodClient {
    /// Members with their role (voter, learner, outgoing) and addresses, as the answering node sees them.
    public func members() async throws -> [MemberInfo] {
        let r = try await send(.member(MemberRequest(operation: .list).encode()))
        do { return try MemberInfo.decodeList(r.body) } catch { throw ClientError.badResponse("\(error)") }
    }

    /// Adds a member at `peerAddress`. Add it as a learner first, let it catch up, then `promote`
    /// it: a voter that has to catch up first can stall commits of a small cluster.
    public func addMember(_ id: NodeID, peerAddress: String, asLearner: Bool = true) async throws {
        _ = try await send(.member(MemberRequest(operation: asLearner ? .addLearner : .addVoter, node: id, peerAddress: peerAddress).encode()))
    }

    /// Makes a learner a voter (joint consensus).
    public func promoteMember(_ id: NodeID) async throws {
        _ = try await send(.member(MemberRequest(operation: .promote, node: id).encode()))
    }

    /// Removes a voter (joint consensus) or a learner.
    public func removeMember(_ id: NodeID) async throws {
        _ = try await send(.member(MemberRequest(operation: .remove, node: id).encode()))
    }

    /// Gives member `id` a new peer address (etcd's `member update`): every node dials it
    /// there once the change commits. Restart the member listening at that address.
    public func updateMember(_ id: NodeID, peerAddress: String) async throws {
        _ = try await send(.member(MemberRequest(operation: .update, node: id, peerAddress: peerAddress).encode()))
    }

    /// Hands leadership to voter `id` (etcd's `move-leader`); returns once it leads. Before
    /// taking the leader's machine down for maintenance, this avoids an election timeout's
    /// worth of unavailability.
    public func moveLeader(to id: NodeID) async throws {
        _ = try await send(.member(MemberRequest(operation: .moveLeader, node: id).encode()))
    }
}
