import Foundation
import SynodCore
import SynodLMDB
@testable import synod
import SynodTestSupport
import Testing

@Suite("Crash safety with real processes", .serialized)
struct CrashTests {
    static let cycles = 24

    /// A child appends batches and prints `acked N` once each commit returned; we SIGKILL it at a
    /// random moment, reopen the store and check that every acknowledged entry is present, intact
    /// and contiguous. The seed is printed so a failure can be replayed.
    @Test("no acknowledged entry is lost across SIGKILL")
    func sigkillCycles() throws {
        let (problems, cyclesWithAcks, highest) = try runCycles(injectAckBeforeCommit: false)
        #expect(problems.isEmpty, "\(problems.prefix(5))")
        #expect(cyclesWithAcks >= Self.cycles / 2, "most cycles should be killed mid-write, not before the first commit")
        print("crash test: \(Self.cycles) SIGKILL cycles, highest acknowledged index \(highest), problems \(problems.count)")
    }

    /// The check must be able to fail: a writer that acknowledges before committing loses
    /// acknowledged entries when killed, and the verifier must notice.
    @Test("the crash check catches a writer that acknowledges before it commits")
    func catchesAckBeforeCommit() throws {
        let (problems, _, _) = try runCycles(injectAckBeforeCommit: true)
        #expect(!problems.isEmpty, "an acknowledged-but-uncommitted entry went unnoticed")
        print("injected ack-before-commit: \(problems.count) problems found, first: \(problems.first ?? "-")")
    }

    private func runCycles(injectAckBeforeCommit: Bool) throws -> (problems: [String], cyclesWithAcks: Int, highest: UInt64) {
        let dir = scratchDirectory("crash")
        defer { removeDirectory(dir) }
        let seed = ProcessInfo.processInfo.environment["SYNOD_CRASH_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...1_000_000)
        print("crash test seed \(seed) (set SYNOD_CRASH_SEED=\(seed) to replay)")
        var rng = SeededRandom(seed: seed)
        var highestAcked: UInt64 = 0
        var cyclesWithAcks = 0
        var problems: [String] = []
        for cycle in 0..<Self.cycles {
            let child = Process()
            child.executableURL = URL(fileURLWithPath: synodExecutable())
            child.arguments = ["storage", "crash-writer", "--data", dir, "--batch-max", String(rng.int(in: 1...256)), "--seed", String(rng.next() % 1000)]
                + (injectAckBeforeCommit ? ["--inject-ack-before-commit"] : [])
            let out = Pipe()
            child.standardOutput = out
            child.standardError = FileHandle.nullDevice
            try child.run()
            usleep(UInt32(rng.int(in: 30_000...250_000)))
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
            if child.terminationReason != .uncaughtSignal { problems.append("cycle \(cycle): child exited by itself (status \(child.terminationStatus))") }
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            let acked = text.split(separator: "\n").compactMap { line -> UInt64? in
                guard line.hasPrefix("acked ") else { return nil }
                return UInt64(line.dropFirst(6))
            }
            if let last = acked.last {
                highestAcked = max(highestAcked, last)
                cyclesWithAcks += 1
            }
            problems += try verify(dir: dir, acked: highestAcked, cycle: cycle)
        }
        return (problems, cyclesWithAcks, highestAcked)
    }

    /// Reopens the store and lists every way it falls short of what was acknowledged.
    private func verify(dir: String, acked: UInt64, cycle: Int) throws -> [String] {
        var problems: [String] = []
        let store = try LMDBStore(directory: dir)
        let first = try store.firstIndex(), last = try store.lastIndex()
        if last.rawValue < acked { problems.append("cycle \(cycle): acknowledged \(acked) but the log ends at \(last.rawValue)") }
        if first.rawValue > acked + 1 && acked > 0 { problems.append("cycle \(cycle): compaction went past acknowledged entries") }
        let hs = try store.hardState()
        if hs.commit.rawValue < acked { problems.append("cycle \(cycle): hard state commit \(hs.commit.rawValue) < acknowledged \(acked)") }
        if hs.commit > last { problems.append("cycle \(cycle): hard state commit past the log end") }
        var index = first
        while index <= last {
            let batch = try store.entries(from: index, upTo: min(last.next, index.advanced(by: 2048)), maxBytes: .max)
            for e in batch {
                if e.index != index { problems.append("cycle \(cycle): log not contiguous at \(index.rawValue)") }
                if e.payload != CrashWriter.payload(e.index.rawValue) || e.term != CrashWriter.term(e.index.rawValue) {
                    problems.append("cycle \(cycle): entry \(e.index.rawValue) damaged")
                }
                index = e.index.next
            }
        }
        return problems
    }

    @Test("the CLI reports a bad data path in words and exits 1")
    func cliMessages() throws {
        let file = scratchDirectory("clifile")
        _ = FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        defer { removeDirectory(file) }
        let (status, _, err) = try runSynod(["storage", "check", "--data", file])
        #expect(status == 1)
        #expect(err.contains("is a file, not a directory"))
        let (status2, _, err2) = try runSynod(["storage", "selfcheck", "--entries", "0"])
        #expect(status2 != 0)
        #expect(err2.contains("--entries"))
    }

    @Test("storage check reads what crash-writer wrote")
    func checkCommand() throws {
        let dir = scratchDirectory("check")
        defer { removeDirectory(dir) }
        let (s1, _, _) = try runSynod(["storage", "crash-writer", "--data", dir, "--batches", "120", "--batch-max", "16"])
        #expect(s1 == 0)
        let (s2, out, _) = try runSynod(["storage", "check", "--data", dir])
        #expect(s2 == 0)
        #expect(out.contains("ok"))
    }
}
