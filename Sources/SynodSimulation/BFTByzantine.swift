import SynodCore
import SynodCrypto
import SynodPBFT

// Byzantine replicas: an ordinary core whose outgoing messages the simulator rewrites according
// to the replica's behaviour. They hold their own keys (so what they sign verifies) but no one
// else's.
extension BFTSimulation {
    func byzantineSend(_ i: Int, _ e: PBFTEnvelope, _ b: ByzantineBehaviour) {
        let auth = crypto[.replica(nodes[i].id)]!
        switch b {
        case .silent:
            return
        case .stallingPrimary:
            switch e.message {
            case .prePrepare, .newView: return
            default: send(e)
            }
        case .delayingPrimary:
            if case .prePrepare = e.message {
                nodes[i].delayed.append((now + BFTSimulation.byzantineDelayTicks, e))
            } else {
                send(e)
            }
        case .equivocatingPrimary:
            send(equivocated(i, e, auth))
        case .corruptAuthenticators:
            send(random.chance(1, in: 2) ? corrupted(e) : e)
            if random.chance(1, in: 4) {
                // Forge: the same message in another replica's name (our MAC key is not theirs).
                var forged = e
                forged.from = .replica(nodes[random.int(in: 0...(nodes.count - 1))].id)
                if forged.message.isMACed { forged.mac = auth.mac(forged.message.signedBytes, to: forged.to) }
                send(forged)
            }
        case .wrongDigests:
            send(wrongDigest(e, auth))
        case .replayOldMessages:
            send(e)
            remember(e, at: i)
        case .lyingCheckpoints:
            switch e.message {
            case var .checkpoint(c):
                c.stateDigest = Digest(randomBytes(32))
                c.signature = auth.sign(c.signedBytes)
                send(remac(PBFTEnvelope(from: e.from, to: e.to, message: .checkpoint(c)), auth))
            case var .stateTransfer(s):
                if !s.state.isEmpty { s.state[random.int(in: 0...(s.state.count - 1))] ^= 0x5A }
                send(remac(PBFTEnvelope(from: e.from, to: e.to, message: .stateTransfer(s)), auth))
            default:
                send(e)
            }
        case .bogusViewChanges:
            switch e.message {
            case var .viewChange(vc):
                let fake = fabricatedCertificate(i, view: vc.newView, after: vc.stableSequence, auth)
                vc.prepared.removeAll { $0.prePrepare.sequence == fake.prePrepare.sequence }
                vc.prepared.append(fake)
                vc.prepared.sort { $0.prePrepare.sequence < $1.prePrepare.sequence }
                vc.signature = auth.sign(vc.signedBytes)
                send(PBFTEnvelope(from: e.from, to: e.to, message: .viewChange(vc)))
            case var .newView(nv):
                if !nv.prePrepares.isEmpty {
                    nv.prePrepares[0].requests = []
                    nv.prePrepares[0].digest = auth.batchDigest([])
                    nv.prePrepares[0].signature = auth.sign(nv.prePrepares[0].signedBytes)
                }
                nv.signature = auth.sign(nv.signedBytes)
                send(PBFTEnvelope(from: e.from, to: e.to, message: .newView(nv)))
            default:
                send(e)
            }
        }
    }

    /// Backups with even ids get a different batch for each sequence number: either with its own
    /// digest (and this replica's prepares and commits follow that side's digest, so it votes on
    /// both sides), or under the original digest (which only a digest check catches).
    func equivocated(_ i: Int, _ e: PBFTEnvelope, _ auth: Ed25519HMACAuthenticator) -> PBFTEnvelope {
        guard case let .replica(to) = e.to, to.rawValue % 2 == 0 else { return e }
        switch e.message {
        case var .prePrepare(pp):
            if let alt = nodes[i].alternatives[pp.sequence], alt.view == pp.view {
                return PBFTEnvelope(from: e.from, to: e.to, message: .prePrepare(alt))
            }
            let keepDigest = random.chance(1, in: 2)
            pp.requests = pp.requests.count > 1 ? Array(pp.requests.reversed().dropFirst()) : []
            if !keepDigest {
                pp.digest = auth.batchDigest(pp.requests)
                pp.signature = auth.sign(pp.signedBytes)
            }
            nodes[i].alternatives[pp.sequence] = pp
            return PBFTEnvelope(from: e.from, to: e.to, message: .prePrepare(pp))
        case var .prepare(p):
            guard let alt = nodes[i].alternatives[p.sequence], alt.view == p.view else { return e }
            p.digest = alt.digest
            p.signature = auth.sign(p.signedBytes)
            return PBFTEnvelope(from: e.from, to: e.to, message: .prepare(p))
        case var .commit(c):
            guard let alt = nodes[i].alternatives[c.sequence], alt.view == c.view else { return e }
            c.digest = alt.digest
            return remac(PBFTEnvelope(from: e.from, to: e.to, message: .commit(c)), auth)
        default:
            return e
        }
    }

    /// Longer than the backups' first view-change timeout (24 ticks).
    static let byzantineDelayTicks = 40

