import SynodCore
import SynodRaft
import SynodStateMachine

/// A simulated client: one operation at a time, retried on timeout with the same session
/// sequence number (so the cluster applies it at most once), abandoned after a few attempts
/// during the safety phase (its outcome is then unknown).
struct SimClient {
    /// What a client asks: a KV operation (recorded in the history the linearizability checker
    /// reads), or a mesh client's command for Synod's real state machine.
    enum Work {
        case kv(KVOp)
        case mesh(Command)
    }

    struct Pending {
        /// The operation's place in the history (KV work only).
        var historyIndex: Int
        var seq: UInt64
        var work: Work
        /// Reads go through ReadIndex when true, through the log otherwise.
        var viaReadIndex: Bool
        var deadline: Int
        var resubmitAt: Int?
        var attempts: Int
    }

    static let timeoutTicks = 30
    static let attemptsMax = 4

    let id: UInt64
    /// A mesh client: proposes mesh commands (`MeshWorkload`) instead of KV operations.
    let isMesh: Bool
    var seq: UInt64 = 0
    var current: Pending?
    /// Index of the node this client talks to.
    var target: Int
    /// The last value this client saw for each key, to make compare-and-swap succeed sometimes.
    var lastSeen: [UInt64?]

    init(id: UInt64, target: Int, keys: Int, isMesh: Bool = false) {
        self.id = id
        self.isMesh = isMesh
        self.target = target
        lastSeen = Array(repeating: nil, count: keys)
    }

    /// The log entry payload proposing `p`.
    func payload(_ p: Pending) -> [UInt8] {
        switch p.work {
        case let .kv(op): return KVCommand(client: id, seq: p.seq, op: op).encode()
        case let .mesh(command): return CommandEnvelope(session: ClientSession(clientID: id, sequence: p.seq), command: command).encode()
        }
    }

    /// The ReadIndex context naming this client's read `seq`.
    static func context(client: UInt64, seq: UInt64) -> UInt64 { client << 32 | seq }
    static func split(context: UInt64) -> (client: UInt64, seq: UInt64) { (context >> 32, context & 0xFFFF_FFFF) }

    /// Draws a random operation on a small key space; written values are unique.
    mutating func nextOperation(keys: Int, random: inout SeededRandom) -> (KVOp, Bool) {
        seq += 1
        let key = UInt8(random.int(in: 0...(keys - 1)))
        let value = id * 1_000_000 + seq
        switch random.int(in: 0...9) {
        case 0...2: return (.put(key: key, value: value), false)
        case 3...5: return (.get(key: key), random.chance(1, in: 2))
        case 6: return (.delete(key: key), false)
        default: return (.compareAndSwap(key: key, expected: lastSeen[Int(key)], new: value), false)
        }
    }

    mutating func saw(_ op: KVOp, _ result: KVResult) {
        let k = Int(op.key)
        switch (op, result) {
        case let (.put(_, v), .ok): lastSeen[k] = v
        case let (.get, .value(v)): lastSeen[k] = v
        case (.delete, .deleted): lastSeen[k] = nil
        case let (.compareAndSwap(_, _, n), .swapped(true)): lastSeen[k] = n
        default: break
        }
    }
}
