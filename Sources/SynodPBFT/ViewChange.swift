import SynodCore

// View changes (paper §4.4, §4.5.2): VIEW-CHANGE with the stable checkpoint proof and prepared
// certificates, NEW-VIEW with pre-prepares recomputed deterministically by every backup.
extension PBFTReplica {
    /// Most views a VIEW-CHANGE may jump ahead of ours and still be stored (bounds memory).
    static let viewChangeHorizon: UInt64 = 64

    /// Suspects the primary: moves to view `v` (not yet active), multicasts a signed VIEW-CHANGE,
    /// and doubles the timeout for the next attempt.
    mutating func startViewChange(to v: View) {
        guard v > view || (v == view && isViewActive == false && viewChanges[v]?[config.id] == nil) else { return }
        viewChangesStarted += 1
        view = v
        isViewActive = false
        lastNewView = nil
        var vc = ViewChange(newView: v, stableSequence: lowWatermark, checkpointProof: stableProof,
                            prepared: preparedCertificates(), replica: config.id)
        vc.signature = crypto.sign(vc.signedBytes)
        viewChanges[v, default: [:]][config.id] = vc
        viewChanges = viewChanges.filter { $0.key >= v }
        broadcast(.viewChange(vc))
        // The NEW-VIEW timer starts only once 2f+1 replicas want this view (paper §4.5.2): a
        // replica alone cannot race ahead through views. The next attempt waits twice as long.
        timerTicksLeft = nil
        newViewTimeoutTicks = timeoutTicks
        timeoutTicks = min(timeoutTicks * 2, config.viewChangeTimeoutTicksMax)
        armNewViewTimerIfQuorum()
        maybeSendNewView()
    }

    /// Starts the wait for NEW-VIEW once 2f+1 replicas (us included) asked for our view or a later
    /// one. The paper counts VIEW-CHANGEs for exactly our view; counting later views too keeps a
    /// replica from waiting forever when its view's quorum was split by a lost VIEW-CHANGE and a
    /// peer already moved on (found by the simulator: no timer left running anywhere).
    mutating func armNewViewTimerIfQuorum() {
        guard !isViewActive, timerTicksLeft == nil else { return }
        var askers = Set<NodeID>()
        for (v, byReplica) in viewChanges where v >= view { askers.formUnion(byReplica.keys) }
        guard askers.count >= config.certificateQuorum else { return }
        timerTicksLeft = newViewTimeoutTicks
    }

    /// The certificate of the highest view for every prepared sequence number above h, sorted.
    func preparedCertificates() -> [PreparedCertificate] {
        slots.filter { $0.key > lowWatermark && $0.value.certificate != nil }
            .sorted { $0.key < $1.key }
            .map { $0.value.certificate! }
    }

    mutating func onViewChange(_ vc: ViewChange) {
        guard config.replicas.contains(vc.replica), vc.replica != config.id,
              vc.newView >= view, vc.newView.rawValue <= view.rawValue + Self.viewChangeHorizon,
              viewChanges[vc.newView]?[vc.replica] == nil, validViewChange(vc) else { return }
        viewChanges[vc.newView, default: [:]][vc.replica] = vc
        // A replica that missed NEW-VIEW learns it again from a peer still changing to this view.
        if vc.newView == view, isViewActive, let nv = lastNewView { send(.newView(nv), to: vc.replica) }
        joinIfFPlusOneAhead()
        armNewViewTimerIfQuorum()
        maybeSendNewView()
    }

    /// f+1 replicas asking for views above ours cannot all be faulty: join the smallest of those
    /// views even before our own timer fires (paper §4.5.2, liveness).
    mutating func joinIfFPlusOneAhead() {
        var highest: [NodeID: View] = [:]
        for (v, byReplica) in viewChanges where v > view {
            for r in byReplica.keys where r != config.id { highest[r] = max(highest[r] ?? .zero, v) }
        }
        guard highest.count >= config.f + 1 else { return }
        let target = highest.values.sorted()[highest.count - (config.f + 1)]
        if target > view { startViewChange(to: target) }
    }

