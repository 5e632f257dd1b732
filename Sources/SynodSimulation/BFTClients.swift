import SynodCore
import SynodCrypto
import SynodPBFT
import SynodStateMachine

/// A correct simulated client: the pBFT client core plus the operation generator of Raft mode.
struct BFTSimClient {
    var client: PBFTClient
    var sim: SimClient
    var historyIndex: Int?
    var op: KVOp?
    var invokedAt = 0
    /// Operations still to start in the liveness phase.
    var livenessOpsLeft = 0

    /// Ticks after which the safety phase abandons an operation (outcome unknown).
    static let abandonTicks = 150
}

/// A Byzantine client: signs two different requests under one timestamp and sends one to half
/// the replicas and the other to the rest. At most one of them may take effect.
struct ByzantineClient {
    let id: ClientID
    let crypto: Ed25519HMACAuthenticator
    var timestamp: UInt64 = 0
}

extension BFTSimulation {
    func clientsAct() {
        for c in clients.indices {
            if clients[c].client.isBusy {
                clients[c].client.tick()
                if faultsOn && now - clients[c].invokedAt > BFTSimClient.abandonTicks {
                    record("c\(c + 1) gives up t=\(clients[c].client.timestamp) (outcome unknown)")
                    clients[c].client.abandon()
                    clients[c].historyIndex = nil
                }
            } else if (faultsOn && random.chance(1, in: 3)) || (!faultsOn && livenessWantsWork(c)) {
                if !faultsOn && clients[c].livenessOpsLeft > 0 { clients[c].livenessOpsLeft -= 1 }
                if clients[c].sim.isMesh {
                    invokeMesh(c)
                    for e in clients[c].client.takeMessages() { send(e) }
                    continue
                }
                var (op, _) = clients[c].sim.nextOperation(keys: options.keys, random: &random)
                let t = clients[c].client.timestamp + 1
                // Liveness-phase operations are writes: they must be ordered, so a view with a
                // correct primary has to be installed for them to finish.
                if !faultsOn { op = .put(key: op.key, value: UInt64(c + 1) * 1_000_000 + 500_000 + t) }
                let cmd = KVCommand(client: UInt64(c + 1), seq: t, op: op)
                _ = clients[c].client.invoke(cmd.encode(), readOnly: op.isRead)
                eventClock += 1
                history.append(HistoryOp(client: UInt64(c + 1), op: op, invoke: eventClock))
                clients[c].historyIndex = history.count - 1
                clients[c].op = op
                clients[c].invokedAt = now
                record("c\(c + 1) invoke t=\(t) \(op)")
            }
            for e in clients[c].client.takeMessages() { send(e) }
        }
        if faultsOn, byzantineClient != nil, random.chance(1, in: 12) { byzantineClientActs() }
    }

    /// In the liveness phase each client writes `livenessOpsPerClient` times, and keeps writing
    /// while no view with a correct primary is installed on 2f+1 correct replicas: requests are
    /// what drive view changes, so a replica left alone in a later view is joined only under load.
    func livenessWantsWork(_ c: Int) -> Bool {
        clients[c].livenessOpsLeft > 0 || (now % 10 == 0 && !isCorrectViewInstalled)
    }

    /// The client at `id`: KV clients are 1...clients, the Byzantine client (not in `clients`)
    /// comes next, then the mesh clients.
    func clientIndex(_ id: ClientID) -> Int? {
        let n = Int(id.rawValue)
        if (1...options.clients).contains(n) { return n - 1 }
        let m = n - options.clients - 2
        return (0..<options.meshClients).contains(m) ? options.clients + m : nil
    }

    /// A mesh client proposes a random mesh command (`MeshWorkload`) under a client session
    /// whose sequence is its pBFT timestamp (so a retransmission is answered once), carrying the
    /// mesh version the first correct replica has applied — possibly stale.
    func invokeMesh(_ c: Int) {
        let t = clients[c].client.timestamp + 1
        let id = clients[c].sim.id
        let version = nodes.first(where: \.isCorrect).flatMap { try? $0.mesh?.view().version } ?? 0
        let command = MeshWorkload.step(&random, version: version, calm: options.seed % 2 == 1)
        let payload = CommandEnvelope(session: ClientSession(clientID: id, sequence: t), command: command).encode()
        _ = clients[c].client.invoke(payload, readOnly: false)
        clients[c].historyIndex = nil
        clients[c].invokedAt = now
        record("c\(id) invoke t=\(t) mesh \(command)")
    }

    func clientReceived(_ c: Int, _ e: PBFTEnvelope) {
        guard let bytes = clients[c].client.step(e) else { return }
        if clients[c].sim.isMesh {
            guard let response = try? Response.decode(bytes) else { return fail("mesh client c\(clients[c].sim.id) accepted an undecodable answer") }
            meshCommandsCompleted += 1
            record("c\(clients[c].sim.id) complete mesh -> \(response)")
            return
        }
        guard let h = clients[c].historyIndex, let op = clients[c].op else { return }
        guard let result = BFTResultCodec.decode(bytes) else {
            fail("client c\(c + 1) accepted undecodable result")
            return
        }
        eventClock += 1
        history[h].complete = eventClock
        history[h].result = result
        clients[c].sim.saw(op, result)
        clients[c].historyIndex = nil
        record("c\(c + 1) complete \(op) -> \(result)")
    }

    /// Two puts under one timestamp, split across the replicas. Both enter the history with an
    /// unknown outcome: the checker may place either, neither, or (if the protocol were broken)
    /// both; exactly-once is checked by agreement on what executes.
    func byzantineClientActs() {
        guard var bc = byzantineClient else { return }
        bc.timestamp += 1
        let key = UInt8(random.int(in: 0...(options.keys - 1)))
        var requests: [Request] = []
        for variant in 0..<2 {
            let value = 900_000_000 + bc.timestamp * 2 + UInt64(variant)
            let op = KVOp.put(key: key, value: value)
            var r = Request(client: bc.id, timestamp: bc.timestamp, operation: KVCommand(client: bc.id.rawValue, seq: bc.timestamp, op: op).encode())
            r.signature = bc.crypto.sign(r.signedBytes)
            requests.append(r)
            eventClock += 1
            history.append(HistoryOp(client: bc.id.rawValue, op: op, invoke: eventClock))
        }
        for (k, n) in nodes.enumerated() {
            send(PBFTEnvelope(from: .client(bc.id), to: .replica(n.id), message: .request(requests[k % 2])))
        }
        record("byzantine \(bc.id) sends two requests under t=\(bc.timestamp)")
        byzantineClient = bc
    }
}
