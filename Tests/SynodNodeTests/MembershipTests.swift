import Foundation
import SynodClient
import SynodCore
import SynodStateMachine
import SynodTestSupport
import SynodTransport
import Testing

extension RealProcessTests {
@Suite("Membership changes on a serving cluster")
struct NodeMembershipTests {
    /// Add a node as a learner, let it catch up, promote it, remove another voter, kill the
    /// removed node: the cluster keeps serving throughout, and the new member holds every write.
    @Test("add a learner, promote it, remove a voter, while serving")
    func addPromoteRemove() async throws {
        let cluster = try Cluster(size: 3, spare: 1)
        let client = cluster.client()
        defer { Task { await client.close() } }
        for i in 0..<50 { try await client.put(b("before-\(i)"), b("\(i)")) }
        try cluster.start(4)
        try await client.addMember(NodeID(4), peerAddress: "127.0.0.1:\(cluster.peerPort(4))", asLearner: true)
        let writer = Task {
            for i in 0..<200 { try await client.put(b("during-\(i)"), b("\(i)")) }
        }
        var members = try await client.members()
        #expect(members.first { $0.id == NodeID(4) }?.role == "learner")
        // Wait for the learner to catch up, then promote it.
        let node4 = SynodClient(ClientConfiguration(endpoints: [HostPort(host: "127.0.0.1", port: cluster.clientPort(4))]))
        defer { Task { await node4.close() } }
        var caughtUp = false
        for _ in 0..<200 where !caughtUp {
            caughtUp = (try? await node4.get(b("before-49"), consistency: .serializable))??.value == b("49")
            if !caughtUp { try await Task.sleep(nanoseconds: 50_000_000) }
        }
        #expect(caughtUp, "the learner never caught up: \(cluster.log(4).suffix(400))")
        try await client.promoteMember(NodeID(4))
        members = try await client.members()
        #expect(members.filter { $0.role == "voter" }.map(\.id.rawValue).sorted() == [1, 2, 3, 4])
        // Remove a voter that is not the leader, then stop it.
        let leader = await cluster.leader(using: client) ?? 1
        let victim = [1, 2, 3].first { $0 != leader }!
        try await client.removeMember(NodeID(UInt64(victim)))
        cluster.kill(victim)
        try await writer.value
        try await client.put(b("after"), b("done"))
        members = try await client.members()
        #expect(!members.contains { $0.id == NodeID(UInt64(victim)) }, "removed member still listed: \(members)")
        // The new member holds everything.
        var last: KeyValue?
        for _ in 0..<100 {
            last = try? await node4.get(b("after"), consistency: .serializable)
            if last != nil { break }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        #expect(last?.value == b("done"))
        #expect(try await node4.get(b("during-199"), consistency: .serializable)?.value == b("199"))
    }

    /// etcd's `move-leader`: the CLI returns once the target leads, writes go on through the move
    /// (the client retries what the transfer refused), moving to the leader itself is a no-op, and
    /// a non-member is refused.
    @Test("synod member move-leader hands leadership to the named voter while writes go on")
    func moveLeader() async throws {
        let cluster = try Cluster(size: 3)
        let client = cluster.client()
        defer { Task { await client.close() } }
        try await client.put(b("k"), b("0"))
        let leader = try #require(await cluster.leader(using: client))
        let target = leader % 3 + 1
        let writer = Task { for i in 0..<200 { try await client.put(b("during-\(i)"), b("\(i)")) } }
        let (status, out, err) = try runSynod(["member", "move-leader", "\(target)", "--endpoints", cluster.endpointsText])
        #expect(status == 0, "\(out) \(err)")
        #expect(out.contains("leadership moved to member \(target)"))
        #expect(try await client.status(of: cluster.endpoints[target - 1]).role == "leader")
        try await writer.value
        #expect(try await client.get(b("during-199"))?.value == b("199"))
        // To the leader itself: nothing to do. To a non-member: refused, exit 5.
        #expect(try runSynod(["member", "move-leader", "\(target)", "--endpoints", cluster.endpointsText]).0 == 0)
        let (refused, _, why) = try runSynod(["member", "move-leader", "9", "--endpoints", cluster.endpointsText])
        #expect(refused == 5 && why.contains("not a voter"), "\(why)")
    }

    /// `synod member update` (etcd's `member update`): nodes 1 and 2 reach node 3 through proxy
    /// A. After `member update 3 B` (B, a second proxy to node 3) A is cut both ways: writes
    /// still reach node 3 — through B, which every member now dials — and the member list names
    /// B. Without the update node 3 would be cut off. A non-member is refused.
    @Test("synod member update moves a member's peer address: the others dial it there")
    func updateMovesPeerAddress() async throws {
        var first: LinkProxy?
        let cluster = try Cluster(size: 3) { c in
            let a = try LinkProxy(listenPort: LoopbackPorts.freeBase(count: 1), targetPort: c.peerPort(3))
            c.proxies.append(a)
            first = a
            c.dialPort = { [unowned c] _, to in to == 3 ? a.listenPort : c.peerPort(to) }
        }
        let proxyA = try #require(first)
        let client = cluster.client()
        defer { Task { await client.close() } }
        try await client.put(b("before"), b("1"))
        let proxyB = try LinkProxy(listenPort: LoopbackPorts.freeBase(count: 1), targetPort: cluster.peerPort(3))
        cluster.proxies.append(proxyB)
        let moved = "127.0.0.1:\(proxyB.listenPort)"
        let (status, out, err) = try runSynod(["--endpoints", cluster.endpointsText, "member", "update", "3", moved])
        #expect(status == 0 && out.contains("member 3 now at \(moved)"), "\(out) \(err)")
        proxyA.setBlocked(forward: true, backward: true)
        proxyA.resetConnections()
        for i in 0..<20 { try await client.put(b("after-\(i)"), b("\(i)")) }
        let three = cluster.client(only: 3)
        defer { Task { await three.close() } }
        var reached = false
        for _ in 0..<50 where !reached {
            reached = (try? await three.get(b("after-19"), consistency: .serializable))?.value == b("19")
            if !reached { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(reached, "node 3 did not get the writes made after its move")
        #expect(proxyB.connectionsRelayed > 0)
        for n in 1...2 {
            let one = cluster.client(only: n)
            let members = try await one.members()
            await one.close()
            #expect(members.first { $0.id == NodeID(3) }?.peerAddress == moved, "node \(n): \(members)")
        }
        let (refused, _, why) = try runSynod(["--endpoints", cluster.endpointsText, "member", "update", "9", "127.0.0.1:1"])
        #expect(refused == 5 && why.contains("not in the cluster"), "\(why)")
    }

    /// Membership changes under the nemesis workload: node 4 joins as a learner and is promoted,
    /// the leader removes itself (it leads until the change commits, then steps down) and is
    /// stopped, and leadership moves to the newest member — all while clients put, read and
    /// compare-and-swap. The history must be linearizable and the three remaining members alike.
    @Test("a member added and promoted, the leader removed and leadership moved under load: history stays linearizable", arguments: [false, true])
    func membershipChurnUnderLoad(leaseReads: Bool) async throws {
        let cluster = try Cluster(size: 3, spare: 1, extraArgs: leaseReads ? ["--lease-reads"] : [])
        let remaining = Remaining()
        let run = try await NemesisRun.run(cluster, hashEndpoints: { remaining.endpoints(cluster) }, pinnedDeadlineMillis: 2_000) { ctx in
            var faults: [String] = []
            try await Task.sleep(nanoseconds: 300_000_000)
            try cluster.start(4)
            try await ctx.client.addMember(NodeID(4), peerAddress: "127.0.0.1:\(cluster.peerPort(4))", asLearner: true)
            let node4 = HostPort(host: "127.0.0.1", port: cluster.clientPort(4))
            let caughtUp = try await eventuallyAsync(tries: 100) {
                guard let leader = await cluster.leader(using: ctx.client),
                      let l = try? await ctx.client.status(of: HostPort(host: "127.0.0.1", port: cluster.clientPort(leader))),
                      let s = try? await ctx.client.status(of: node4) else { return false }
                return s.applied + 100 >= l.commit
            }
            #expect(caughtUp, "the learner never caught up: \(cluster.log(4).suffix(400))")
            try await ctx.client.promoteMember(NodeID(4))
            faults.append("added and promoted 4")
            try await Task.sleep(nanoseconds: 300_000_000)
            let leader = try #require(await cluster.leader(using: ctx.client))
            try await ctx.client.removeMember(NodeID(UInt64(leader)))
            remaining.remove(leader)
            faults.append("removed the leader \(leader)")
            // Until the others have a new leader, the removed one may still be asked: let them
            // elect, then stop it.
            let elected = try await eventuallyAsync(tries: 100) { await cluster.leader(using: ctx.client).map { $0 != leader } ?? false }
            #expect(elected, "no new leader after removing \(leader)")
            cluster.kill(leader)
            try await Task.sleep(nanoseconds: 300_000_000)
            try await ctx.client.moveLeader(to: NodeID(4))
            faults.append("moved leadership to 4")
            try await Task.sleep(nanoseconds: 300_000_000)
            return faults
        }
        print("lease reads \(leaseReads): \(run.faults); \(run.history.count) operations, \(run.completed) completed")
        #expect(run.faults.count == 3, "\(run.faults)")
        #expect(run.completed > 50)
        #expect(run.verdict == .linearizable, "\(run.faults)")
        #expect(run.hashKV.status == 0 && run.hashKV.output.contains("3 of 3 endpoints agree"), "hashkv: \(run.hashKV.output)")
        #expect(run.finalReadsCompleted, "final reads must succeed")
    }
}
}

/// The members a membership nemesis has left (node ids), for its final `hashkv`.
final class Remaining: @unchecked Sendable {
    private let lock = NSLock()
    private var removed: Set<Int> = []
    func remove(_ n: Int) { lock.lock(); removed.insert(n); lock.unlock() }
    func endpoints(_ cluster: Cluster) -> String {
        lock.lock(); defer { lock.unlock() }
        return (1...(cluster.size + cluster.spare)).filter { !removed.contains($0) }.map { "127.0.0.1:\(cluster.clientPort($0))" }.joined(separator: ",")
    }
}