    /// A VIEW-CHANGE is valid if signed by its sender, its checkpoint proof has 2f+1 matching
    /// signed CHECKPOINTs, and every certificate is a validly signed pre-prepare of an earlier view
    /// inside the sender's window with 2f matching signed prepares from distinct backups.
    mutating func validViewChange(_ vc: ViewChange) -> Bool {
        let skipSignatures = config.bugs.contains(.skipViewChangeSignatureCheck)
        if !skipSignatures && !verify(vc.signature, of: vc.signedBytes, by: .replica(vc.replica)) { return false }
        if vc.stableSequence > .zero {
            guard vc.stableSequence.rawValue % config.checkpointInterval == 0,
                  vc.checkpointProof.count >= config.certificateQuorum,
                  vc.checkpointProof.count <= config.n else { return false }
            let digest = vc.checkpointProof[0].stateDigest
            var signers = Set<NodeID>()
            for c in vc.checkpointProof {
                guard c.sequence == vc.stableSequence, c.stateDigest == digest, config.replicas.contains(c.replica),
                      signers.insert(c.replica).inserted,
                      skipSignatures || verify(c.signature, of: c.signedBytes, by: .replica(c.replica)) else { return false }
            }
        }
        guard vc.prepared.count <= Int(config.logWindow) else { return false }
        var seen = Set<SequenceNumber>()
        for cert in vc.prepared {
            let pp = cert.prePrepare
            guard pp.view < vc.newView, pp.sequence > vc.stableSequence,
                  pp.sequence <= vc.stableSequence.adding(config.logWindow),
                  seen.insert(pp.sequence).inserted, validCertificate(cert, skipSignatures: skipSignatures) else { return false }
        }
        return true
    }

    mutating func validCertificate(_ cert: PreparedCertificate, skipSignatures: Bool) -> Bool {
        let pp = cert.prePrepare
        guard pp.primary == config.primary(of: pp.view), cert.prepares.count <= config.n else { return false }
        if !skipSignatures {
            guard verify(pp.signature, of: pp.signedBytes, by: .replica(pp.primary)), validBatch(pp) else { return false }
        }
        var signers = Set<NodeID>()
        for p in cert.prepares {
            guard p.view == pp.view, p.sequence == pp.sequence, p.digest == pp.digest, p.replica != pp.primary,
                  config.replicas.contains(p.replica), signers.insert(p.replica).inserted,
                  skipSignatures || verify(p.signature, of: p.signedBytes, by: .replica(p.replica)) else { return false }
        }
        return signers.count >= config.quorum - 1
    }

    /// The new primary, holding 2f+1 valid VIEW-CHANGEs for its view (its own included), sends
    /// NEW-VIEW and enters the view.
    mutating func maybeSendNewView() {
        guard !isViewActive, config.primary(of: view) == config.id,
              let byReplica = viewChanges[view], byReplica[config.id] != nil,
              byReplica.count >= config.certificateQuorum else { return }
        let chosen = byReplica.values.sorted { $0.replica < $1.replica }.prefix(config.certificateQuorum)
        var used = Array(chosen)
        if !used.contains(where: { $0.replica == config.id }) { used[used.count - 1] = byReplica[config.id]! }
        var pps = computePrePrepares(view: view, viewChanges: used, dropHighestCertificate: config.bugs.contains(.dropPreparedInNewView))
        for i in pps.indices { pps[i].signature = crypto.sign(pps[i].signedBytes) }
        var nv = NewView(view: view, viewChanges: used, prePrepares: pps, primary: config.id)
        nv.signature = crypto.sign(nv.signedBytes)
        broadcast(.newView(nv))
        enterView(nv)
    }

