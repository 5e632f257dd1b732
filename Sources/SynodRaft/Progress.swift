import SynodCore

/// Replication states of a follower as seen by the leader (after etcd-raft's tracker).
public enum ReplicationState: UInt8, Sendable, Hashable {
    /// The leader does not know where the follower's log ends: one append at a time.
    case probe
    /// The follower is caught up enough to stream: appends are pipelined up to the window.
    case replicate
    /// The follower needs a snapshot; appends are paused until it is installed.
    case snapshot
}

/// A bounded window of in-flight appends, remembered by their last index.
struct Inflights: Sendable {
    let capacity: Int
    private(set) var lastIndexes: [LogIndex] = []

    init(capacity: Int) {
        precondition(capacity >= 1)
        self.capacity = capacity
    }

    var isFull: Bool { lastIndexes.count >= capacity }
    var count: Int { lastIndexes.count }

    mutating func add(_ index: LogIndex) {
        precondition(!isFull, "inflight window overflow")
        precondition(lastIndexes.last.map { $0 < index } ?? true, "inflights must increase")
        lastIndexes.append(index)
    }

    /// Frees every append whose last index is at or below `index` (acknowledged).
    mutating func free(upTo index: LogIndex) {
        lastIndexes.removeAll { $0 <= index }
    }

    mutating func reset() { lastIndexes.removeAll() }
}

/// The leader's view of one follower. Invariant: `match < next`.
struct Progress: Sendable {
    var match: LogIndex = .zero
    var next: LogIndex
    var state: ReplicationState = .probe
    /// In probe state: an append was sent and no answer has come yet.
    var probeSent = false
    var inflights: Inflights
    /// In snapshot state: index of the snapshot being sent, and the next byte to send.
    var pendingSnapshot: LogIndex = .zero
    var snapshotOffset = 0
    /// In snapshot state: `snapshotOffset` when the last heartbeat answer came. A heartbeat
    /// answer resends the chunk in flight only if the transfer has not moved since the one
    /// before, so a slow chunk is not resent every heartbeat.
    var snapshotOffsetAtHeartbeat = -1
    /// In snapshot state: the follower refused this snapshot as larger than it gathers
    /// (`RaftConfig.snapshotBytesMax`); nothing more is sent until a newer snapshot replaces it.
    var snapshotRefused = false
    /// Heard from since the last check-quorum round.
    var recentActive = false
    /// The highest `sentTick` of one of our heartbeats this follower answered (lease reads).
    var ackedSentTick: UInt64 = 0

    init(next: LogIndex, inflightMax: Int) {
        self.next = next
        self.inflights = Inflights(capacity: inflightMax)
    }

    var isPaused: Bool {
        switch state {
        case .probe: return probeSent
        case .replicate: return inflights.isFull
        case .snapshot: return true
        }
    }

    mutating func becomeProbe() {
        if state == .snapshot {
            next = max(match.next, pendingSnapshot.next)
            pendingSnapshot = .zero
        } else {
            next = match.next
        }
        state = .probe
        probeSent = false
        inflights.reset()
    }

    /// Back to probing after a rejection, keeping the `next` the rejection hints chose.
    mutating func probeFromHere() {
        state = .probe
        probeSent = false
        inflights.reset()
    }

    mutating func becomeReplicate() {
        state = .replicate
        next = match.next
        probeSent = false
        inflights.reset()
    }

    mutating func becomeSnapshot(_ index: LogIndex) {
        state = .snapshot
        pendingSnapshot = index
        snapshotOffset = 0
        snapshotOffsetAtHeartbeat = -1
        snapshotRefused = false
        probeSent = false
        inflights.reset()
    }

    /// A successful append response for `index`. Returns false if it told us nothing new.
    mutating func maybeUpdate(_ index: LogIndex) -> Bool {
        var updated = false
        if index > match {
            match = index
            updated = true
            probeSent = false
        }
        next = max(next, index.next)
        precondition(match < next, "progress invariant: match < next")
        return updated
    }

    /// A rejection of the append at `rejected`; `hintNext` is where the hints say to retry.
    /// Returns false when the rejection is stale.
    /// `followerHint` is the follower's own claim (its last index + 1, or its first index of the
    /// conflicting term): if that lies at or below `match`, the follower no longer holds entries it
    /// acknowledged, which only happens when its disk was wiped and it restarted empty. Its old
    /// acknowledgements mean nothing then; start over from what it has (a snapshot, usually).
    /// Lowering `match` is safe: the commit index never moves backwards.
    mutating func maybeDecrease(rejected: LogIndex, hintNext: LogIndex, followerHint: LogIndex) -> Bool {
        if state == .replicate {
            if rejected <= match { return false }
        } else if rejected != next.previous {
            return false
        }
        if followerHint <= match && followerHint >= LogIndex(1) { match = followerHint.previous }
        next = max(match.next, min(hintNext, rejected))
        if next < LogIndex(1) { next = LogIndex(1) }
        probeSent = false
        precondition(match < next, "progress invariant: match < next")
        return true
    }
}
