import SynodCore
import SynodPBFT
import SynodSimulation
import Testing

/// The Byzantine simulation (docs/PBFT.md): correct replicas agree on every executed sequence
/// number and every checkpoint, client results are linearizable, and a correct primary's view
/// returns once faults stop. The injected bugs show each check can fail.
@Suite("BFT simulation")
struct BFTSimulationTests {
    /// Short runs keep ≥ 300 seeds inside the DEBUG test budget; the CLI runs longer ones.
    static func options(_ seed: UInt64, nodes: Int = 4, byzantine: Int = 1, bugs: PBFTBugs = []) -> BFTSimulationOptions {
        var o = BFTSimulationOptions(seed: seed)
        o.nodes = nodes
        o.byzantine = byzantine
        o.safetyTicks = 150
        o.clients = 2
        o.bugs = bugs
        return o
    }

    static let chunks = 10
    static let seedsPerChunk: UInt64 = 30

    @Test("f=1: 300 seeds, no violations", arguments: 0..<chunks)
    func fOne(chunk: Int) {
        let first = UInt64(chunk) * Self.seedsPerChunk + 1
        for seed in first..<(first + Self.seedsPerChunk) {
            let r = BFTSimulation.run(Self.options(seed))
            #expect(r.passed, "seed \(seed) (\(r.byzantine)): \(r.violations.first ?? "")")
        }
    }

    @Test("f=2 (7 replicas): 12 seeds, no violations", arguments: 0..<2)
    func fTwo(chunk: Int) {
        for seed in UInt64(chunk * 6 + 1)...UInt64(chunk * 6 + 6) {
            let r = BFTSimulation.run(Self.options(seed, nodes: 7, byzantine: 2))
            #expect(r.passed, "seed \(seed) (\(r.byzantine)): \(r.violations.first ?? "")")
        }
    }

    /// 5 and 6 replicas tolerate f = 1 too, but only with quorums of ⌈(n+f+1)/2⌉ = 4: with
    /// 2f+1 = 3, two quorums could meet in the one Byzantine replica alone, and an equivocating
    /// primary got correct replicas to execute different requests at one sequence number (4 of
    /// the first 30 seeds at n = 5, 6 of 40 at n = 6, before `Quorum.byzantineQuorum` changed).
    @Test("sizes other than 3f+1 (5 and 6 replicas): 30 seeds each, no violations", arguments: [5, 6])
    func otherSizes(nodes: Int) {
        for seed in UInt64(1)...30 {
            var o = Self.options(seed, nodes: nodes)
            o.safetyTicks = 300
            let r = BFTSimulation.run(o)
            #expect(r.passed, "n=\(nodes) seed \(seed) (\(r.byzantine)): \(r.violations.first ?? "")")
        }
    }

    /// Mesh clients through pBFT: every replica applies their commands with the real state
    /// machine, checkpoints and state transfers carry its store, mesh invariants hold after every
    /// command a correct replica carries out, and answers come from f+1 matching replies.
    @Test("mesh clients: 40 seeds with three, no violations, commands answered")
    func meshClients() {
        var answered = 0, transfers = 0
        for seed in UInt64(1)...40 {
            var o = Self.options(seed)
            o.meshClients = 3
            let r = BFTSimulation.run(o)
            #expect(r.passed, "seed \(seed) (\(r.byzantine)): \(r.violations.first ?? "")")
            answered += r.meshCommandsCompleted
            transfers += r.stateTransfers
        }
        #expect(answered > 40 * 10, "mesh clients must make progress (\(answered))")
        #expect(transfers > 0, "some replica must catch up by state transfer, mesh state included")
    }

    @Test("a seed replays byte-identically")
    func replay() {
        var o = Self.options(7)
        o.recordTrace = true
        let a = BFTSimulation.run(o)
        let b = BFTSimulation.run(o)
        #expect(a.digest == b.digest)
        #expect(a.trace == b.trace)
        #expect(a.trace.count > 10)
        #expect(BFTSimulation.run(Self.options(8)).digest != a.digest)
    }

