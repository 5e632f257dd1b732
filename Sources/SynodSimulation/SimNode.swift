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

    init(id: NodeID, membership: Membership, keys: Int) {
        self.id = id
        disk = MemoryStore()
        try! disk.write(LogWrite(hardState: .initial, membership: membership))
        kv = KVStateMachine(keys: keys)
    }

    var isUp: Bool { core != nil }

    /// Rebuilds the volatile state from the disk alone, as a real restart would.
    mutating func start(config: RaftConfig, random: SeededRandom, keys: Int) {
        precondition(core == nil, "node already running")
        let state = try! RaftRestartState.load(from: disk, snapshot: durableSnapshot)
        core = RaftCore(config: config, random: random, restart: state)
        if let s = durableSnapshot {
            kv = try! KVStateMachine.decode(s.data)
        } else {
            kv = KVStateMachine(keys: keys)
        }
        readsWaiting = []
        checkedCommit = .zero
        lastRole = .follower
    }

    /// Crash: everything not on the disk is gone, including any `Ready` not yet persisted.
    mutating func crash() {
        core = nil
        readsWaiting = []
        writesInFlight = []
        crashSoon = false
    }
}
