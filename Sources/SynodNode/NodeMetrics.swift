import CoreMetrics
import Foundation
import Synchronization

/// What a Raft node reports through swift-metrics. `synod serve --listen-metrics` exports them in
/// Prometheus' text format (names after etcd's where one exists); an embedding program
/// bootstraps whatever backend it uses, and without one they cost nothing.
///
/// Cost on the hot path: none per request. The loop keeps plain integers and publishes them
/// every `NodeMetrics.publishSeconds` (`NodeLoop.publishMetrics`); only LMDB commits are timed
/// one by one (a clock read each, hundreds to a few thousand a second).
final class NodeMetrics {
    static let publishSeconds = 0.5

    let isLeader = Gauge(label: "synod_server_is_leader")
    let hasLeader = Gauge(label: "synod_server_has_leader")
    let leaderChanges = Counter(label: "synod_server_leader_changes_seen_total")
    let term = Gauge(label: "synod_server_term")
    let committed = Gauge(label: "synod_server_proposals_committed_total")
    let applied = Gauge(label: "synod_server_proposals_applied_total")
    let pending = Gauge(label: "synod_server_proposals_pending")
    let clientRequests = Counter(label: "synod_server_client_requests_total")
    let watchers = Gauge(label: "synod_server_watchers")
    let revision = Gauge(label: "synod_mvcc_current_revision")
    let compactRevision = Gauge(label: "synod_mvcc_compact_revision")
    let stateBytes = Gauge(label: "synod_mvcc_db_total_size_in_use_in_bytes")
    let quotaBytes = Gauge(label: "synod_server_quota_backend_bytes")
    let noSpace = Gauge(label: "synod_server_alarm_nospace")
    let corrupt = Gauge(label: "synod_server_alarm_corrupt")
    /// The cluster version in force (replicated) and the highest this node's build supports.
    let clusterVersion = Gauge(label: "synod_cluster_version")
    let clusterVersionSupported = Gauge(label: "synod_cluster_version_supported")
    let commitDuration = Timer(label: "synod_disk_backend_commit_duration_seconds")
    let defragDuration = Timer(label: "synod_disk_defrag_duration_seconds")
    let peerLinksRefused = Gauge(label: "synod_network_peer_links_refused_total")

    /// Whether this node knows a leader, for `/health`, and whether it leads, for the corruption
    /// check (read from other threads).
    let healthy = Atomic<Bool>(false)
    let leading = Atomic<Bool>(false)
    /// When the loop last published (milliseconds of system uptime): a loop that stopped
    /// publishing (stuck in a sync, or waiting for a lock) is not healthy whatever it last said.
    let publishedAtMillis = Atomic<Int64>(0)
    /// The cluster version in force as of the last publication, for `/version`.
    let clusterVersionInForce = Atomic<Int>(0)
    /// The term as of the last publication, for the JSON gateway's response headers.
    let termPublished = Atomic<UInt64>(0)
    /// How stale the last publication may be for `/health` to still believe it.
    static let healthStaleMillis: Int64 = 3_000
}

extension NodeLoop {
    /// Counts a change of leader as this node sees it (called after every Ready).
    func noticeLeaderForMetrics() {
        guard core.leader != lastLeaderSeen else { return }
        if !core.leader.isNone { metrics.leaderChanges.increment() }
        lastLeaderSeen = core.leader
    }

    /// Publishes the loop's counters as metrics, at most every `NodeMetrics.publishSeconds`.
    func publishMetrics(_ now: Double) {
        guard now - lastMetricsPublish >= NodeMetrics.publishSeconds else { return }
        lastMetricsPublish = now
        let m = metrics
        let leading = core.role == .leader
        m.isLeader.record(leading ? 1 : 0)
        m.hasLeader.record(core.leader.isNone ? 0 : 1)
        m.healthy.store(!core.leader.isNone, ordering: .relaxed)
        m.leading.store(leading, ordering: .relaxed)
        m.publishedAtMillis.store(Int64(now * 1000), ordering: .relaxed)
        m.term.record(Int64(bitPattern: core.term.rawValue))
        m.termPublished.store(core.term.rawValue, ordering: .relaxed)
        m.committed.record(Int64(bitPattern: core.commitIndex.rawValue))
        m.applied.record(Int64(bitPattern: sm.appliedIndex.rawValue))
        m.pending.record(pendingWrites.count)
        m.clientRequests.increment(by: clientRequestsSincePublish)
        clientRequestsSincePublish = 0
        m.watchers.record(watchers.count)
        m.revision.record(sm.revision)
        m.compactRevision.record(sm.kv.compactedRevision)
        m.quotaBytes.record(configuration.quotaBytes)
        m.noSpace.record(sm.kv.alarms.contains(.noSpace) ? 1 : 0)
        m.corrupt.record(sm.kv.alarms.contains(.corrupt) ? 1 : 0)
        m.clusterVersion.record(Int(sm.kv.clusterVersion))
        m.clusterVersionInForce.store(Int(sm.kv.clusterVersion), ordering: .relaxed)
        m.clusterVersionSupported.record(Int(sm.kv.supportedClusterVersion))
        m.peerLinksRefused.record(transport.peerLinksRefused)
        // `stateBytes` is recorded where the pages are measured (`checkQuota`).
    }
}
