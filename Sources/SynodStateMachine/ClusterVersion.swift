import SynodCore

// The cluster version (etcd's): which version of the replicated rules — how a command changes
// the tables — every replica applies the log under. A build supports the versions up to its
// `KVStateMachine.clusterVersionSupported`; the leader proposes a higher version only once
// every member has announced (in its peer hello) that it supports it, so a rule that changes in
// a later build can be switched on by a log entry, at the same index on every replica, instead
// of by whichever build a replica happens to run. Rolling upgrades need exactly that.
//
// Invariant: the stored version never decreases, and a replica never applies an entry under a
// version above what its build supports — it stops instead (`ClusterVersionUnsupported`).

/// The answer to `Command.clusterVersion`: the version in force after it.
public struct ClusterVersionResult: Hashable, Sendable {
    public var revision: Int64
    public var version: UInt16
    public init(revision: Int64, version: UInt16) {
        self.revision = revision
        self.version = version
    }
}

/// Thrown by `KVStateMachine.apply` (nothing of the batch applied) and at open: the log or the
/// store moved the cluster to a version this build does not support. The node must stop; an
/// operator upgrades it (or, to go back, restores a snapshot taken before the version moved).
public struct ClusterVersionUnsupported: Error, Hashable, CustomStringConvertible {
    public var clusterVersion: UInt16
    public var supported: UInt16
    public init(clusterVersion: UInt16, supported: UInt16) {
        self.clusterVersion = clusterVersion
        self.supported = supported
    }
    public var description: String {
        "the cluster runs version \(clusterVersion) of the replicated rules; this build supports up to \(supported): upgrade this node"
    }
}

extension KVStateMachine {
    /// The highest cluster version this build applies the log under. Version 1 is the rules as
    /// of the cluster version's introduction; a store that never saw a version entry is at 0,
    /// whose rules are the same as 1's. Version 2 adds auth: `Command.auth` and envelopes
    /// stamped with their sender (`CommandEnvelope.principal`). Version 3 adds ordered and
    /// filtered ranges inside transactions (`RangeRequest.hasOrderOptions`), puts that ignore
    /// their value or lease (`Command.putIgnoring`) and sessions bound to their user
    /// (`StoredSession.owner`).
    public static let clusterVersionSupported: UInt16 = 3
    /// The cluster version from which a transaction may hold a sorted or filtered range and a
    /// put may ignore its value or lease: an older build cannot decode either, so below it every
    /// replica refuses them.
    public static let version3ClusterVersion: UInt16 = 3
    /// See `version3ClusterVersion`.
    public static let orderedRangeClusterVersion = version3ClusterVersion
    /// The cluster version from which session records name their user and only that user may
    /// use the session while auth is enabled (`StoredSession.owner`).
    public static let sessionOwnerClusterVersion: UInt16 = 3
}

extension ApplyContext {
    /// Raises the stored version to `version` (never lowers it). Above `supported` it throws:
    /// this replica cannot know the rules the entries after it are applied under.
    func applyClusterVersion(_ version: UInt16) throws -> Response {
        if version > clusterVersion {
            guard version <= clusterVersionSupported else {
                throw ClusterVersionUnsupported(clusterVersion: version, supported: clusterVersionSupported)
            }
            clusterVersion = version
            clusterVersionChanged = true
        }
        return .clusterVersion(ClusterVersionResult(revision: revision, version: clusterVersion))
    }
}
