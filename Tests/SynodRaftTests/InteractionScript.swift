import SynodCore
@testable import SynodRaft

/// A tiny interaction-script harness (after etcd-raft's datadriven `testdata/*.txt`): a script of
/// commands drives a `TestCluster`; the output (delivered messages, statuses) is compared with
/// the expected text, so a test shows the whole exchange the way the paper describes it.
///
/// Commands, one per line (`#` starts a comment):
///   campaign N · propose N TEXT · tick N [COUNT] · isolate N · heal · cut A B (one way)
///   restart N (crash and rebuild the core from its store: only persisted state survives)
///   stabilize (deliver everything, printing each delivered message) · status · log N
struct InteractionScript {
    var cluster: TestCluster
    var output: [String] = []

    init(cluster: TestCluster) { self.cluster = cluster }

    static func run(_ script: String, cluster: TestCluster) -> String {
        var s = InteractionScript(cluster: cluster)
        for raw in script.split(separator: "\n") {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let words = line.split(separator: " ").map(String.init)
            guard let command = words.first else { continue }
            s.output.append("> " + words.joined(separator: " "))
            s.execute(command, Array(words.dropFirst()))
        }
        return s.output.joined(separator: "\n")
    }

    mutating func execute(_ command: String, _ args: [String]) {
        let n = args.first.flatMap { UInt64($0) } ?? 0
        switch command {
        case "campaign": cluster[n].campaign()
        case "propose":
            do { try cluster[n].propose(Array((args.dropFirst().first ?? "").utf8)) } catch { output.append("error: \(error)") }
        case "tick": cluster.tick(n, times: args.count > 1 ? Int(args[1]) ?? 1 : 1)
        case "isolate": cluster.isolate(n)
        case "heal": cluster.heal()
        case "restart":
            let k = Int(n) - 1
            let state = try! RaftRestartState.load(from: cluster.stores[k], snapshot: nil)
            cluster.cores[k] = RaftCore(config: cluster.cores[k].config, random: SeededRandom(seed: n), restart: state)
        case "cut": cluster.cut.insert([n, UInt64(args[1])!])
        case "stabilize": stabilize()
        case "status":
            for core in cluster.cores {
                output.append("\(core.id) \(core.role) \(core.term) last=\(core.lastIndex.rawValue) commit=\(core.commitIndex.rawValue)")
            }
        case "log":
            let core = cluster[n]
            let entries = core.entries.map { "\($0.index.rawValue)@\($0.term.rawValue)\($0.kind == .noop ? "·noop" : "")" }
            output.append("\(core.id): " + entries.joined(separator: " "))
        default: output.append("unknown command \(command)")
        }
    }

    /// Like `TestCluster.stabilize`, printing every delivered message.
    mutating func stabilize() {
        for _ in 0..<1000 {
            cluster.processAllReady()
            if cluster.queue.isEmpty { return }
            let batch = cluster.queue
            cluster.queue = []
            for m in batch where !cluster.cut.contains([m.from.rawValue, m.to.rawValue]) {
                output.append("  \(m)")
                cluster.cores[Int(m.to.rawValue) - 1].step(m)
            }
        }
        output.append("did not stabilize")
    }
}
