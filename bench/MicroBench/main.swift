// synod-micro-bench: what each piece a write passes through costs on its own — the client
// command and frame codecs, the Raft append codec, three Raft cores agreeing on a batch, the
// LMDB log append, the KV apply — in one process, with no network and no fsync, so the
// cluster's per-put CPU (docs/BENCHMARKS.md) can be split into parts. Medians of rounds.
// Not a test: nothing here asserts a time.
import ArgumentParser
import Foundation
import NIOCore
import SynodCore
import SynodLMDB
import SynodRaft
import SynodStateMachine
import SynodWire

struct Options: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "synod-micro-bench", abstract: "Per-piece costs of a write: codecs, Raft cores, LMDB append, KV apply.")
    @Option(help: "Timed rounds per benchmark (the median is reported).") var rounds = 5
    @Option(help: "Entries per batch (per message, per transaction).") var batch = 64
    @Option(help: "Run only benchmarks whose name contains this.") var filter = ""
    @Flag(help: "One JSON object per benchmark.") var json = false

    func validate() throws {
        guard (1...50).contains(rounds), (1...4096).contains(batch) else { throw ValidationError("--rounds must be 1...50 and --batch 1...4096") }
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    exit(2)
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

let options = Options.parseOrExit()
var results: [(name: String, unit: String, ns: Double)] = []

/// Runs `body` (which performs `ops` operations) once to warm up, then `options.rounds` times,
/// and records the median nanoseconds per operation.
@MainActor func bench(_ name: String, unit: String, ops: Int, _ body: () throws -> Void) {
    guard options.filter.isEmpty || name.contains(options.filter) else { return }
    do {
        try body()
        var samples: [Double] = []
        for _ in 0..<options.rounds {
            let t0 = now()
            try body()
            samples.append((now() - t0) / Double(ops) * 1e9)
        }
        results.append((name, unit, samples.sorted()[samples.count / 2]))
    } catch {
        fail("\(name): \(error)")
    }
}

// The benchmark's request: an 8-byte key, a 256-byte value, a session (as synod-bench sends).
let key = Array("key00001".utf8)
let value = [UInt8](repeating: 0x61, count: 256)
@MainActor func putPayload(_ n: Int) -> [UInt8] {
    CommandEnvelope(session: ClientSession(clientID: 1 + UInt64(n % 100), sequence: UInt64(n / 100 + 1)),
                    command: .put(key: Array("key\(String(n % 100_000).leftPadded(5))".utf8), value: value, lease: nil, prevKV: false)).encode()
}
extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}

let n = options.batch
let loops = max(1, 20_000 / n)
let payloads = (0..<n).map(putPayload)
let entries = (0..<n).map { Entry(index: LogIndex(UInt64($0 + 1)), term: Term(1), payload: payloads[$0]) }

// MARK: codecs

let commands = (0..<n).map { i in
    CommandEnvelope(session: ClientSession(clientID: 1 + UInt64(i), sequence: 1),
                    command: .put(key: Array("key\(String(i).leftPadded(5))".utf8), value: value, lease: nil, prevKV: false))
}
bench("kv.command.encode", unit: "per put", ops: loops * n) {
    for _ in 0..<loops { for c in commands { _ = c.encode() } }
}
bench("kv.command.decode", unit: "per put", ops: loops * n) {
    for _ in 0..<loops { for p in payloads { _ = try CommandEnvelope.decode(p) } }
}
var frames = ByteBuffer()
for (i, p) in payloads.enumerated() { ClientRequest(id: UInt64(i), body: .write(p)).encode(into: &frames) }
bench("wire.client-request.encode", unit: "per request", ops: loops * n) {
    var buffer = ByteBuffer()
    buffer.reserveCapacity(frames.readableBytes)
    for _ in 0..<loops {
        buffer.clear()
        for (i, p) in payloads.enumerated() { ClientRequest(id: UInt64(i), body: .write(p)).encode(into: &buffer) }
    }
}
bench("wire.client-request.decode", unit: "per request", ops: loops * n) {
    for _ in 0..<loops {
        var b = frames
        while var frame = try FrameDecoder.next(from: &b, frameBytesMax: WireProtocol.clientFrameBytesMax) {
            _ = try ClientRequest.decode(&frame.payload)
        }
    }
}
var append = Message(type: .append, from: NodeID(1), to: NodeID(2), term: Term(1))
append.entries = entries
var appendBytes = ByteBuffer()
RaftCodec.encode(append, into: &appendBytes)
bench("wire.raft-append.encode", unit: "per entry", ops: loops * n) {
    var buffer = ByteBuffer()
    buffer.reserveCapacity(appendBytes.readableBytes)
    for _ in 0..<loops {
        buffer.clear()
        RaftCodec.encode(append, into: &buffer)
    }
}
bench("wire.raft-append.decode", unit: "per entry", ops: loops * n) {
    for _ in 0..<loops {
        var b = appendBytes
        _ = try RaftCodec.decode(&b)
    }
}

// MARK: Raft cores

