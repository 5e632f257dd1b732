import SynodCore

// The messages of Castro & Liskov's protocol. Each message that must convince a third party
// carries its own signature (it travels inside certificates); the others are authenticated per
// link by a MAC on the envelope. `signedBytes` is the canonical encoding that signatures and MACs
// cover; it starts with a distinct tag per message kind, so no signature can be replayed as a
// different kind of message.

/// Named bounds on what one message may carry (STYLE.md: put a limit on everything).
public enum PBFTLimits {
    /// Largest operation one request may carry.
    public static let operationBytesMax = 64 * 1024
    /// Largest signature or MAC accepted.
    public static let authenticatorBytesMax = 128
    /// Largest state a state-transfer reply may carry.
    public static let stateBytesMax = 16 << 20
}

/// A client request `<REQUEST, o, t, c>` signed by the client (so a primary can forward it inside a
/// pre-prepare and every backup can check it came from the client).
public struct Request: Hashable, Sendable, CustomStringConvertible {
    public var client: ClientID
    /// Client-local, strictly increasing: the exactly-once key with `client`.
    public var timestamp: UInt64
    public var operation: [UInt8]
    /// Read-only requests may be answered without ordering (2f+1 matching replies needed).
    public var readOnly: Bool
    public var signature: [UInt8]

    public init(client: ClientID, timestamp: UInt64, operation: [UInt8], readOnly: Bool = false, signature: [UInt8] = []) {
        self.client = client
        self.timestamp = timestamp
        self.operation = operation
        self.readOnly = readOnly
        self.signature = signature
    }

    public var signedBytes: [UInt8] {
        var w = ByteWriter(capacity: 32 + operation.count)
        w.u8(1)
        w.u64(client.rawValue)
        w.u64(timestamp)
        w.u8(readOnly ? 1 : 0)
        w.lengthPrefixed(operation)
        return w.bytes
    }

    /// Bytes the request costs against batch limits.
    public var sizeBytes: Int { operation.count + signature.count + 24 }

    public var description: String { "req(\(client) t\(timestamp)\(readOnly ? " ro" : ""))" }
}

/// `<PRE-PREPARE, v, n, d>` with the batch of requests it orders, signed by the primary of `view`.
/// `digest` is the digest of the batch (see `PBFTCryptoProvider.batchDigest`); an empty batch is a
/// null request.
public struct PrePrepare: Hashable, Sendable {
    public var view: View
    public var sequence: SequenceNumber
    public var digest: Digest
    public var requests: [Request]
    public var primary: NodeID
    public var signature: [UInt8] = []

    public init(view: View, sequence: SequenceNumber, digest: Digest, requests: [Request], primary: NodeID) {
        self.view = view
        self.sequence = sequence
        self.digest = digest
        self.requests = requests
        self.primary = primary
    }

    /// Covers (view, sequence, digest) only: the digest binds the batch.
    public var signedBytes: [UInt8] {
        phaseSignedBytes(tag: 2, view: view, sequence: sequence, node: primary, digest: digest)
    }
}

/// `<PREPARE, v, n, d, i>`, signed (prepares form the prepared certificates of VIEW-CHANGE).
public struct Prepare: Hashable, Sendable {
    public var view: View
    public var sequence: SequenceNumber
    public var digest: Digest
    public var replica: NodeID
    public var signature: [UInt8] = []

    public init(view: View, sequence: SequenceNumber, digest: Digest, replica: NodeID) {
        self.view = view
        self.sequence = sequence
        self.digest = digest
        self.replica = replica
    }

    public var signedBytes: [UInt8] {
        phaseSignedBytes(tag: 3, view: view, sequence: sequence, node: replica, digest: digest)
    }
}

/// `<COMMIT, v, n, d, i>`, MAC-authenticated on its envelope.
public struct Commit: Hashable, Sendable {
    public var view: View
    public var sequence: SequenceNumber
    public var digest: Digest
    public var replica: NodeID

    public init(view: View, sequence: SequenceNumber, digest: Digest, replica: NodeID) {
        self.view = view
        self.sequence = sequence
        self.digest = digest
        self.replica = replica
    }

    public var signedBytes: [UInt8] {
        phaseSignedBytes(tag: 4, view: view, sequence: sequence, node: replica, digest: digest)
    }
}

/// `<CHECKPOINT, n, d, i>`, signed: 2f+1 matching ones are the proof of a stable checkpoint.
public struct CheckpointMessage: Hashable, Sendable {
    public var sequence: SequenceNumber
    public var stateDigest: Digest
    public var replica: NodeID
    public var signature: [UInt8] = []

    public init(sequence: SequenceNumber, stateDigest: Digest, replica: NodeID) {
        self.sequence = sequence
        self.stateDigest = stateDigest
        self.replica = replica
    }

