/// Consistent-hash routing with replication (DESIGN.md §5): which live agents own a key — a
/// shard, a tenant, a stream — in preference order, so that everybody holding the same mesh
/// version routes the same way without a command, and a join or a departure moves only the keys
/// that agent gains or loses (about 1/n of them), not nearly all of them as `hash % n` would.
///
/// Each live (not failed) agent owns `MeshRing.pointsPerAgent` points on a 64-bit ring at
/// `stableHash(name#i)`; a key belongs to the agents owning the first points clockwise of
/// `stableHash(key)`, distinct agents only. The hash is fixed here (FNV-1a-64 finished with
/// MurmurHash3's fmix64), never Swift's per-process `Hasher`, and ties between equal points go to
/// the smaller name, so the ring is the same in every process and on every machine.
public struct MeshRing: Hashable, Sendable {
    /// Ring points per agent: more points spread keys more evenly (the share an agent gets
    /// varies by roughly 1/√points), at 16 bytes of ring each.
    public static let pointsPerAgent = 128
    /// Most owners one lookup returns.
    public static let replicasMax = 16

    /// (point, agent) sorted by point, then name.
    let points: [(UInt64, String)]
    /// The agents on the ring, sorted.
    public let agents: [String]

    public static func == (a: MeshRing, b: MeshRing) -> Bool { a.agents == b.agents }
    public func hash(into h: inout Hasher) { h.combine(agents) }

    /// The ring of `agents` (any order, duplicates ignored).
    public init(agents: [String]) {
        let names = Array(Set(agents)).sorted()
        var points: [(UInt64, String)] = []
        points.reserveCapacity(names.count * Self.pointsPerAgent)
        for name in names {
            for i in 0..<Self.pointsPerAgent { points.append((Self.stableHash(Array("\(name)#\(i)".utf8)), name)) }
        }
        points.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        self.points = points
        self.agents = names
    }

    /// The ring of a mesh's live agents.
    public init(_ view: MeshView) {
        self.init(agents: view.agents.filter { !$0.failed }.map(\.name))
    }

    /// Up to `replicas` distinct agents owning `key`, in preference order (the first is the
    /// primary). Fewer when fewer agents are live; empty when none are. `replicas` is clamped to
    /// 1...`replicasMax`.
    public func owners(of key: [UInt8], replicas: Int = 1) -> [String] {
        guard !points.isEmpty else { return [] }
        let want = min(max(replicas, 1), Self.replicasMax, agents.count)
        let h = Self.stableHash(key)
        // First point at or after h (binary search), wrapping past the end.
        var lo = 0, hi = points.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if points[mid].0 < h { lo = mid + 1 } else { hi = mid }
        }
        var out: [String] = []
        var i = lo
        while out.count < want {
            let name = points[i % points.count].1
            if !out.contains(name) { out.append(name) }
            i += 1
        }
        return out
    }

    /// FNV-1a-64 of `bytes`, finished with MurmurHash3's fmix64 so that similar inputs ("a#1",
    /// "a#2") land far apart. Fixed forever: changing it reroutes every key.
    public static func stableHash(_ bytes: [UInt8]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01b3
        }
        h ^= h >> 33
        h = h &* 0xff51_afd7_ed55_8ccd
        h ^= h >> 33
        h = h &* 0xc4ce_b9fe_1a85_ec53
        h ^= h >> 33
        return h
    }
}

extension MeshView {
    /// Up to `replicas` live agents owning `key`, in preference order (`MeshRing`). Build a
    /// `MeshRing(view)` once instead when routing many keys.
    public func route(_ key: String, replicas: Int = 1) -> [String] {
        MeshRing(self).owners(of: Array(key.utf8), replicas: replicas)
    }
}