    /// The pre-prepares of NEW-VIEW, computed only from the view changes, so every backup gets the
    /// same answer: for each n in (min-s, max-s], the batch of the highest-view certificate, or a
    /// null request where no certificate exists.
    func computePrePrepares(view v: View, viewChanges: [ViewChange], dropHighestCertificate: Bool = false) -> [PrePrepare] {
        let minS = viewChanges.map(\.stableSequence).max() ?? .zero
        var best: [SequenceNumber: PrePrepare] = [:]
        for vc in viewChanges {
            for cert in vc.prepared where cert.prePrepare.sequence > minS {
                let pp = cert.prePrepare
                if let b = best[pp.sequence], b.view >= pp.view { continue }
                best[pp.sequence] = pp
            }
        }
        if dropHighestCertificate, let top = best.keys.max() { best[top] = nil } // injected bug
        let maxS = best.keys.max() ?? minS
        var out: [PrePrepare] = []
        var n = minS.next
        while n <= maxS {
            if let pp = best[n] {
                out.append(PrePrepare(view: v, sequence: n, digest: pp.digest, requests: pp.requests, primary: config.primary(of: v)))
            } else {
                out.append(PrePrepare(view: v, sequence: n, digest: crypto.batchDigest([]), requests: [], primary: config.primary(of: v)))
            }
            n = n.next
        }
        return out
    }

    /// A backup accepts NEW-VIEW for a view at least as new as its own if it is signed by that
    /// view's primary, carries 2f+1 valid VIEW-CHANGEs for it from distinct replicas, and its
    /// pre-prepares are exactly the ones those view changes determine.
    mutating func onNewView(_ nv: NewView) {
        guard nv.view > view || (nv.view == view && !isViewActive),
              nv.primary == config.primary(of: nv.view), nv.primary != config.id,
              nv.viewChanges.count >= config.certificateQuorum, nv.viewChanges.count <= config.n,
              nv.prePrepares.count <= Int(config.logWindow) + 1,
              verify(nv.signature, of: nv.signedBytes, by: .replica(nv.primary)) else { return }
        var senders = Set<NodeID>()
        for vc in nv.viewChanges {
            guard vc.newView == nv.view, config.replicas.contains(vc.replica), senders.insert(vc.replica).inserted,
                  validViewChange(vc) else { return }
        }
        // Under the injected bug every replica runs the same faulty rule, so backups agree with it.
        let expected = computePrePrepares(view: nv.view, viewChanges: nv.viewChanges,
                                          dropHighestCertificate: config.bugs.contains(.dropPreparedInNewView))
        guard expected.count == nv.prePrepares.count else { return }
        for (e, got) in zip(expected, nv.prePrepares) {
            guard e.sequence == got.sequence, e.digest == got.digest, e.requests == got.requests, e.view == got.view,
                  verify(got.signature, of: got.signedBytes, by: .replica(nv.primary)) else { return }
        }
        enterView(nv)
    }

    /// Installs view `nv.view`: adopts the newest stable checkpoint the view changes prove,
    /// accepts the re-issued pre-prepares, and replays messages held back for this view.
    mutating func enterView(_ nv: NewView) {
        view = nv.view
        isViewActive = true
        lastNewView = nv
        timerTicksLeft = nil
        viewChanges = viewChanges.filter { $0.key > view }
        if let top = nv.viewChanges.max(by: { $0.stableSequence < $1.stableSequence }), top.stableSequence > lowWatermark {
            if let own = ownCheckpoints[top.stableSequence], own.digest == top.checkpointProof[0].stateDigest {
                makeStable(top.stableSequence, proof: top.checkpointProof.sorted { $0.replica < $1.replica })
            } else if lastExecuted < top.stableSequence {
                beginStateFetch(top.stableSequence, digest: top.checkpointProof[0].stateDigest,
                                proof: top.checkpointProof.sorted { $0.replica < $1.replica })
            }
        }
        for k in slots.keys { slots[k]!.enter(view) }
        observed = [:]
        ordered = []
        lastAssigned = max(nv.prePrepares.last?.sequence ?? .zero, lastExecuted, lowWatermark)
        for pp in nv.prePrepares where pp.sequence > lowWatermark && pp.sequence <= highWatermark {
            acceptPrePrepare(pp)
        }
        let held = futureMessages
        futureMessages = []
        futureHeld = [:]
        for env in held {
            switch env.message {
            case let .prePrepare(m) where m.view >= view: step(env)
            case let .prepare(m) where m.view >= view: step(env)
            case let .commit(m) where m.view >= view: step(env)
            default: break
            }
        }
        armTimerIfNeeded()
        proposeBatches()
    }
}
