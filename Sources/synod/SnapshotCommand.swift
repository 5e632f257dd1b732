import ArgumentParser
import Foundation
import SynodClient
import SynodStateMachine
import SynodWire

struct SnapshotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "snapshot", abstract: "Save or inspect a snapshot of the cluster's state (backup).",
                                                    subcommands: [Save.self, Status.self])

    struct Save: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "save", abstract: "Save a consistent snapshot of the state to FILE.")
        @OptionGroup var globals: GlobalOptions
        @Argument(help: "File to write.") var file: String
        func run() async throws {
            let snapshot = try await withClient(globals) { try await $0.snapshot() }
            let bytes = snapshot.encode()
            do { try Data(bytes).write(to: URL(fileURLWithPath: file)) } catch { throw fail("cannot write \(file): \(error.localizedDescription)", status: 1) }
            if globals.output == .json {
                print(JSON.object([("file", JSON.string(file)), ("bytes", "\(bytes.count)"), ("revision", "\(snapshot.revision)"), ("applied_index", "\(snapshot.appliedIndex.rawValue)")]))
            } else {
                print("snapshot saved to \(file): \(bytes.count) bytes, revision \(snapshot.revision), applied index \(snapshot.appliedIndex.rawValue)")
            }
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "status", abstract: "Check a snapshot file and print what it holds.")
        @Argument(help: "Snapshot file.") var file: String
        @Option(name: [.customShort("w"), .customLong("write-out")], help: "Output format: simple or json.") var output: OutputFormat = .simple
        func run() throws {
            guard let data = FileManager.default.contents(atPath: file) else { throw fail("cannot read \(file)", status: 1) }
            do {
                let (s, records) = try SnapshotFile.decode(Array(data), tableCount: KVStateMachine.tables.count)
                print(output == .json
                    ? JSON.object([("file", JSON.string(file)), ("ok", "true"), ("revision", "\(s.revision)"), ("applied_index", "\(s.appliedIndex.rawValue)"), ("chunks", "\(s.chunks.count)"), ("records", "\(records)")])
                    : "snapshot \(file): ok; revision \(s.revision), applied index \(s.appliedIndex.rawValue), \(s.chunks.count) chunks, \(records) records")
            } catch {
                throw fail("\(file) is not a valid snapshot: \(error)", status: 1)
            }
        }
    }
}
