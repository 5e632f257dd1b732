import ArgumentParser
import SynodCrypto
import SynodSimulation

// `synod sim --mode bft`: the Byzantine simulation (docs/PBFT.md).
extension SimCommand {
    func bftOptions(seed: UInt64) -> BFTSimulationOptions {
        var o = BFTSimulationOptions(seed: seed)
        o.nodes = nodes
        o.byzantine = byzantine ?? (nodes - 1) / 3
        o.safetyTicks = steps
        o.clients = clients
        if let meshClients { o.meshClients = meshClients }
        o.recordTrace = trace
        if faults == "heavy" { o.loneIsolationPerMille = 10 }
        return o
    }

    func bftReplayCommand(_ s: UInt64) -> String {
        "synod sim --mode bft --nodes \(nodes) --byzantine \(byzantine ?? (nodes - 1) / 3) --steps \(steps) --clients \(clients)\(meshClients.map { " --mesh-clients \($0)" } ?? "")\(faults == "heavy" ? " --faults heavy" : "") --seed \(s) --trace"
    }

    func runBFT() throws {
        if cryptoRates {
            for r in CryptoBenchmark.run() {
                print("\(r.name): \(Int(r.perSecond))/s (\(r.operations) in \(Int(r.seconds * 1000)) ms)")
            }
            return
        }
        if let s = seed {
            let r = BFTSimulation.run(bftOptions(seed: s))
            if trace { for line in r.trace { print(line) } }
            let lin = r.linearizability.map { "\($0)" } ?? "not checked"
            print("bft nodes=\(nodes) byzantine=[\(r.byzantine.joined(separator: " "))] seed=\(s): ticks=\(r.ticks) executed=\(r.highestExecuted) stable=\(r.highestStable) view=\(r.view) ops=\(r.operationsCompleted) mesh-ops=\(r.meshCommandsCompleted) unknown=\(r.operationsUnknown) byzantine-client-requests=\(r.byzantineClientRequests) view-changes=\(r.viewChanges) state-transfers=\(r.stateTransfers) linearizability=\(lin) digest \(r.digest)")
            reportBFT(r)
            if !r.passed { throw ExitCode.failure }
            return
        }
        let n = seeds ?? 100
        var failed = 0
        for s in 1...UInt64(n) {
            let r = BFTSimulation.run(bftOptions(seed: s))
            if !r.passed {
                failed += 1
                reportBFT(r)
            }
        }
        print("bft nodes=\(nodes) byzantine=\(byzantine ?? (nodes - 1) / 3) seeds=1..\(n): \(n) runs, \(failed) violations")
        if failed > 0 { throw ExitCode.failure }
    }

    func reportBFT(_ r: BFTSimulationResult) {
        guard !r.passed else { return }
        print("seed \(r.seed) FAILED (byzantine: \(r.byzantine.joined(separator: " "))): \(r.violations.first ?? "")")
        for v in r.violations.dropFirst().prefix(4) { print("  also: \(v)") }
        print("  replay: \(bftReplayCommand(r.seed))")
    }
}
