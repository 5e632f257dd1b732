import SynodCore

/// One batch the replicas agreed on at `sequence`, to execute in order. An empty batch is a null
/// request: it advances the sequence and changes no state.
public struct CommittedBatch: Hashable, Sendable {
    public var sequence: SequenceNumber
    public var view: View
    public var digest: Digest
    public var requests: [Request]
    /// When true, the shell takes a checkpoint right after executing this batch: it encodes the
    /// state and, after `advance`, calls `checkpointTaken(sequence, state:)`.
    public var checkpointAfter: Bool
}

/// A stable checkpoint received by state transfer: the shell restores its state machine from
/// `state` (already verified against the 2f+1-certified digest) before executing anything else.
public struct StateToInstall: Hashable, Sendable {
    public var sequence: SequenceNumber
    public var stateDigest: Digest
    public var state: [UInt8]
}

/// Everything the core wants done, in the order the shell must honour. Obtain with `ready()`,
/// carry it out, then call `advance(_:)` before stepping the core again.
public struct PBFTReady: Sendable {
    /// 1. When set, persist the new stable checkpoint and restore the state machine from it,
    /// before executing `committed` (which then continues right after it).
    public var stateToInstall: StateToInstall?
    /// 2. Make the replica's protocol state durable before sending (the messages below promise
    /// that the pre-prepares accepted and the prepares and commits sent survive a crash). The core
    /// is a value; the simulator persists it as of each `advance`; a durable encoding for the
    /// networked node is future work (docs/PBFT.md).
    /// 3. Then send these messages to other replicas, in order; the network may drop them.
    public var messages: [PBFTEnvelope]
    /// 4. Then execute these batches in order; each sequence number appears once, ever. After
    /// each request, send the client a `Reply` (see `PBFTReplica.reply`).
    public var committed: [CommittedBatch]
    /// 5. Then answer these read-only requests from the state after step 4, without changing it.
    public var readOnly: [Request]
    /// 6. Resend the cached reply of these (client, timestamp) pairs: retransmissions of requests
    /// already executed.
    public var replyResends: [Request]

    public var isEmpty: Bool {
        stateToInstall == nil && messages.isEmpty && committed.isEmpty && readOnly.isEmpty && replyResends.isEmpty
    }
}