    /// Per-tick mischief that does not wait for the core to send something.
    func byzantineActs() {
        for i in nodes.indices {
            guard let b = nodes[i].byzantine, let core = nodes[i].core else { continue }
            while let first = nodes[i].delayed.first, first.0 <= now {
                nodes[i].delayed.removeFirst()
                send(first.1)
            }
            let auth = crypto[.replica(nodes[i].id)]!
            if b == .replayOldMessages, !nodes[i].replayable.isEmpty, random.chance(1, in: 3) {
                var old = nodes[i].replayable[random.int(in: 0...(nodes[i].replayable.count - 1))]
                old.to = .replica(nodes[random.int(in: 0...(nodes.count - 1))].id)
                send(old)
            }
            if b == .bogusViewChanges, random.chance(1, in: 40) {
                let v = core.view.next
                var vc = ViewChange(newView: v, stableSequence: core.lowWatermark, checkpointProof: core.stableProof,
                                    prepared: [fabricatedCertificate(i, view: v, after: core.lowWatermark, auth)], replica: core.id)
                vc.prepared = vc.prepared.filter { $0.prePrepare.sequence <= core.lowWatermark.adding(core.config.logWindow) }
                vc.signature = auth.sign(vc.signedBytes)
                for n in nodes where n.id != core.id { send(PBFTEnvelope(from: .replica(core.id), to: .replica(n.id), message: .viewChange(vc))) }
                record("\(core.id) byzantine view-change for \(v)")
            }
        }
    }

    func remember(_ e: PBFTEnvelope, at k: Int) {
        if nodes[k].replayable.count >= BFTSimNode.replayableMax { nodes[k].replayable.removeFirst(BFTSimNode.replayableMax / 2) }
        nodes[k].replayable.append(e)
    }

    func randomBytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: random.next()) } }

    func remac(_ e: PBFTEnvelope, _ auth: Ed25519HMACAuthenticator) -> PBFTEnvelope {
        var out = e
        if e.message.isMACed { out.mac = auth.mac(e.message.signedBytes, to: e.to) }
        return out
    }

    /// Flips one byte of the MAC or of the embedded signature.
    func corrupted(_ e: PBFTEnvelope) -> PBFTEnvelope {
        var out = e
        func flip(_ b: inout [UInt8]) { if !b.isEmpty { b[random.int(in: 0...(b.count - 1))] ^= 0x01 } }
        switch e.message {
        case var .prePrepare(m): flip(&m.signature); out.message = .prePrepare(m)
        case var .prepare(m): flip(&m.signature); out.message = .prepare(m)
        case var .checkpoint(m): flip(&m.signature); out.message = .checkpoint(m)
        case var .viewChange(m): flip(&m.signature); out.message = .viewChange(m)
        case var .newView(m): flip(&m.signature); out.message = .newView(m)
        default: flip(&out.mac)
        }
        return out
    }

    /// Validly signed by this replica, with digests that do not match what they name.
    func wrongDigest(_ e: PBFTEnvelope, _ auth: Ed25519HMACAuthenticator) -> PBFTEnvelope {
        switch e.message {
        case var .prePrepare(m):
            m.digest = Digest(randomBytes(32))
            m.signature = auth.sign(m.signedBytes)
            return PBFTEnvelope(from: e.from, to: e.to, message: .prePrepare(m))
        case var .prepare(m):
            m.digest = Digest(randomBytes(32))
            m.signature = auth.sign(m.signedBytes)
            return PBFTEnvelope(from: e.from, to: e.to, message: .prepare(m))
        case var .commit(m):
            m.digest = Digest(randomBytes(32))
            return remac(PBFTEnvelope(from: e.from, to: e.to, message: .commit(m)), auth)
        default:
            return e
        }
    }

    /// A prepared certificate nobody prepared: a null pre-prepare "from" the primary of an earlier
    /// view, with prepares whose signatures are garbage.
    func fabricatedCertificate(_ i: Int, view: View, after h: SequenceNumber, _ auth: Ed25519HMACAuthenticator) -> PreparedCertificate {
        let config = nodes[i].durable.config
        let old = View(view.rawValue == 0 ? 0 : view.rawValue - 1)
        // Aim where it hurts: a sequence number some replicas may have executed and others not.
        let top = max(h.rawValue + 1, nodes[i].durable.lastExecuted.rawValue)
        let n = SequenceNumber(UInt64(random.int(in: Int(h.rawValue + 1)...Int(top + 1))))
        var pp = PrePrepare(view: old, sequence: n, digest: auth.batchDigest([]), requests: [], primary: config.primary(of: old))
        pp.signature = auth.sign(pp.signedBytes)
        let prepares = config.replicas.filter { $0 != pp.primary }.prefix(config.certificateQuorum - 1).map { r -> Prepare in
            var p = Prepare(view: old, sequence: n, digest: pp.digest, replica: r)
            p.signature = r == config.id ? auth.sign(p.signedBytes) : randomBytes(64)
            return p
        }
        return PreparedCertificate(prePrepare: pp, prepares: Array(prepares))
    }
}
