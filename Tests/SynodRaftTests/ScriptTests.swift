import SynodCore
@testable import SynodRaft
import Testing

/// Paper scenarios as interaction scripts: the expected text is the whole exchange.
@Suite struct ScriptTests {
    static let scriptNames = ["figure8", "prevote", "backtracking"]

    static func cluster(_ name: String) -> TestCluster {
        switch name {
        case "figure8":
            return TestCluster(size: 3) { $0.preVote = false; $0.checkQuorum = false; $0.appendNoopOnElection = false }
        case "prevote":
            return TestCluster(size: 3)
        default:
            return TestCluster(size: 3) { $0.preVote = false; $0.checkQuorum = false }
        }
    }

    @Test(arguments: scriptNames) func script(_ name: String) {
        let (script, expected) = ScriptTests.scripts[name]!
        let actual = InteractionScript.run(script, cluster: Self.cluster(name))
        if actual != expected { print("---- actual output of \(name) ----\n\(actual)\n----") }
        #expect(actual == expected)
    }
}
