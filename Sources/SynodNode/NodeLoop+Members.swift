import Foundation
import SynodCore
import SynodRaft
import SynodStateMachine
import SynodTransport
import SynodWire

extension NodeLoop {
    /// Learns peer addresses replicated under `MemberDirectory.prefix` (at startup and as they apply).
    func loadMemberDirectory() {
        guard case let .range(r) = sm.range(RangeRequest.prefix(MemberDirectory.prefix)) else { return }
        for kv in r.kvs { learnAddress(kv) }
    }

    func learnAddress(_ kv: KeyValue) {
        guard let id = MemberDirectory.parse(key: kv.key), id != configuration.id,
              let address = try? HostPort(parsing: String(decoding: kv.value, as: UTF8.self)) else { return }
        transport.setPeer(id, address: address)
    }

    func noticeMemberEvents(_ events: [WatchEvent]) {
        for e in events where e.type == .put && e.kv.key.starts(with: MemberDirectory.prefix) { learnAddress(e.kv) }
    }

    func handleMember(_ body: [UInt8], _ id: UInt64, _ c: ClientConnection) {
        let request: MemberRequest
        do { request = try MemberRequest.decode(body) } catch {
            return respond(c, ClientResponse(id: id, status: .badRequest, message: "member: \(error)"))
        }
        if request.operation == .list { return respond(c, ClientResponse(id: id, status: .ok, body: MemberInfo.encode(memberList()))) }
        guard core.role == .leader else { return respond(c, notLeader(id)) }
        guard !request.node.isNone else { return respond(c, ClientResponse(id: id, status: .badRequest, message: "member id must be at least 1")) }
        if request.operation == .moveLeader { return moveLeader(to: request.node, id, c) }
        if request.operation == .update { return updateMember(request.node, peerAddress: request.peerAddress, id, c) }
        let change: MembershipChange
        switch request.operation {
        case .addLearner, .addVoter:
            guard let address = try? HostPort(parsing: request.peerAddress) else {
                return respond(c, ClientResponse(id: id, status: .badRequest, message: "peer address '\(request.peerAddress)' is not host:port"))
            }
            // Replicate the address first (so every node, and any future leader, can reach the
            // new member), and dial it now so this leader can send it the log.
            transport.setPeer(request.node, address: address)
            let put = CommandEnvelope(command: .put(key: MemberDirectory.key(request.node), value: Array(address.description.utf8), lease: nil, prevKV: false))
            do { _ = try core.propose(put.encode()) } catch { return respond(c, refusal(error, id)) }
            change = request.operation == .addLearner ? .addLearner(request.node) : .addVoter(request.node)
        case .promote: change = .promoteLearner(request.node)
        case .remove: change = core.membership.learners.contains(request.node) ? .removeLearner(request.node) : .removeVoter(request.node)
        case .list, .moveLeader, .update: return
        }
        do {
            let position = try core.proposeMembershipChange(change)
            pendingWrites[position.index.rawValue] = Pending(term: position.term, connection: c, requestID: id)
        } catch {
            respond(c, refusal(error, id))
        }
    }

    /// `synod member update ID HOST:PORT` (etcd's `member update`): replicates member `node`'s
    /// new peer address through the member directory; each node moves its link to it when the
    /// entry applies (`learnAddress`), and a restarted node reads it back. Answered once it is
    /// committed. The member itself must listen there (restart it with the new address).
    func updateMember(_ node: NodeID, peerAddress: String, _ id: UInt64, _ c: ClientConnection) {
        let m = core.membership
        guard m.voters.contains(node) || m.learners.contains(node) || m.outgoingVoters.contains(node) else {
            return respond(c, ClientResponse(id: id, status: .badRequest, message: "member \(node.rawValue) is not in the cluster"))
        }
        guard let address = try? HostPort(parsing: peerAddress) else {
            return respond(c, ClientResponse(id: id, status: .badRequest, message: "peer address '\(peerAddress)' is not host:port"))
        }
        let put = CommandEnvelope(command: .put(key: MemberDirectory.key(node), value: Array(address.description.utf8), lease: nil, prevKV: false))
        do {
            let position = try core.propose(put.encode())
            pendingWrites[position.index.rawValue] = Pending(term: position.term, connection: c, requestID: id)
        } catch {
            respond(c, refusal(error, id))
        }
    }

    func memberList() -> [MemberInfo] {
        let m = core.membership
        var addresses: [NodeID: String] = [:]
        for (id, address) in transport.peerAddresses { addresses[id] = address.description }
        addresses[configuration.id] = configuration.peerAddress?.description ?? ""
        func info(_ id: NodeID, _ role: String) -> MemberInfo {
            MemberInfo(id: id, role: role, peerAddress: addresses[id] ?? "", clientAddress: address(of: id))
        }
        var out = m.voters.map { info($0, "voter") }
        out += m.outgoingVoters.filter { !m.voters.contains($0) }.map { info($0, "outgoing") }
        out += m.learners.map { info($0, "learner") }
        return out
    }
}

extension NodeLoop {
    /// How long a `move-leader` waits for its target to lead: three election timeouts (the core
    /// abandons a transfer after one; the target's campaign takes about one more).
    var leaderTransferSeconds: Double { 3 * Double(configuration.electionTimeoutTicks * configuration.tickMillis) / 1000 }

    /// `synod member move-leader` (etcd's `move-leader`, Raft dissertation §3.10): the leader stops
    /// taking proposals, brings `target` up to date and tells it to campaign at once. Answered
    /// when `target` leads, or refused if it does not within `leaderTransferSeconds`.
    func moveLeader(to target: NodeID, _ id: UInt64, _ c: ClientConnection) {
        if target == configuration.id { return respond(c, ClientResponse(id: id, status: .ok)) }
        guard leaderTransfer == nil else {
            return respond(c, ClientResponse(id: id, status: .busy, message: "a leadership transfer is in progress; retry"))
        }
        guard core.membership.voters.contains(target) else {
            return respond(c, ClientResponse(id: id, status: .badRequest, message: "member \(target.rawValue) is not a voter: only a voter can lead"))
        }
        do { try core.transferLeadership(to: target) } catch { return respond(c, refusal(error, id)) }
        leaderTransfer = (target, c, id, ProcessInfo.processInfo.systemUptime + leaderTransferSeconds)
        logger.notice("moving leadership", metadata: ["to": "\(target.rawValue)"])
    }

    /// Answers the waiting `move-leader` once its target leads, or when it ran out of time.
    func checkLeaderTransfer(_ now: Double) {
        guard let t = leaderTransfer else { return }
        if core.role != .leader && core.leader == t.target {
            respond(t.connection, ClientResponse(id: t.requestID, status: .ok, leader: t.target, leaderAddress: address(of: t.target)))
        } else if now >= t.deadline {
            let who = core.role == .leader ? "this node still leads" : (core.leader.isNone ? "no leader yet" : "member \(core.leader.rawValue) leads")
            respond(t.connection, ClientResponse(id: t.requestID, status: .badRequest,
                                                 message: "leadership did not move to \(t.target.rawValue) within \(Int(leaderTransferSeconds * 1000)) ms (\(who)); is it up and caught up?"))
        } else {
            return
        }
        leaderTransfer = nil
    }
}