    /// Runs seeds until the first safety violation (agreement, checkpoint agreement or
    /// linearizability; liveness failures are skipped); returns its seed, or nil within `seedsMax`.
    static func firstViolation(bugs: PBFTBugs, behaviours: [ByzantineBehaviour], seedsMax: UInt64) -> (UInt64, String)? {
        for seed in 1...seedsMax {
            var o = options(seed, bugs: bugs)
            o.behaviours = behaviours
            let r = BFTSimulation.run(o)
            if let v = r.violations.first(where: { !$0.hasPrefix("liveness") }) { return (seed, v) }
        }
        return nil
    }

    @Test("injected bug: prepare/commit quorums of 2f are caught")
    func quorumOfTwoF() {
        let found = Self.firstViolation(bugs: .quorumOfTwoF, behaviours: [.equivocatingPrimary], seedsMax: 40)
        #expect(found != nil)
        if let (seed, v) = found { print("quorumOfTwoF caught at seed \(seed): \(v)") }
    }

    @Test("injected bug: skipping the digest check in prepare is caught")
    func skipDigest() {
        let found = Self.firstViolation(bugs: .skipPrepareDigestCheck, behaviours: [.equivocatingPrimary], seedsMax: 40)
        #expect(found != nil)
        if let (seed, v) = found { print("skipPrepareDigestCheck caught at seed \(seed): \(v)") }
    }

    @Test("injected bug: a NEW-VIEW that drops prepared certificates is caught")
    func dropPrepared() {
        let found = Self.firstViolation(bugs: .dropPreparedInNewView, behaviours: [.silent, .stallingPrimary], seedsMax: 60)
        #expect(found != nil)
        if let (seed, v) = found { print("dropPreparedInNewView caught at seed \(seed): \(v)") }
    }

    @Test("injected bug: skipping VIEW-CHANGE signature checks is caught")
    func skipViewChangeSignatures() {
        let found = Self.firstViolation(bugs: .skipViewChangeSignatureCheck, behaviours: [.bogusViewChanges], seedsMax: 60)
        #expect(found != nil)
        if let (seed, v) = found { print("skipViewChangeSignatureCheck caught at seed \(seed): \(v)") }
    }
}

/// A backup cut off alone long enough to time out changes views alone; the others keep theirs.
/// Once healed it must still execute what they decide (docs/PBFT.md, "A replica that changed
/// views alone"). Without that (`PBFTBugs.ignoreOlderViews`) it stays behind for good, which
/// the liveness check's "every correct replica caught up" reports.
@Suite("BFT simulation: lone view changes")
struct BFTLoneViewChangeTests {
    static func options(_ seed: UInt64, bugs: PBFTBugs = []) -> BFTSimulationOptions {
        var o = BFTSimulationTests.options(seed, byzantine: 0, bugs: bugs)
        o.safetyTicks = 300
        o.clientsSendToAll = true
        o.loneIsolationPerMille = 20
        return o
    }

    @Test("isolated backups: 40 seeds pass")
    func passes() {
        for seed in UInt64(1)...40 {
            let r = BFTSimulation.run(Self.options(seed))
            #expect(r.passed, "seed \(seed): \(r.violations.first ?? "")")
        }
    }

    /// Each half of following older views: the lone replica's observer, and its peers
    /// retransmitting to it what it missed while cut off.
    @Test("injected bugs: a lone replica left behind is caught", arguments: [PBFTBugs.ignoreOlderViews, .skipRetransmitToLaterView])
    func leftBehindIsCaught(bug: PBFTBugs) {
        var caught: (UInt64, String)?
        for seed in UInt64(1)...40 where caught == nil {
            let r = BFTSimulation.run(Self.options(seed, bugs: bug))
            if let v = r.violations.first { caught = (seed, v) }
        }
        print("bug \(bug.rawValue):", caught.map { "seed \($0.0): \($0.1)" } ?? "never")
        #expect(caught != nil)
    }
}
