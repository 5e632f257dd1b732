import ArgumentParser
import Foundation
import SynodCore
import SynodLMDB

/// The child process of the SIGKILL crash test: appends batches forever and prints
/// `acked <last index>` after each commit returned. Hidden from help; used by Tests/.
struct CrashWriter: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crash-writer",
        abstract: "Append batches until killed, printing each acknowledged index (crash tests).",
        shouldDisplay: false
    )

    @Option(name: .long, help: "Data directory.") var data: String
    @Option(name: .long, help: "Largest batch (1...4096).") var batchMax: Int = 64
    @Option(name: .long, help: "Seed for batch sizes.") var seed: UInt64 = 1
    @Option(name: .long, help: "Stop after this many batches (0 = never).") var batches: Int = 0
    /// Test-only bug injection: print `acked` before the commit, so a kill can lose an
    /// acknowledged entry. The crash test uses it to show its check can fail.
    @Flag(name: .long, help: .hidden) var injectAckBeforeCommit = false

    func validate() throws {
        guard (1...4096).contains(batchMax) else { throw ValidationError("--batch-max must be 1...4096") }
    }

    /// The payload every crash-test entry must carry: derived from its index, so a reader can
    /// check an entry is intact without any other record.
    static func payload(_ index: UInt64) -> [UInt8] {
        var x = index &* 0x9E37_79B9_7F4A_7C15
        return (0..<100).map { _ in x ^= x << 13; x ^= x >> 7; x ^= x << 17; return UInt8(truncatingIfNeeded: x) }
    }

    /// Term is derived from the index too.
    static func term(_ index: UInt64) -> Term { Term(1 + index / 1000) }

    func run() throws {
        var rng = SeededRandom(seed: seed)
        do {
            let store = try LMDBStore(directory: data)
            var next = try store.lastIndex().rawValue + 1
            var n = 0
            while batches == 0 || n < batches {
                let size = rng.int(in: 1...batchMax)
                let batch = (next..<(next + UInt64(size))).map { Entry(index: LogIndex($0), term: Self.term($0), payload: Self.payload($0)) }
                let last = next + UInt64(size) - 1
                let ack = Data("acked \(last)\n".utf8)
                if injectAckBeforeCommit { FileHandle.standardOutput.write(ack) }
                try store.write(LogWrite(entries: batch, hardState: HardState(term: Self.term(last), vote: NodeID(1), commit: LogIndex(last))))
                if !injectAckBeforeCommit { FileHandle.standardOutput.write(ack) }
                next = last + 1
                n += 1
                // Now and then compact, so crashes also land in the middle of prefix deletion.
                if n % 50 == 0, last > 500 { try store.deletePrefix(through: LogIndex(last - 500)) }
            }
        } catch {
            throw failStore(error)
        }
    }
}