/// Three cores in one process: messages delivered at once, persistence assumed (no store).
struct Trio {
    var cores: [RaftCore]
    init() throws {
        let members = try Membership(voters: [NodeID(1), NodeID(2), NodeID(3)])
        cores = (1...3).map { i in
            var c = RaftConfig(id: NodeID(UInt64(i)))
            c.entriesPerMessageMax = 512
            c.inflightMessagesMax = 64
            c.committedEntriesPerReadyMax = 4096
            c.uncommittedEntriesMax = 1 << 20
            return RaftCore(config: c, random: SeededRandom(seed: UInt64(i)),
                            restart: RaftRestartState(hardState: .initial, compacted: .zero, entries: [], membership: members, snapshot: nil))
        }
        var ticks = 0
        while cores[0].role != .leader {
            cores[0].tick()
            pump()
            ticks += 1
            guard ticks < 10_000 else { fail("no leader elected") }
        }
        pump()
    }
    /// Carries out every Ready of every core until none is left.
    mutating func pump() {
        var busy = true
        while busy {
            busy = false
            for i in cores.indices where cores[i].hasReady {
                busy = true
                let rd = cores[i].ready()
                cores[i].advance(rd)
                for m in rd.messages { cores[Int(m.to.rawValue) - 1].step(m) }
            }
        }
    }
}

var trio = try Trio()
bench("raft.three-cores.commit-batch", unit: "per entry", ops: loops * n) {
    for _ in 0..<loops {
        _ = trio.cores[0].propose(batch: payloads)
        trio.pump()
    }
}

// MARK: storage (no fsync: the disk's cost is measured by synod-bench and synod-lmdb-bench)

let directory = NSTemporaryDirectory() + "synod-micro-bench-\(getpid())"
defer { try? FileManager.default.removeItem(atPath: directory) }
var lmdbOptions = LMDBOptions()
lmdbOptions.unsafeNoSync = true
lmdbOptions.mapSizeBytes = 1 << 30
do {
    let log = try LMDBStore(directory: directory + "/log", options: lmdbOptions)
    var next: UInt64 = 1
    bench("lmdb.log-append", unit: "per entry", ops: loops * n) {
        for _ in 0..<loops {
            let batch = payloads.enumerated().map { Entry(index: LogIndex(next + UInt64($0.offset)), term: Term(1), payload: $0.element) }
            next += UInt64(n)
            try log.write(LogWrite(entries: batch, hardState: HardState(term: Term(1), vote: NodeID(1), commit: LogIndex(next - 1))))
        }
    }

    let state = try LMDBStore(directory: directory + "/state", tables: KVStateMachine.tables, options: lmdbOptions)
    let kv = try KVStateMachine(store: state)
    kv.prevValuesInEvents = false   // as a node applies while nobody watches
    var applied: UInt64 = 0
    bench("kv.apply.put", unit: "per put", ops: loops * n) {
        for _ in 0..<loops {
            // Numbered by log index, not by loop: every round's commands carry new session
            // sequences, so each one applies (repeated numbers would be answered from the session
            // table as retries, measuring the wrong path).
            let batch = (0..<n).map { i in Entry(index: LogIndex(applied + UInt64(i) + 1), term: Term(1), payload: putPayload(Int(applied) + i)) }
            applied += UInt64(n)
            _ = try kv.apply(batch)
        }
    }

    // Mesh: one heartbeat (`report`) at a small and at the largest mesh; every mesh command reads
    // the whole mesh (docs/MESH.md), so this is what an agent's heartbeat costs each replica.
    for (agents, tasks) in [(32, 128), (MeshLimits.agentsMax, MeshLimits.tasksMax)] {
        let store = try LMDBStore(directory: directory + "/mesh-\(agents)", tables: KVStateMachine.tables, options: lmdbOptions)
        let mesh = try KVStateMachine(store: store)
        mesh.prevValuesInEvents = false
        var index: UInt64 = 0
        func entries(_ commands: [MeshCommand]) -> [Entry] {
            commands.map { c in
                index += 1
                return Entry(index: LogIndex(index), term: Term(1), payload: CommandEnvelope(command: .mesh(c, ifVersion: nil)).encode())
            }
        }
        _ = try mesh.apply(entries((0..<agents).map { .join(agent: "agent-\($0)", capabilities: ["w"], resources: 1000) }))
        _ = try mesh.apply(entries((0..<tasks).map { .submit(task: "task-\($0)", requires: ["w"], cost: 1) }))
        let reports = 100
        bench("mesh.apply.report.\(agents)a-\(tasks)t", unit: "per heartbeat", ops: reports) {
            _ = try mesh.apply(entries((0..<reports).map { .report(agent: "agent-\($0 % agents)", load: 100, resources: nil) }))
        }
        // The full path every decision takes (load the mesh, decide, compare): a rebalance
        // with nothing to move.
        bench("mesh.apply.full-path.\(agents)a-\(tasks)t", unit: "per command", ops: 20) {
            _ = try mesh.apply(entries(Array(repeating: .rebalance, count: 20)))
        }
    }
} catch {
    fail("storage: \(error)")
}

if options.json {
    for r in results {
        print("{\"name\":\"\(r.name)\",\"unit\":\"\(r.unit)\",\"ns\":\(String(format: "%.1f", r.ns)),\"batch\":\(n),\"rounds\":\(options.rounds)}")
    }
} else {
    print("synod-micro-bench: batch \(n), median of \(options.rounds) rounds, no network, no fsync")
    for r in results {
        print("\(r.name.padding(toLength: 32, withPad: " ", startingAt: 0)) \(String(format: "%9.0f", r.ns)) ns \(r.unit)")
    }
}
