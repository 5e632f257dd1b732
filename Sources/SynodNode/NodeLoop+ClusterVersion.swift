import Logging
import SynodCore
import SynodStateMachine

extension NodeLoop {
    /// How often the leader compares the members' supported cluster versions.
    static let clusterVersionCheckSeconds = 1.0

    /// Leader: once every member (voters and learners) has said in its peer hello which cluster
    /// version its build supports, moves the cluster to the lowest of those and its own, if that
    /// is above the version in force — as etcd's leader sets the cluster version to the lowest
    /// member version. A member not heard from yet holds the version where it is, so one
    /// member's old build keeps the whole cluster on rules it knows. The version never goes down.
    func checkClusterVersion(_ now: Double) {
        guard core.role == .leader, now - lastClusterVersionCheck >= Self.clusterVersionCheckSeconds else { return }
        lastClusterVersionCheck = now
        if let f = clusterVersionInFlight, f.term == core.term, sm.appliedIndex < f.index { return }
        var lowest = sm.kv.supportedClusterVersion
        for member in core.membership.voters + core.membership.learners where member != configuration.id {
            guard let supported = peerClusterVersions[member] else { return }
            lowest = min(lowest, supported)
        }
        guard lowest > sm.kv.clusterVersion else { return }
        let payload = CommandEnvelope(session: nil, command: .clusterVersion(lowest)).encode()
        guard let position = try? core.propose(payload) else { return }
        clusterVersionInFlight = position
        logger.notice("every member supports cluster version \(lowest): moving the cluster to it",
                      metadata: ["from": "\(sm.kv.clusterVersion)", "to": "\(lowest)"])
    }
}
