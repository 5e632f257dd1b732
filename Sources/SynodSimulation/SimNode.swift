import SynodCore
import SynodRaft

/// One simulated server: a durable "disk" (a `MemoryStore` for log and hard state, plus the
/// latest snapshot) that survives crashes, and volatile state (the core, the state machine,
/// reads waiting to be served) that a crash discards.
struct SimNode {
    let id: NodeID
    // Durable.
    let disk: MemoryStore
    var durableSnapshot: Snapshot?
    // Volatile: nil core means the node is down.
    var core: RaftCore?
    var kv: KVStateMachine
    /// Synod's real state machine for the mesh clients' entries; nil when the run has none.
    var mesh: MeshReplica?
    /// The mesh bugs injected into `mesh` (nil: no mesh clients in this run).
    let meshBugs: MeshBugs?
    /// ReadIndex answers waiting for the state machine to catch up.
    var readsWaiting: [ReadState] = []
    /// Highest commit index already checked against the committed registry.
    var checkedCommit: LogIndex = .zero
    var lastRole: RaftRole = .follower
    var restartAt: Int = 0
    /// Ticks since this node's clock last ran an extra tick (clock drift).
    var ticksSinceExtra = 0
    /// A targeted crash is due at the next crash point.
    var crashSoon = false
    /// Asynchronous leader writes started and not yet on the disk, oldest first, each with the
    /// position it ends at and the tick it lands. Volatile: a crash loses them.
    var writesInFlight: [(write: LogWrite, entries: [Entry], prevTerm: Term, end: LogPosition?, due: Int)] = []
    /// Paused (a SIGSTOPped process) until this tick; 0 when running. A paused node neither
    /// ticks nor steps nor carries out its Ready.
    var pausedUntil = 0
    /// Ticks that passed while paused (its clock runs on; the process sees none of it).
    var pausedTicks = 0
    /// What reached a paused node: peer messages, and the clients (indexes) whose requests wait.
    var heldMessages: [Message] = []
    var heldSubmits: [Int] = []
    /// Paused as a TimeoutNow from this leader reached it.
    var pausedAsTargetOf: NodeID?
    /// ... and wakes the moment that leader gives the transfer up, which is then cut off
    /// (`FaultRates.isolateTransferSenderPerMille`).
    var wakesWhenSenderGivesUp = false
    /// The tick this node last woke from a pause (what it held arrives the tick after).
    var wokeAt = 0

    var isPaused: Bool { pausedUntil > 0 }

    init(id: NodeID, membership: Membership, keys: Int, meshBugs: MeshBugs?) {
        self.id = id
        disk = MemoryStore()
        try! disk.write(LogWrite(hardState: .initial, membership: membership))
        kv = KVStateMachine(keys: keys)
        self.meshBugs = meshBugs
        mesh = meshBugs.map { MeshReplica(bugs: $0) }
    }

    var isUp: Bool { core != nil }

    /// Rebuilds the volatile state from the disk alone, as a real restart would.
    mutating func start(config: RaftConfig, random: SeededRandom, keys: Int) {
        precondition(core == nil, "node already running")
        let state = try! RaftRestartState.load(from: disk, snapshot: durableSnapshot)
        core = RaftCore(config: config, random: random, restart: state)
        core!.snapshotCheck = Self.snapshotIntact
        if let s = durableSnapshot {
            restore(s)
        } else {
            kv = KVStateMachine(keys: keys)
            mesh = meshBugs.map { MeshReplica(bugs: $0) }
        }
        readsWaiting = []
        checkedCommit = .zero
        lastRole = .follower
    }

    /// Replaces both state machines with what snapshot `s` holds (checked by `snapshotIntact`
    /// before it got here).
    mutating func restore(_ s: Snapshot) {
        precondition(Self.snapshotIntact(s.data), "restoring a damaged snapshot")
        var r = ByteReader(Array(s.data.dropLast(8)))
        kv = try! KVStateMachine.decode(try! r.lengthPrefixed("kv state", limit: 1 << 24))
        mesh = try! meshBugs.map { try MeshReplica(snapshot: r.rest(), at: s.position.index, bugs: $0) }
    }

    /// This node's state as snapshot data (see `restore`), sealed with a checksum of the rest
    /// (the node seals with SHA-256; the simulator's damage faults flip bytes it must catch).
    func snapshotData() -> [UInt8] {
        var w = ByteWriter()
        w.lengthPrefixed(kv.encode())
        if let mesh { w.raw(try! mesh.snapshotBytes()) }
        var sealed = w.bytes
        let sum = Self.checksum(sealed[...])
        for k in 0..<8 { sealed.append(UInt8(truncatingIfNeeded: sum >> (8 * UInt64(k)))) }
        return sealed
    }

    /// The core's `snapshotCheck`: the seal matches.
    @Sendable static func snapshotIntact(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 8 else { return false }
        var sum: UInt64 = 0
        for (k, b) in bytes.suffix(8).enumerated() { sum |= UInt64(b) << (8 * UInt64(k)) }
        return checksum(bytes.dropLast(8)) == sum
    }

    static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        var h = FNV1a64()
        for b in bytes { h.add(byte: b) }
        return h.value
    }

    /// Crash: everything not on the disk is gone, including any `Ready` not yet persisted.
    mutating func crash() {
        core = nil
        readsWaiting = []
        writesInFlight = []
        crashSoon = false
        pausedUntil = 0
        pausedTicks = 0
        heldMessages = []
        heldSubmits = []
        pausedAsTargetOf = nil
        wakesWhenSenderGivesUp = false
    }
}
