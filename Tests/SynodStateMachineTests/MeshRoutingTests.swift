import SynodCore
@testable import SynodStateMachine
import Testing

@Suite("Mesh routing: consistent hashing with replication")
struct MeshRoutingTests {
    static let keys = (0..<10_000).map { Array("shard-\($0)".utf8) }
    static func agents(_ n: Int) -> [String] { (0..<n).map { "agent-\($0)" } }

    /// Every key's primary owner, by key.
    static func primaries(_ ring: MeshRing) -> [String] { keys.map { ring.owners(of: $0)[0] } }

    @Test("the ring is the same whatever order the agents come in, and the hash is pinned")
    func deterministic() {
        let a = MeshRing(agents: ["c", "a", "b", "a"])
        let b = MeshRing(agents: ["b", "c", "a"])
        #expect(a.agents == ["a", "b", "c"])
        for k in Self.keys.prefix(500) { #expect(a.owners(of: k, replicas: 3) == b.owners(of: k, replicas: 3)) }
        // Pinned: a change of hash reroutes every key of every deployed mesh.
        #expect(MeshRing.stableHash(Array("shard-1".utf8)) == 0xa99a_990f_d006_d40f)
        #expect(MeshRing.stableHash(Array("agent-0#0".utf8)) == 0xda7f_a5b3_22d9_93eb)
    }

    @Test("replicas are distinct live agents in preference order; fewer when fewer are live")
    func replicas() {
        let ring = MeshRing(agents: Self.agents(5))
        for k in Self.keys.prefix(1_000) {
            let owners = ring.owners(of: k, replicas: 3)
            #expect(owners.count == 3 && Set(owners).count == 3)
            #expect(ring.owners(of: k) == [owners[0]], "the primary is the first replica")
        }
        #expect(ring.owners(of: Self.keys[0], replicas: 9).count == 5)
        #expect(ring.owners(of: Self.keys[0], replicas: 0).count == 1)
        #expect(MeshRing(agents: []).owners(of: Self.keys[0], replicas: 3).isEmpty)
        // Failed agents own nothing.
        let view = MeshView(version: 1, agents: [MeshAgent(name: "a", capabilities: [], resources: 0),
                                                 MeshAgent(name: "b", capabilities: [], resources: 0, failed: true)], tasks: [])
        #expect(MeshRing(view).agents == ["a"])
        #expect(view.route("anything", replicas: 2) == ["a"])
    }

    @Test("keys spread evenly: each of 10 agents is primary for 10 % of keys, within a third")
    func balance() {
        let counts = Dictionary(grouping: Self.primaries(MeshRing(agents: Self.agents(10))), by: { $0 }).mapValues(\.count)
        #expect(counts.count == 10)
        for (agent, n) in counts.sorted(by: { $0.key < $1.key }) {
            #expect((667...1_333).contains(n), "\(agent) owns \(n) of 10,000 keys")
        }
    }

    /// The property that makes it consistent hashing: a join moves only keys to the newcomer,
    /// about 1/n of them; a departure moves only the leaver's keys. (`hash % n` fails both:
    /// about 90 % of keys move when an 11th agent joins.)
    @Test("a join moves about 1/n of the keys, all to the newcomer; a departure moves only the leaver's")
    func minimalMovement() {
        let before = Self.primaries(MeshRing(agents: Self.agents(10)))
        let joined = Self.primaries(MeshRing(agents: Self.agents(11)))
        let moved = zip(before, joined).filter { $0 != $1 }
        #expect(moved.allSatisfy { $0.1 == "agent-10" }, "a join may only move keys to the new agent")
        #expect((500...1_500).contains(moved.count), "\(moved.count) of 10,000 keys moved on a join")
        let left = Self.primaries(MeshRing(agents: Self.agents(10).filter { $0 != "agent-3" }))
        for (b, l) in zip(before, left) where b != l { #expect(b == "agent-3", "only the leaver's keys move") }
        // Replica sets shift by at most the changed agent too.
        let ring10 = MeshRing(agents: Self.agents(10)), ring11 = MeshRing(agents: Self.agents(11))
        for k in Self.keys.prefix(2_000) {
            let old = Set(ring10.owners(of: k, replicas: 3)), new = Set(ring11.owners(of: k, replicas: 3))
            #expect(new.subtracting(old).isSubset(of: ["agent-10"]) && old.subtracting(new).count <= 1)
        }
    }
}
