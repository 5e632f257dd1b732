import SynodCore

/// A pBFT client as a value (paper §4.1): one request at a time, identified by client id and a
/// strictly increasing timestamp; accepted on enough matching, authenticated replies from
/// distinct replicas; retransmitted to all replicas on timeout.
public struct PBFTClient: Sendable {
    public struct Config: Sendable {
        public var id: ClientID
        public var replicas: [NodeID]
        /// Matching replies that accept a read-write result: f+1 (paper §4.1). Safe together with
        /// the read-only optimization because replicas defer read-only answers while anything they
        /// prepared is unexecuted (see `PBFTReplica.canAnswerReads`, docs/PBFT.md).
        public var writeReplies: Int
        /// Matching replies that accept a read-only answer: 2f+1, a quorum, so that it includes a
        /// correct replica that prepared every accepted write. Lowered only by tests, to inject
        /// the bug the quorum prevents (a replica cut off from its peers answers from its stale state).
        public var readOnlyReplies: Int
        /// Ticks before the request is retransmitted to every replica.
        public var retransmitTicks: Int = 30
        /// Use the read-only optimization for read-only operations.
        public var readOnlyOptimization = false
        /// Send every request to every replica at once (as BFT-SMaRt clients do), not to the
        /// primary first. A networked replica can only answer a client that reached it, and
        /// backups then watch the primary from the first moment.
        public var sendToAll = false

        public init(id: ClientID, replicas: [NodeID]) {
            self.id = id
            self.replicas = replicas.sorted()
            writeReplies = Quorum.byzantineFaultsTolerated(replicas: replicas.count) + 1
            readOnlyReplies = Quorum.byzantineQuorum(replicas: replicas.count)
        }

        public var f: Int { Quorum.byzantineFaultsTolerated(replicas: replicas.count) }
    }

    struct Outstanding: Sendable {
        var request: Request
        var replies: [NodeID: Reply] = [:]
        var ticksLeft: Int
    }

    public let config: Config
    let crypto: any PBFTCryptoProvider
    public private(set) var timestamp: UInt64 = 0
    /// The newest view seen in a reply: its primary gets the first copy of each request.
    public private(set) var view: View = .zero
    var current: Outstanding?
    var outbox: [PBFTEnvelope] = []

    /// `timestamp`: the last timestamp used before (requests continue above it). Replicas treat
    /// a timestamp at or below the last one they executed for this client as a retransmission, so
    /// a client that restarts must start above everything it used before — the shell passes its
    /// clock, as the paper suggests (§4.1); the core reads none.
    public init(config: Config, crypto: any PBFTCryptoProvider, startingAfter timestamp: UInt64 = 0) {
        precondition(crypto.principal == .client(config.id), "crypto provider of another principal")
        self.config = config
        self.crypto = crypto
        self.timestamp = timestamp
    }

    public var isBusy: Bool { current != nil }
    public var currentRequest: Request? { current?.request }

    /// Starts a request (one at a time). Read-only ones go to every replica, others to the primary.
    public mutating func invoke(_ operation: [UInt8], readOnly: Bool = false) -> Request {
        precondition(current == nil, "one request at a time")
        timestamp += 1
        return start(operation, readOnly: readOnly && config.readOnlyOptimization)
    }

    /// Signs and sends a request under the current timestamp.
    mutating func start(_ operation: [UInt8], readOnly: Bool) -> Request {
        var r = Request(client: config.id, timestamp: timestamp, operation: operation, readOnly: readOnly)
        r.signature = crypto.sign(r.signedBytes)
        current = Outstanding(request: r, ticksLeft: config.retransmitTicks)
        if readOnly || config.sendToAll { sendToAll(r) } else { send(r, to: config.replicas[Int(view.rawValue % UInt64(config.replicas.count))]) }
        return r
    }

    /// A reply arrived; returns the accepted result once enough replicas agree.
    public mutating func step(_ env: PBFTEnvelope) -> [UInt8]? {
        guard case let .reply(r) = env.message, var cur = current, env.from == .replica(r.replica),
              env.to == .client(config.id), config.replicas.contains(r.replica),
              r.client == config.id, r.timestamp == cur.request.timestamp, r.readOnly == cur.request.readOnly,
              crypto.verifyMAC(env.mac, of: env.message.signedBytes, from: env.from) else { return nil }
        if cur.replies[r.replica] != nil { return nil }
        cur.replies[r.replica] = r
        current = cur
        // A read-only answer must come from a quorum (2f+1 when n = 3f+1) to be linearizable.
        let needed = r.readOnly ? config.readOnlyReplies : config.writeReplies
        let matching = cur.replies.values.filter { $0.result == r.result }
        guard matching.count >= needed else { return nil }
        view = max(view, matching.map(\.view).max() ?? view)
        current = nil
        return r.result
    }

    /// On timeout: retransmit to every replica; a read-only request falls back to an ordered one.
    public mutating func tick() {
        guard var cur = current else { return }
        cur.ticksLeft -= 1
        current = cur
        guard cur.ticksLeft <= 0 else { return }
        if cur.request.readOnly {
            _ = start(cur.request.operation, readOnly: false)
            sendToAll(current!.request)
            return
        }
        cur.ticksLeft = config.retransmitTicks
        current = cur
        sendToAll(cur.request)
    }

    /// Gives up on the current request (its outcome stays unknown).
    public mutating func abandon() { current = nil }

    /// Messages to send, oldest first; clears them.
    public mutating func takeMessages() -> [PBFTEnvelope] {
        defer { outbox = [] }
        return outbox
    }

    mutating func send(_ r: Request, to replica: NodeID) {
        outbox.append(PBFTEnvelope(from: .client(config.id), to: .replica(replica), message: .request(r)))
    }

    mutating func sendToAll(_ r: Request) {
        for id in config.replicas { send(r, to: id) }
    }
}
