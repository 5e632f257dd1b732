import SynodCore
import SynodCrypto
import SynodPBFT

/// A tiny deterministic cluster for scenario tests: replicas, a client, a FIFO network with a
/// filter, and a shell per replica whose state machine is the list of executed operations.
struct Cluster {
    var replicas: [PBFTReplica]
    var clients: [PBFTClient]
    let auth: [Principal: Ed25519HMACAuthenticator]
    var queue: [PBFTEnvelope] = []
    /// Executed (sequence, operations) per replica, in execution order.
    var executed: [[(SequenceNumber, [[UInt8]])]]
    /// Each replica's state: the operations it executed, in order.
    var state: [[[UInt8]]]
    var accepted: [[UInt8]] = []
    var sent: [PBFTEnvelope] = []
    /// Return false to drop a message (a test's network fault or Byzantine filter).
    var filter: (PBFTEnvelope) -> Bool = { _ in true }

    init(n: Int = 4, clients: Int = 1, configure: (inout PBFTConfig) -> Void = { _ in }) {
        let ids = (1...n).map { NodeID(UInt64($0)) }
        let clientIDs = (1...clients).map { ClientID(UInt64($0)) }
        let keys = DeterministicKeys.authenticators(seed: 42, replicas: ids, clients: clientIDs)
        auth = keys
        replicas = ids.map { id in
            var c = PBFTConfig(id: id, replicas: ids)
            configure(&c)
            return PBFTReplica(config: c, crypto: keys[.replica(id)]!)
        }
        self.clients = clientIDs.map { PBFTClient(config: PBFTClient.Config(id: $0, replicas: ids), crypto: keys[.client($0)]!) }
        executed = Array(repeating: [], count: n)
        state = Array(repeating: [], count: n)
    }

    static func encodeState(_ ops: [[UInt8]]) -> [UInt8] {
        var w = ByteWriter()
        w.u32(UInt32(ops.count))
        for o in ops { w.lengthPrefixed(o) }
        return w.bytes
    }

    static func decodeState(_ bytes: [UInt8]) -> [[UInt8]] {
        var r = ByteReader(bytes)
        let n = try! r.u32("n")
        return (0..<n).map { _ in try! r.lengthPrefixed("op", limit: 1 << 20) }
    }

    /// Carries out every replica's Ready, as the shell must.
    mutating func flush() {
        for i in replicas.indices {
            let rd = replicas[i].ready()
            if rd.isEmpty { continue }
            if let s = rd.stateToInstall { state[i] = Cluster.decodeState(s.state) }
            queue += rd.messages
            var snaps: [(SequenceNumber, [UInt8])] = []
            for b in rd.committed {
                executed[i].append((b.sequence, b.requests.map(\.operation)))
                for r in b.requests {
                    state[i].append(r.operation)
                    queue.append(replicas[i].reply(to: r, result: r.operation))
                }
                if b.checkpointAfter { snaps.append((b.sequence, Cluster.encodeState(state[i]))) }
            }
            for r in rd.readOnly { queue.append(replicas[i].reply(to: r, result: [UInt8(state[i].count)], readOnly: true)) }
            for r in rd.replyResends { queue.append(replicas[i].reply(to: r, result: r.operation)) }
            replicas[i].advance(rd)
            for (n, s) in snaps { replicas[i].checkpointTaken(n, state: s) }
        }
        for c in clients.indices { queue += clients[c].takeMessages() }
    }

    /// Delivers queued messages (and what they cause) until the network is quiet.
    mutating func run(stepsMax: Int = 100_000) {
        var steps = 0
        flush()
        while !queue.isEmpty && steps < stepsMax {
            let e = queue.removeFirst()
            steps += 1
            guard filter(e) else { continue }
            sent.append(e)
            deliver(e)
            flush()
        }
    }

    mutating func deliver(_ e: PBFTEnvelope) {
        switch e.to {
        case let .replica(id): replicas[Int(id.rawValue) - 1].step(e)
        case let .client(id):
            if let r = clients[Int(id.rawValue) - 1].step(e) { accepted.append(r) }
        }
    }

    /// Ticks every replica and client `n` times, running the network after each tick.
    mutating func tick(_ n: Int) {
        for _ in 0..<n {
            for i in replicas.indices { replicas[i].tick() }
            for c in clients.indices { clients[c].tick() }
            run()
        }
    }

    /// A client-signed request.
    func request(client: UInt64 = 1, _ t: UInt64, _ op: [UInt8], readOnly: Bool = false) -> Request {
        var r = Request(client: ClientID(client), timestamp: t, operation: op, readOnly: readOnly)
        r.signature = auth[.client(ClientID(client))]!.sign(r.signedBytes)
        return r
    }

    func sequences(_ i: Int) -> [UInt64] { executed[i].map(\.0.rawValue) }
}

/// Only messages whose sender and receiver are both outside `down` get through.
func without(_ down: Set<UInt64>) -> (PBFTEnvelope) -> Bool {
    return { e in
        if let a = e.from.replicaID, down.contains(a.rawValue) { return false }
        if let b = e.to.replicaID, down.contains(b.rawValue) { return false }
        return true
    }
}
