import ArgumentParser
import Foundation
import NIOPosix
import SynodClient
import SynodCore
import SynodCrypto
import SynodPBFT
import SynodStateMachine
import SynodTransport

/// `synod bft`: keys and client commands for a BFT-mode cluster (`synod serve --mode bft`).
struct BFTCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bft", abstract: "BFT mode: generate keys; put, get, delete and mesh commands through f+1 matching replies.",
        subcommands: [BFTKeygenCommand.self, BFTPutCommand.self, BFTGetCommand.self, BFTDelCommand.self, MeshCLI<BFTClientOptions>.self])
}

/// Reads a key file written by `synod bft keygen`.
func readKeyFile(_ path: String) throws -> (Principal, PBFTKeys) {
    guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read key file \(path)") }
    do { return try PBFTKeyring.decode(Array(data)) } catch { throw ValidationError("\(path): \(error)") }
}

struct BFTKeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen", abstract: "Generate keys for replicas 1...N and clients 1...M, one file per principal.",
        discussion: "Give each replica only its replica-N.key and each client only its client-N.key: a file holds its owner's secrets and everyone's public keys.")
    @Option(help: "Replicas (3f+1, at least 4).") var replicas: Int = 4
    @Option(help: "Client identities.") var clients: Int = 16
    @Option(help: "Directory for the key files (created; existing key files are not overwritten).") var out: String

    func validate() throws {
        guard (4...Limits.membersMax).contains(replicas) else { throw ValidationError("--replicas must be 4...\(Limits.membersMax)") }
        guard (1...10_000).contains(clients) else { throw ValidationError("--clients must be 1...10000") }
    }

    func run() throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: out, withIntermediateDirectories: true)
        let all = PBFTKeyring.generate(replicas: (1...replicas).map { NodeID(UInt64($0)) }, clients: (1...clients).map { ClientID(UInt64($0)) })
        for (p, _) in all where fm.fileExists(atPath: out + "/" + PBFTKeyring.fileName(p)) {
            throw fail("\(out)/\(PBFTKeyring.fileName(p)) exists; refusing to overwrite keys", status: 1)
        }
        for (p, keys) in all {
            let path = out + "/" + PBFTKeyring.fileName(p)
            guard fm.createFile(atPath: path, contents: Data(PBFTKeyring.encode(p, keys)), attributes: [.posixPermissions: 0o600]) else {
                throw fail("cannot write \(path)", status: 1)
            }
        }
        print("wrote \(replicas) replica and \(clients) client key files to \(out)")
    }
}

/// Options of the BFT client commands.
struct BFTClientOptions: ParsableArguments {
    @Option(help: "Every replica's client address in replica-id order. Default: $SYNOD_BFT_ENDPOINTS, else the `synod dev --mode bft` defaults.")
    var endpoints: String?
    @Option(name: .customLong("key-file"), help: "This client's key file (client-N.key). Default: $SYNOD_BFT_KEY.") var keyFile: String?
    @Option(help: "Give up after this many seconds (1...600).") var timeout: Int = 15
    @Option(name: [.customShort("w"), .customLong("write-out")], help: "Output format: simple or json.") var output: OutputFormat = .simple

    static let defaultEndpoints = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003,127.0.0.1:7004"

    func run<T>(_ body: (SynodBFTClient) async throws -> T) async throws -> T {
        guard (1...600).contains(timeout) else { throw ValidationError("--timeout must be 1...600 seconds") }
        guard let path = keyFile ?? ProcessInfo.processInfo.environment["SYNOD_BFT_KEY"] else { throw ValidationError("give --key-file (a client-N.key from `synod bft keygen`)") }
        let (principal, keys) = try readKeyFile(path)
        guard case let .client(id) = principal else { throw ValidationError("\(path) holds the keys of \(principal), not of a client") }
        var eps: [HostPort] = []
        for part in (endpoints ?? ProcessInfo.processInfo.environment["SYNOD_BFT_ENDPOINTS"] ?? Self.defaultEndpoints).split(separator: ",") {
            do { eps.append(try HostPort(parsing: String(part))) } catch { throw ValidationError("--endpoints: \(error)") }
        }
        var config = SynodBFTClient.Configuration(endpoints: eps, keys: keys, id: id)
        config.timeoutMillis = timeout * 1000
        let client: SynodBFTClient
        do { client = try SynodBFTClient(config, group: MultiThreadedEventLoopGroup.singleton) } catch { throw ValidationError("\(error)") }
        do {
            let r = try await body(client)
            await client.close()
            return r
        } catch let e as ClientError {
            await client.close()
            throw fail(e.description, status: ExitStatus.refused)
        } catch {
            await client.close()
            throw error
        }
    }
}

struct BFTPutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "put", abstract: "Put a value under a key (accepted on f+1 matching replies).")
    @OptionGroup var options: BFTClientOptions
    @Argument(help: "The key.") var key: String
    @Argument(help: "The value.") var value: String

    func run() async throws {
        let r = try await options.run { try await $0.put(bytes(key), bytes(value)) }
        if options.output == .json { print(JSON.object([("revision", "\(r.revision)")])) } else { print("OK") }
    }
}

struct BFTGetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Get a key's value (an ordered read, accepted on f+1 matching replies).")
    @OptionGroup var options: BFTClientOptions
    @Argument(help: "The key.") var key: String

    func run() async throws {
        guard let kv = try await options.run({ try await $0.get(bytes(key)) }) else {
            throw fail("key not found: \(key)", status: ExitStatus.notFound)
        }
        if options.output == .json { print(json(kv)) } else { print(text(kv.value)) }
    }
}

struct BFTDelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "del", abstract: "Delete a key; prints how many were deleted.")
    @OptionGroup var options: BFTClientOptions
    @Argument(help: "The key.") var key: String

    func run() async throws {
        let r = try await options.run { try await $0.delete(bytes(key)) }
        print(options.output == .json ? JSON.object([("deleted", "\(r.deleted)")]) : "\(r.deleted)")
    }
}
