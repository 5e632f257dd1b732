import SynodCore

// Retransmission driven by STATUS messages (TOCS §5.2). The network may drop any message; a peer
// that reports less than we have gets what it needs again: the NEW-VIEW of our view, our
// VIEW-CHANGE, the log entries above its last executed sequence number, or our stable checkpoint
// proof (which lets it fetch state). Relaying signed messages is safe: receivers verify them.
extension PBFTReplica {
    mutating func onStatus(_ s: Status) {
        guard config.replicas.contains(s.replica), s.replica != config.id else { return }
        let peer = s.replica
        if s.view < view || (s.view == view && !s.viewActive) {
            if isViewActive, let nv = lastNewView, nv.view == view {
                send(.newView(nv), to: peer)
            } else if !isViewActive, let own = viewChanges[view]?[config.id] {
                send(.viewChange(own), to: peer)
            }
        }
        if s.view == view && !s.viewActive && !isViewActive, let own = viewChanges[view]?[config.id] {
            send(.viewChange(own), to: peer)
        }
        if s.lastExecuted < lowWatermark, !stableProof.isEmpty {
            for c in stableProof { send(.checkpoint(c), to: peer) }
        }
        // A peer installed in our view, or one changing to a later view alone while ours goes
        // on: its observer executes what 2f+1 of us committed here (`observeOlderView`), but
        // only from messages it receives — what it missed while cut off must come again, or it
        // stays behind until the next stable checkpoint (in a quiet cluster, for good).
        let samePage = s.view == view && s.viewActive
        let changingAlone = s.view > view && !s.viewActive && !config.bugs.contains(.skipRetransmitToLaterView)
        guard samePage || changingAlone, isViewActive else { return }
        var n = max(s.lastExecuted, lowWatermark).next
        while n <= highWatermark, let slot = slots[n] {
            if let pp = slot.prePrepare {
                send(.prePrepare(pp), to: peer)
                if let p = slot.prepares[config.id] { send(.prepare(p), to: peer) }
                if let c = slot.commits[config.id] { send(.commit(c), to: peer) }
            }
            n = n.next
        }
    }

    /// Read-only requests are answered only when no sequence number this replica prepared (and so
    /// may have sent COMMIT for) is still unexecuted. An accepted write was committed by f+1
    /// correct replicas before the read began; any 2f+1 read replies include one of them, which
    /// then answers from a state that contains the write (docs/PBFT.md).
    var canAnswerReads: Bool {
        guard fetch == nil, lowWatermark <= lastExecuted else { return false }
        return !slots.contains { $0.key > lastExecuted && $0.value.certificate != nil }
    }

    mutating func serveDeferredReads() {
        guard !deferredReads.isEmpty, canAnswerReads else { return }
        readOnlyOut.append(contentsOf: deferredReads)
        deferredReads = []
    }
}
