import SynodCore
import SynodRaft

// Client behaviour and history recording.
extension Simulation {
    func clientsAct() {
        for c in clients.indices {
            if var p = clients[c].current {
                if now >= p.deadline {
                    p.attempts += 1
                    if faultsOn && p.attempts >= SimClient.attemptsMax {
                        record("c\(clients[c].id) gives up seq=\(p.seq) (outcome unknown)")
                        clients[c].current = nil
                        continue
                    }
                    clients[c].current = p
                    clients[c].target = (clients[c].target + 1) % nodes.count
                    submit(c)
                } else if let r = p.resubmitAt, now >= r {
                    submit(c)
                }
            } else if faultsOn && random.chance(1, in: 3) {
                if clients[c].isMesh {
                    invokeMesh(c)
                    continue
                }
                let (op, viaReadIndex) = clients[c].nextOperation(keys: options.keys, random: &random)
                eventClock += 1
                history.append(HistoryOp(client: clients[c].id, op: op, invoke: eventClock))
                clients[c].current = SimClient.Pending(historyIndex: history.count - 1, seq: clients[c].seq, work: .kv(op),
                                                       viaReadIndex: viaReadIndex, deadline: 0, resubmitAt: nil, attempts: 0)
                if random.chance(1, in: 4) {
                    // Some clients pick any node (a load balancer, a stale leader cache).
                    clients[c].target = random.int(in: 0...(nodes.count - 1))
                }
                record("c\(clients[c].id) invoke seq=\(clients[c].seq) \(op)\(viaReadIndex ? " readindex" : "") at n\(clients[c].target + 1)")
                submit(c)
            }
        }
    }

    /// Sends the client's current operation to its target node.
    func submit(_ c: Int) {
        guard var p = clients[c].current else { return }
        p.deadline = now + SimClient.timeoutTicks
        p.resubmitAt = nil
        let k = clients[c].target
        defer { clients[c].current = p }
        if nodes[k].isPaused {
            // The request waits in the paused node's socket.
            if !nodes[k].heldSubmits.contains(c) { nodes[k].heldSubmits.append(c) }
            return
        }
        guard var core = nodes[k].core else { return }
        do {
            if p.viaReadIndex {
                try core.readIndex(context: SimClient.context(client: clients[c].id, seq: p.seq))
            } else {
                try core.propose(clients[c].payload(p))
            }
            nodes[k].core = core
        } catch let error {
            // Follow the hint half of the time; otherwise try any node. Hints can be stale (a
            // removed node still names its old leader), and two stale hints must not trap a client.
            if case let .notLeader(hint) = error, !hint.isNone, random.chance(1, in: 2) {
                clients[c].target = Int(hint.rawValue) - 1
            } else {
                clients[c].target = random.int(in: 0...(nodes.count - 1))
            }
            p.resubmitAt = now + (error == .busy ? 5 : 1)
        }
    }

    func complete(client c: Int, _ result: KVResult) {
        guard let p = clients[c].current, case let .kv(op) = p.work else { return }
        eventClock += 1
        history[p.historyIndex].complete = eventClock
        history[p.historyIndex].result = result
        clients[c].saw(op, result)
        clients[c].current = nil
        record("c\(clients[c].id) complete seq=\(p.seq) \(op) -> \(result)")
    }

    /// A mesh client proposes a random mesh command (`MeshWorkload`), carrying the mesh version
    /// its target node last applied — possibly stale, as an agent's read can be.
    func invokeMesh(_ c: Int) {
        clients[c].seq += 1
        let version = (try? nodes[clients[c].target].mesh?.view().version) ?? 0
        let command = MeshWorkload.step(&random, version: version, calm: options.seed % 2 == 1)
        clients[c].current = SimClient.Pending(historyIndex: -1, seq: clients[c].seq, work: .mesh(command), viaReadIndex: false,
                                               deadline: 0, resubmitAt: nil, attempts: 0)
        record("c\(clients[c].id) invoke seq=\(clients[c].seq) mesh \(command)")
        submit(c)
    }
}
