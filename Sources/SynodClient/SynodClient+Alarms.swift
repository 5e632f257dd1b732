import SynodStateMachine
import SynodWire

extension SynodClient {
    /// The raised cluster alarms (`AlarmKind`), ascending. Linearizable.
    public func alarms() async throws -> [AlarmKind] {
        let response = try await send(.read(.linearizable, KVQuery.alarms.encode()))
        switch try decode(response) {
        case let .alarm(r): return r.alarms
        case let .failure(e): throw ClientError.kv(e)
        default: throw unexpected()
        }
    }

    /// Disarms `kind` (etcd's `alarm disarm`) and returns the alarms still raised. Free space
    /// first (compact history, delete keys): the leader raises NOSPACE again at its next
    /// measurement if the state is still over its quota.
    @discardableResult
    public func disarm(_ kind: AlarmKind = .noSpace) async throws -> [AlarmKind] {
        guard case let .alarm(r) = try await write(.alarm(kind, raised: false)) else { throw unexpected() }
        return r.alarms
    }
}
