import ArgumentParser
import Foundation
import SynodClient
import SynodCore
import SynodNode
import SynodStateMachine
import SynodTransport
import SynodWire

struct SnapshotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "snapshot", abstract: "Save, inspect or restore a snapshot of the cluster's state (backup).",
                                                    subcommands: [Save.self, Status.self, Restore.self])

    struct Save: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "save", abstract: "Save a consistent snapshot of the state to FILE.")
        @OptionGroup var globals: GlobalOptions
        @Argument(help: "File to write.") var file: String
        func run() async throws {
            let snapshot = try await withClient(globals) { try await $0.snapshot() }
            let bytes = snapshot.encode()
            // Named only once whole and on disk, as etcdctl does (`DurableFile`).
            do { try DurableFile.replace(file, with: bytes) } catch { throw fail("cannot write \(file): \(error)", status: 1) }
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
                    ? JSON.object([("file", JSON.string(file)), ("ok", "true"), ("revision", "\(s.revision)"), ("applied_index", "\(s.appliedIndex.rawValue)"), ("chunks", "\(s.chunks.count)"), ("records", "\(records)"),
                                   ("sha256", s.checksummed ? JSON.string(SnapshotFile.hex(s.digest)) : "null")])
                    : "snapshot \(file): ok; revision \(s.revision), applied index \(s.appliedIndex.rawValue), \(s.chunks.count) chunks, \(records) records, "
                      + (s.checksummed ? "sha256 \(SnapshotFile.hex(s.digest)) verified" : "no checksum (format 1)"))
            } catch {
                throw fail("\(file) is not a valid snapshot: \(error)", status: 1)
            }
        }
    }

    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "restore",
            abstract: "Create a new member's data directory from a snapshot file.",
            discussion: "Restores into a NEW cluster: run once per member, each with its own empty --data and the same --peers, then start every member with `synod serve` and those --peers. The key-value data, revisions, leases and sessions are kept; the old cluster's membership and member directory are not.")
        @Argument(help: "Snapshot file (from `synod snapshot save`).") var file: String
        @Option(help: "A new, empty data directory for this member.") var data: String
        @Option(help: "Every member of the new cluster as ID=host:port (peer addresses), as `serve` will be given.") var peers: String
        @Option(name: [.customShort("w"), .customLong("write-out")], help: "Output format: simple or json.") var output: OutputFormat = .simple

        func run() throws {
            let members: [(NodeID, HostPort)]
            do { members = try HostPort.parsePeers(peers) } catch { throw ValidationError("--peers: \(error)") }
            guard let bytes = FileManager.default.contents(atPath: file) else { throw fail("cannot read \(file)", status: 1) }
            let snapshot: SnapshotFile
            do { snapshot = try SnapshotFile.decode(Array(bytes), tableCount: KVStateMachine.tables.count).file } catch {
                throw fail("\(file) is not a valid snapshot: \(error)", status: 1)
            }
            let restored: SynodNode.Restored
            do { restored = try SynodNode.restore(snapshot, into: data, voters: members.map { $0.0 }) } catch {
                throw fail("cannot restore into \(data): \(error)", status: 1)
            }
            if output == .json {
                print(JSON.object([("data", JSON.string(data)), ("applied_index", "\(restored.position.index.rawValue)"), ("revision", "\(snapshot.revision)"),
                                   ("records", "\(restored.records)"), ("dropped_directory_entries", "\(restored.droppedDirectoryEntries)")]))
            } else {
                print("restored \(file) into \(data): \(restored.records) records, revision \(snapshot.revision), log starts after index \(restored.position.index.rawValue); "
                      + "start it with: synod serve --data \(data) --peers \(peers) --id <this member> --listen-client <host:port>")
            }
        }
    }
}