    public var signedBytes: [UInt8] {
        var w = ByteWriter()
        w.u8(5); w.u64(sequence.rawValue); w.u64(replica.rawValue); w.lengthPrefixed(stateDigest.bytes)
        return w.bytes
    }
}

/// A pre-prepare and 2f matching prepares from other replicas: proof that a request prepared.
public struct PreparedCertificate: Hashable, Sendable {
    public var prePrepare: PrePrepare
    public var prepares: [Prepare]
    public init(prePrepare: PrePrepare, prepares: [Prepare]) {
        self.prePrepare = prePrepare
        self.prepares = prepares
    }
}

/// `<VIEW-CHANGE, v+1, n, C, P, i>`, signed: the sender's stable checkpoint `n` with its proof `C`
/// and a prepared certificate (the one of the highest view) for every sequence number above `n`.
public struct ViewChange: Hashable, Sendable {
    public var newView: View
    public var stableSequence: SequenceNumber
    public var checkpointProof: [CheckpointMessage]
    public var prepared: [PreparedCertificate]
    public var replica: NodeID
    public var signature: [UInt8] = []

    public init(newView: View, stableSequence: SequenceNumber, checkpointProof: [CheckpointMessage],
                prepared: [PreparedCertificate], replica: NodeID) {
        self.newView = newView
        self.stableSequence = stableSequence
        self.checkpointProof = checkpointProof
        self.prepared = prepared
        self.replica = replica
    }

    /// Covers every field: the embedded messages by their own signed bytes and signatures.
    public var signedBytes: [UInt8] {
        var w = ByteWriter()
        w.u8(6); w.u64(newView.rawValue); w.u64(stableSequence.rawValue); w.u64(replica.rawValue)
        w.u32(UInt32(checkpointProof.count))
        for c in checkpointProof { w.lengthPrefixed(c.signedBytes); w.lengthPrefixed(c.signature) }
        w.u32(UInt32(prepared.count))
        for p in prepared {
            w.lengthPrefixed(p.prePrepare.signedBytes); w.lengthPrefixed(p.prePrepare.signature)
            w.u32(UInt32(p.prePrepare.requests.count))
            for r in p.prePrepare.requests { w.lengthPrefixed(r.signedBytes); w.lengthPrefixed(r.signature) }
            w.u32(UInt32(p.prepares.count))
            for q in p.prepares { w.lengthPrefixed(q.signedBytes); w.lengthPrefixed(q.signature) }
        }
        return w.bytes
    }
}

/// `<NEW-VIEW, v+1, V, O>`, signed by the new primary: the 2f+1 view changes it used and the
/// pre-prepares it computed from them (which every backup recomputes and compares).
public struct NewView: Hashable, Sendable {
    public var view: View
    public var viewChanges: [ViewChange]
    public var prePrepares: [PrePrepare]
    public var primary: NodeID
    public var signature: [UInt8] = []

    public init(view: View, viewChanges: [ViewChange], prePrepares: [PrePrepare], primary: NodeID) {
        self.view = view
        self.viewChanges = viewChanges
        self.prePrepares = prePrepares
        self.primary = primary
    }

    public var signedBytes: [UInt8] {
        var w = ByteWriter()
        w.u8(7); w.u64(view.rawValue); w.u64(primary.rawValue)
        w.u32(UInt32(viewChanges.count))
        for v in viewChanges { w.lengthPrefixed(v.signedBytes); w.lengthPrefixed(v.signature) }
        w.u32(UInt32(prePrepares.count))
        for p in prePrepares { w.lengthPrefixed(p.signedBytes); w.lengthPrefixed(p.signature) }
        return w.bytes
    }
}

/// `<REPLY, v, t, c, i, r>`, MAC-authenticated to the client. `executedThrough` is the sequence
/// number the replica had executed when it answered (reads use it; clients ignore it otherwise).
public struct Reply: Hashable, Sendable {
    public var view: View
    public var timestamp: UInt64
    public var client: ClientID
    public var replica: NodeID
    public var result: [UInt8]
    /// True when answered by the read-only optimization (client needs 2f+1 matching).
    public var readOnly: Bool

    public init(view: View, timestamp: UInt64, client: ClientID, replica: NodeID, result: [UInt8], readOnly: Bool) {
        self.view = view
        self.timestamp = timestamp
        self.client = client
        self.replica = replica
        self.result = result
        self.readOnly = readOnly
    }

    public var signedBytes: [UInt8] {
        var w = ByteWriter()
        w.u8(8); w.u64(view.rawValue); w.u64(timestamp); w.u64(client.rawValue); w.u64(replica.rawValue)
        w.u8(readOnly ? 1 : 0); w.lengthPrefixed(result)
        return w.bytes
    }
}

