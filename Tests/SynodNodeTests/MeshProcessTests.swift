import Foundation
import SynodClient
import SynodCore
import SynodStateMachine
import SynodTestSupport
import Testing

extension RealProcessTests {
@Suite("Mesh coordination on a real cluster")
struct MeshProcessTests {
    @Test("synod mesh: agents join, a task is auctioned, a failure verdict moves it, across a leader kill; a stale proposal is refused")
    func meshThroughTheCLI() async throws {
        let cluster = try Cluster(size: 3)
        let eps = cluster.endpointsText
        func mesh(_ args: [String]) throws -> (Int32, String, String) { try runSynod(["--endpoints", eps, "mesh"] + args) }
        var joined = false
        for _ in 0..<100 where !joined {
            joined = try mesh(["join", "a", "--cap", "gpu", "--cap", "ssd", "--resources", "0.5"]).0 == 0
            if !joined { usleep(100_000) }
        }
        #expect(joined, "the cluster never accepted a mesh join: \(cluster.log(1).suffix(500))")
        for name in ["b", "c"] { #expect(try mesh(["join", name, "--cap", "gpu"]).0 == 0) }
        let (submitted, out, err) = try mesh(["submit", "render", "--requires", "ssd", "--requires", "gpu", "--cost", "0.25"])
        #expect(submitted == 0, "\(err)")
        #expect(out.contains("task render -> a"), "only a offers ssd: \(out)")

        // An agent learns its assignments by watching the tasks prefix (from the first revision,
        // so it sees every change of the task's holder). The leader is killed before the verdict.
        let client = cluster.client()
        defer { Task { await client.close() } }
        let watcher = Task { () throws -> [String?] in
            var holders: [String?] = []
            for try await e in client.watch(MeshKeys.tasksPrefix, rangeEnd: KeyRange.prefixEnd(MeshKeys.tasksPrefix), fromRevision: 1) {
                holders.append(try MeshTask.decode(e.kv.value).agent)
                if holders.count == 3 { break }
            }
            return holders
        }
        let leader = try #require(await cluster.leader(using: client), "no leader to kill")
        cluster.kill(leader)
        try cluster.start(leader)
        #expect(try mesh(["suspect", "a", "--by", "b"]).1.contains("mesh version"))
        let (verdict, verdictOut, _) = try mesh(["suspect", "a", "--by", "c", "-w", "json"])
        #expect(verdict == 0)
        #expect(verdictOut.contains("\"failed\":[\"a\"]"), "\(verdictOut)")
        // Neither b nor c offers ssd (50 % of the task's capabilities): it waits.
        #expect(verdictOut.contains("{\"task\":\"render\",\"from\":\"a\",\"to\":null}"), "\(verdictOut)")

        let view = try await client.meshView()
        #expect(view.agents.first { $0.name == "a" }?.failed == true)
        #expect(view.tasks == [MeshTask(id: "render", requires: ["gpu", "ssd"], cost: 250, sequence: 0, agent: nil)])
        #expect(view.violations().isEmpty)

        // Optimistic concurrency: a proposal against an older version is refused with its own exit status.
        let (stale, _, staleErr) = try mesh(["join", "d", "--cap", "ssd", "--cap", "gpu", "--if-version", "\(view.version - 1)"])
        #expect(stale != 0)
        #expect(staleErr.contains("the mesh is at version \(view.version)"), "\(staleErr)")
        let (fresh, freshOut, _) = try mesh(["join", "d", "--cap", "ssd", "--cap", "gpu", "--if-version", "\(view.version)"])
        #expect(fresh == 0)
        #expect(freshOut.contains("task render -> d"), "a capable agent joining takes the pending task: \(freshOut)")
        #expect(try await watcher.value == ["a", nil, "d"])
        let (shown, table, _) = try mesh(["show"])
        #expect(shown == 0)
        #expect(table.contains("agent a ") && table.contains("FAILED") && table.contains("task render  cost 0.25  [gpu,ssd]  on d"), "\(table)")
        // Routing: the live agents (a failed) own keys on a consistent-hash ring, as the library computes it.
        let (routed, route, routeErr) = try mesh(["route", "shard-7", "--replicas", "2", "-w", "json"])
        let owners = MeshRing(agents: ["b", "c", "d"]).owners(of: Array("shard-7".utf8), replicas: 2)
        #expect(routed == 0 && route.contains("\"owners\":[\"\(owners[0])\",\"\(owners[1])\"]"), "\(route)\(routeErr)")
        // Plain writes cannot forge mesh records.
        let (forged, _, forgedErr) = try runSynod(["--endpoints", eps, "put", "__synod/mesh/agents/x", "junk"])
        #expect(forged != 0 && forgedErr.contains("mesh commands only"), "\(forgedErr)")
        let (badArg, _, badErr) = try mesh(["report", "b", "--load", "1.5"])
        #expect(badArg != 0 && badErr.contains("between 0 and 1"), "\(badErr)")
    }

    @Test("synod mesh agent processes: a SIGKILLed agent misses heartbeats, the others suspect it, the verdict moves its tasks; SIGTERM leaves")
    func agentProcesses() async throws {
        let cluster = try Cluster(size: 3)
        let client = cluster.client()
        var agents: [String: Process] = [:]
        defer {
            for p in agents.values where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
            Task { await client.close() }
        }
        try await client.put(b("ready"), b("1"))
        func agentLog(_ name: String) -> String { cluster.meshAgentLog(name) }
        for name in ["a1", "a2", "a3"] { agents[name] = try cluster.startMeshAgent(name, suspectAfterMillis: 2500) }
        let joined = try await eventuallyAsync(tries: 100) { true == (try? await client.meshView().agents.count == 3) }
        #expect(joined, "agents never joined: \(agentLog("a1"))")
        for i in 1...6 { try await client.mesh(.submit(task: "t\(i)", requires: ["w"], cost: 100)) }
        let before = try await client.meshView()
        let onA1 = before.tasks.filter { $0.agent == "a1" }.map(\.id)
        #expect(onA1.count == 2, "the auction spreads equal tasks by load: \(before.tasks)")

        kill(agents["a1"]!.processIdentifier, SIGKILL)
        agents["a1"]!.waitUntilExit()
        let verdict = try await eventuallyAsync(tries: 200) {
            guard let v = try? await client.meshView() else { return false }
            return v.agents.first { $0.name == "a1" }?.failed == true && v.tasks.allSatisfy { $0.agent != nil && $0.agent != "a1" }
        }
        let after = try await client.meshView()
        #expect(verdict, "no verdict on a1: \(after.agents), a2 said: \(agentLog("a2"))")
        #expect(after.violations().isEmpty)
        #expect(agentLog("a2").contains("suspecting a1") || agentLog("a3").contains("suspecting a1"))
        let a2Tasks = after.tasks.filter { $0.agent == "a2" }.map(\.id).joined(separator: ",")
        let printed = try await eventually(tries: 50) { agentLog("a2").contains("a2: tasks [\(a2Tasks)]") }
        #expect(printed, "a2 should print its tasks [\(a2Tasks)]: \(agentLog("a2"))")

        // SIGSTOP: a3 freezes past --suspect-after-ms; a2, the only other live agent, suspects
        // it and the verdict moves a3's tasks to a2. On SIGCONT a3 finds it was declared failed,
        // joins again and prints its new (empty) task list — it must not carry on with tasks
        // that moved — and must not, with its stale view of who beat when, bring a verdict on a2.
        let a3 = agents["a3"]!.processIdentifier
        kill(a3, SIGSTOP)
        let frozenOut = try await eventuallyAsync(tries: 200) {
            guard let v = try? await client.meshView() else { return false }
            return v.agents.first { $0.name == "a3" }?.failed == true && v.tasks.allSatisfy { $0.agent == "a2" }
        }
        kill(a3, SIGCONT)
        #expect(frozenOut, "no verdict on the paused a3: \(agentLog("a2"))")
        let rejoined = try await eventuallyAsync(tries: 100) {
            guard let v = try? await client.meshView() else { return false }
            // Its last task list is empty (it may print it before or after noticing the verdict).
            let lists = agentLog("a3").split(separator: "\n").filter { $0.hasPrefix("a3: tasks ") }
            return v.agents.first { $0.name == "a3" }?.failed == false && lists.last == "a3: tasks []"
        }
        #expect(rejoined, "a3 should rejoin and drop its tasks: \(agentLog("a3"))")
        #expect(agentLog("a3").contains("a3: was declared failed; joined again"))
        try await Task.sleep(nanoseconds: 1_000_000_000)
        let healed = try await client.meshView()
        #expect(healed.agents.first { $0.name == "a2" }?.failed == false, "a2 is alive: \(healed.agents)")
        #expect(healed.tasks.allSatisfy { $0.agent == "a2" }, "\(healed.tasks)")
        #expect(healed.violations().isEmpty)

        // SIGTERM: the agent leaves, and its tasks go to the one left.
        kill(agents["a2"]!.processIdentifier, SIGTERM)
        agents["a2"]!.waitUntilExit()
        #expect(agents["a2"]!.terminationStatus == 0)
        #expect(agentLog("a2").contains("a2: left the mesh"))
        let final = try await client.meshView()
        #expect(final.agents.map(\.name) == ["a1", "a3"])
        #expect(final.tasks.allSatisfy { $0.agent == "a3" }, "\(final.tasks)")
    }

    @Test("synod mesh agent whose output pipe closes (| head -1) leaves the mesh and exits 0, instead of crashing")
    func agentLeavesWhenItsPipeCloses() async throws {
        let cluster = try Cluster(size: 3)
        let client = cluster.client()
        defer { Task { await client.close() } }
        try await client.put(b("ready"), b("1"))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        let synod = synodExecutable()
        p.arguments = ["-c", "'\(synod)' --endpoints \(cluster.endpointsText) mesh agent piped --heartbeat-ms 100 --suspect-after-ms 400 2>\(cluster.directory)/piped.err | head -1; exit ${PIPESTATUS:-0}"]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        // It joins (mesh version 1), prints one line (head exits), finds nobody reading on its
        // next line, and leaves (version 2).
        let left = try await eventuallyAsync(tries: 100) {
            guard let view = try? await client.meshView() else { return false }
            return view.version >= 2 && view.agents.isEmpty
        }
        let err = (try? String(contentsOfFile: "\(cluster.directory)/piped.err", encoding: .utf8)) ?? ""
        #expect(left, "the agent did not leave: \(err.prefix(400))")
        #expect(!err.contains("Fatal error"), "\(err.prefix(400))")
        p.waitUntilExit()
    }

    /// The coordination service itself goes down (two of three nodes frozen: no quorum) for
    /// twice `--suspect-after-ms`. Every agent's heartbeats stall, so each sees the others'
    /// counts stand still — but none of them failed, and when the quorum returns none may be
    /// declared failed: an observer counts silence only while it could see the mesh.
    @Test("a cluster outage longer than --suspect-after-ms brings no failure verdicts on agents that kept running")
    func outageBringsNoVerdicts() async throws {
        let cluster = try Cluster(size: 3)
        let client = cluster.client()
        var agents: [String: Process] = [:]
        defer {
            for p in agents.values where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
            Task { await client.close() }
        }
        try await client.put(b("ready"), b("1"))
        func agentLog(_ name: String) -> String { cluster.meshAgentLog(name) }
        for name in ["o1", "o2", "o3"] { agents[name] = try cluster.startMeshAgent(name, suspectAfterMillis: 1500, globalArgs: ["--timeout", "30"]) }
        let joined = try await eventuallyAsync(tries: 100) { true == (try? await client.meshView().agents.count == 3) }
        #expect(joined, "agents never joined: \(agentLog("o1"))")
        for i in 1...6 { try await client.mesh(.submit(task: "t\(i)", requires: ["w"], cost: 100)) }
        let before = try await client.meshView()
        try await Task.sleep(nanoseconds: 500_000_000)
        // No quorum for 3 s.
        guard let leader = await cluster.leader(using: client) else { throw BenchFailure("no leader") }
        let frozen = [leader, leader % 3 + 1]
        for n in frozen { cluster.pause(n) }
        try await Task.sleep(nanoseconds: 3_000_000_000)
        for n in frozen { cluster.resume(n) }
        // Give the agents several suspicion periods to (wrongly) act.
        try await Task.sleep(nanoseconds: 4_000_000_000)
        let after = try await client.meshView()
        let logs = agents.keys.sorted().map { "\($0): \(agentLog($0))" }.joined(separator: "\n")
        let running = agents.values.filter { $0.isRunning }.count
        #expect(running == 3, "an agent gave up: \(logs)")
        #expect(after.agents.allSatisfy { !$0.failed }, "verdicts after the outage: \(after.agents)\n\(logs)")
        #expect(!logs.contains("was declared failed"), "\(logs)")
        #expect(after.tasks.map(\.agent) == before.tasks.map(\.agent), "tasks moved: \(before.tasks) -> \(after.tasks)")
    }
}
}

extension Cluster {
    /// Starts `synod mesh agent NAME --cap w --heartbeat-ms 100` against this cluster, its output
    /// in `meshAgentLog(name)`; the caller stops it.
    func startMeshAgent(_ name: String, suspectAfterMillis: Int, globalArgs: [String] = []) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: synodExecutable())
        p.arguments = ["--endpoints", endpointsText] + globalArgs
            + ["mesh", "agent", name, "--cap", "w", "--heartbeat-ms", "100", "--suspect-after-ms", "\(suspectAfterMillis)"]
        FileManager.default.createFile(atPath: "\(directory)/\(name).out", contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(directory)/\(name).out"))
        p.standardError = p.standardOutput
        try p.run()
        return p
    }

    func meshAgentLog(_ name: String) -> String { (try? String(contentsOfFile: "\(directory)/\(name).out", encoding: .utf8)) ?? "" }
}
