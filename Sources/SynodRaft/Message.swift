import SynodCore

/// Kinds of peer message (Raft Figure 2 plus pre-vote, heartbeats and snapshot chunks).
public enum MessageType: UInt8, Sendable, Hashable, CaseIterable {
    case preVote = 1, preVoteResponse
    case vote, voteResponse
    case append, appendResponse
    case heartbeat, heartbeatResponse
    case snapshot, snapshotResponse
    /// Leadership transfer: campaign now, ignoring pre-vote and leases.
    case timeoutNow
    /// A follower asks the leader for a read index on behalf of its own reads (`context` names
    /// them); the leader answers once a heartbeat quorum confirmed it still leads (`index`), or
    /// refuses (`reject`: busy; `Ready.refusedReads` on the follower). etcd-raft's MsgReadIndex /
    /// MsgReadIndexResp.
    case readIndex, readIndexResponse
}

/// One chunk of an InstallSnapshot transfer.
public struct SnapshotChunkMessage: Hashable, Sendable {
    /// Where the snapshot ends and the membership in force there.
    public var position: LogPosition
    public var membership: Membership
    /// Byte offset of `data` inside the whole snapshot.
    public var offset: Int
    public var data: [UInt8]
    public var isLast: Bool
}

/// A message between two cores. Fields a type does not use keep their zero values.
public struct Message: Hashable, Sendable, CustomStringConvertible {
    public var type: MessageType
    public var from: NodeID
    public var to: NodeID
    public var term: Term
    /// append: term of the entry before `entries`; vote: candidate's last log term.
    public var logTerm: Term = .zero
    /// append: index before `entries`; vote: candidate's last index; appendResponse: the
    /// matched index (success) or the rejected `index` of the append (reject);
    /// snapshotResponse: the snapshot's index; readIndexResponse: the read index.
    public var index: LogIndex = .zero
    public var entries: [Entry] = []
    /// The sender's commit index (append, heartbeat).
    public var commit: LogIndex = .zero
    public var reject: Bool = false
    /// appendResponse rejections: the follower's hint of where the leader should try next
    /// (its first index of `conflictTerm`, or its last index + 1).
    public var rejectHint: LogIndex = .zero
    /// appendResponse rejections: the term of the follower's entry at `index`, or zero if it has none.
    public var conflictTerm: Term = .zero
    /// heartbeat(Response): a ReadIndex request id echoed back, 0 for none;
    /// readIndex(Response): the follower's request id; snapshotResponse: the next byte offset wanted.
    public var context: UInt64 = 0
    /// heartbeat(Response): the leader's tick count when it sent the heartbeat (lease reads).
    public var sentTick: UInt64 = 0
    public var snapshot: SnapshotChunkMessage? = nil

    public init(type: MessageType, from: NodeID, to: NodeID, term: Term) {
        self.type = type
        self.from = from
        self.to = to
        self.term = term
    }

    public var description: String {
        var s = "\(type) \(from)->\(to) \(term)"
        switch type {
        case .preVote, .vote: s += " last=\(logTerm.rawValue)/\(index.rawValue)"
        case .preVoteResponse, .voteResponse: s += reject ? " reject" : " grant"
        case .append:
            s += " prev=\(logTerm.rawValue)/\(index.rawValue) n=\(entries.count) commit=\(commit.rawValue)"
        case .appendResponse:
            s += reject ? " reject \(index.rawValue) hint=\(rejectHint.rawValue) ct=\(conflictTerm.rawValue)" : " ok \(index.rawValue)"
        case .heartbeat: s += " commit=\(commit.rawValue) ctx=\(context)"
        case .heartbeatResponse: s += " ctx=\(context)"
        case .snapshot:
            if let c = snapshot { s += " at=\(c.position) off=\(c.offset) len=\(c.data.count)\(c.isLast ? " last" : "")" }
        case .snapshotResponse: s += " at=\(index.rawValue) next=\(context)\(reject ? " reject" : "")"
        case .timeoutNow: break
        case .readIndex: s += " ctx=\(context)"
        case .readIndexResponse: s += reject ? " ctx=\(context) reject" : " ctx=\(context) index=\(index.rawValue)"
        }
        return s
    }
}