/// State transfer: ask a replica for the state at a certified stable checkpoint.
public struct FetchState: Hashable, Sendable {
    public var sequence: SequenceNumber
    public var replica: NodeID
    public init(sequence: SequenceNumber, replica: NodeID) {
        self.sequence = sequence
        self.replica = replica
    }
    public var signedBytes: [UInt8] {
        var w = ByteWriter()
        w.u8(9); w.u64(sequence.rawValue); w.u64(replica.rawValue)
        return w.bytes
    }
}

/// State transfer: the state at `sequence`. Trusted only if its digest matches the certified one.
public struct StateTransfer: Hashable, Sendable {
    public var sequence: SequenceNumber
    public var state: [UInt8]
    public var replica: NodeID
    public init(sequence: SequenceNumber, state: [UInt8], replica: NodeID) {
        self.sequence = sequence
        self.state = state
        self.replica = replica
    }
    public var signedBytes: [UInt8] {
        var w = ByteWriter(capacity: state.count + 32)
        w.u8(10); w.u64(sequence.rawValue); w.u64(replica.rawValue); w.lengthPrefixed(state)
        return w.bytes
    }
}

/// `<STATUS, v, active, h, e, i>`, MAC'd, multicast every `statusIntervalTicks`: what this replica
/// has, so peers can retransmit what it misses (TOCS §5.2; the network may drop anything).
public struct Status: Hashable, Sendable {
    public var view: View
    public var viewActive: Bool
    public var lowWatermark: SequenceNumber
    public var lastExecuted: SequenceNumber
    public var replica: NodeID
    public init(view: View, viewActive: Bool, lowWatermark: SequenceNumber, lastExecuted: SequenceNumber, replica: NodeID) {
        self.view = view
        self.viewActive = viewActive
        self.lowWatermark = lowWatermark
        self.lastExecuted = lastExecuted
        self.replica = replica
    }
    public var signedBytes: [UInt8] {
        var w = ByteWriter()
        w.u8(11); w.u64(view.rawValue); w.u8(viewActive ? 1 : 0); w.u64(lowWatermark.rawValue)
        w.u64(lastExecuted.rawValue); w.u64(replica.rawValue)
        return w.bytes
    }
}

/// Every message of the protocol.
public enum PBFTMessage: Hashable, Sendable {
    case request(Request)
    case prePrepare(PrePrepare)
    case prepare(Prepare)
    case commit(Commit)
    case checkpoint(CheckpointMessage)
    case viewChange(ViewChange)
    case newView(NewView)
    case reply(Reply)
    case fetchState(FetchState)
    case stateTransfer(StateTransfer)
    case status(Status)

    /// What the envelope's MAC covers (for signed kinds, their own signed bytes).
    public var signedBytes: [UInt8] {
        switch self {
        case let .request(m): return m.signedBytes
        case let .prePrepare(m): return m.signedBytes
        case let .prepare(m): return m.signedBytes
        case let .commit(m): return m.signedBytes
        case let .checkpoint(m): return m.signedBytes
        case let .viewChange(m): return m.signedBytes
        case let .newView(m): return m.signedBytes
        case let .reply(m): return m.signedBytes
        case let .fetchState(m): return m.signedBytes
        case let .stateTransfer(m): return m.signedBytes
        case let .status(m): return m.signedBytes
        }
    }

    /// A short name for traces.
    public var kind: String {
        switch self {
        case .request: return "request"
        case .prePrepare: return "pre-prepare"
        case .prepare: return "prepare"
        case .commit: return "commit"
        case .checkpoint: return "checkpoint"
        case .viewChange: return "view-change"
        case .newView: return "new-view"
        case .reply: return "reply"
        case .fetchState: return "fetch-state"
        case .stateTransfer: return "state-transfer"
        case .status: return "status"
        }
    }

    /// Kinds whose envelope carries a MAC (the others are signed inside).
    public var isMACed: Bool {
        switch self {
        case .commit, .reply, .fetchState, .stateTransfer, .status: return true
        default: return false
        }
    }
}

/// One message on one link. `mac` authenticates MAC'd kinds for this receiver (the paper's
/// authenticator, split per destination because the shell sends point to point).
public struct PBFTEnvelope: Hashable, Sendable {
    public var from: Principal
    public var to: Principal
    public var message: PBFTMessage
    public var mac: [UInt8]

    public init(from: Principal, to: Principal, message: PBFTMessage, mac: [UInt8] = []) {
        self.from = from
        self.to = to
        self.message = message
        self.mac = mac
    }
}

/// What PRE-PREPARE (tag 2), PREPARE (3) and COMMIT (4) authenticate: the phase, the view, the
/// sequence number, the sender and the batch digest.
func phaseSignedBytes(tag: UInt8, view: View, sequence: SequenceNumber, node: NodeID, digest: Digest) -> [UInt8] {
    var w = ByteWriter()
    w.u8(tag); w.u64(view.rawValue); w.u64(sequence.rawValue); w.u64(node.rawValue); w.lengthPrefixed(digest.bytes)
    return w.bytes
}
