import ArgumentParser
import Foundation
import SynodCore
import SynodLMDB
import SynodNode

/// `synod storage ...`: inspect and exercise a node's LMDB store.
struct StorageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storage",
        abstract: "Inspect, compact or self-check a node's LMDB store.",
        subcommands: [StorageCheck.self, StorageCompact.self, StorageSelfCheck.self, CrashWriter.self]
    )
}

/// Prints a store error the way an operator reads it, and exits 1.
func failStore(_ error: StoreError) -> ExitCode {
    FileHandle.standardError.write(Data("error: \(error.description)\n".utf8))
    return ExitCode(1)
}

struct StorageCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Open a store, verify the log is contiguous and decodes, and print a summary."
    )

    @Option(name: .long, help: "The node's data directory.")
    var data: String

    func run() throws {
        do {
            let store = try LMDBStore(directory: data, create: false)
            let first = try store.firstIndex(), last = try store.lastIndex()
            var index = first
            var count = 0
            while index <= last {
                let batch = try store.entries(from: index, upTo: min(last.next, index.advanced(by: 4096)), maxBytes: 16 << 20)
                count += batch.count
                index = batch.last!.index.next
            }
            let hs = try store.hardState()
            print("store \(data): format \(LMDBStore.formatVersion)")
            print("log: entries \(count) first \(first.rawValue) last \(last.rawValue) compacted \(try store.compactedPosition())")
            print("hard state: \(hs)")
            print("membership: \(try store.membership())")
            print("checkpoints: \(try store.checkpointIndexes().count)")
            print("map: \(store.environment.mapSizeBytes >> 20) MiB")
            print("ok")
        } catch {
            throw failStore(error)
        }
    }
}

/// `synod storage compact`: etcd's defragment, offline (`StorageCompaction`).
struct StorageCompact: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compact",
        abstract: "Shrink a stopped node's data.mdb to the pages it uses (etcd's defrag; the node must not be running).",
        discussion: "LMDB reuses freed pages but never returns them to the filesystem. This writes a compacted copy beside data.mdb, checks it opens, and renames it over the original. Refused while a node holds the directory."
    )

    @Option(name: .long, help: "The node's data directory.")
    var data: String

    func run() throws {
        do {
            let r = try StorageCompaction.compact(directory: data)
            print("compacted \(data)/data.mdb: \(r.bytesBefore) -> \(r.bytesAfter) bytes (\(r.bytesBefore >> 20) -> \(r.bytesAfter >> 20) MiB)")
        } catch let e as StoreError {
            throw failStore(e)
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

struct StorageSelfCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selfcheck",
        abstract: "Exercise a scratch store end to end (append, read, compact, snapshot, reopen) and report."
    )

    @Option(name: .long, help: "Scratch directory (created, then removed). Default: a new folder under /tmp.")
    var data: String?

    @Option(name: .long, help: "Entries to append (1...10000000).")
    var entries: Int = 100_000

    func validate() throws {
        guard (1...10_000_000).contains(entries) else { throw ValidationError("--entries must be 1...10000000, got \(entries)") }
    }

    func run() throws {
        let dir = data ?? "/tmp/synod-selfcheck-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let report = try SelfCheck.run(directory: dir, entries: entries)
            for line in report { print(line) }
            print("storage selfcheck: ok")
        } catch let e as StoreError {
            throw failStore(e)
        }
    }
}
