import ArgumentParser
import SynodClient
import SynodCore
import SynodTransport
import SynodWire

struct MemberCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "member", abstract: "List, add, promote, update or remove cluster members; move the leadership.",
        discussion: """
            To grow a cluster: start the new node with `synod serve --join --id N --peers <all, including itself> ...`, \
            then `synod member add N HOST:PEERPORT` (as a learner), wait until `synod status` shows it caught up, \
            then `synod member promote N`.
            """,
        subcommands: [List.self, Add.self, Promote.self, Update.self, Remove.self, MoveLeader.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List members and their roles.")
        @OptionGroup var globals: GlobalOptions
        func run() async throws {
            let members = try await withClient(globals) { try await $0.members() }
            if globals.output == .json {
                print(JSON.array(members.map { JSON.object([("id", "\($0.id.rawValue)"), ("role", JSON.string($0.role)),
                                                            ("peer_address", JSON.string($0.peerAddress)), ("client_address", JSON.string($0.clientAddress))]) }))
            } else {
                for m in members { print("\(m.id.rawValue)  \(m.role.padding(toLength: 8, withPad: " ", startingAt: 0))  peer \(m.peerAddress)  client \(m.clientAddress)") }
            }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add", abstract: "Add a member (as a learner unless --voter).")
        @OptionGroup var globals: GlobalOptions
        @Argument(help: "The new member's id (>= 1).") var id: UInt64
        @Argument(help: "The new member's peer address, host:port.") var peerAddress: String
        @Flag(help: "Add as a voter at once instead of as a learner.") var voter = false
        func validate() throws {
            guard id >= 1 else { throw ValidationError("member id must be at least 1") }
            do { _ = try HostPort(parsing: peerAddress) } catch { throw ValidationError("\(error)") }
        }
        func run() async throws {
            try await withClient(globals) { try await $0.addMember(NodeID(id), peerAddress: peerAddress, asLearner: !voter) }
            print(globals.output == .json ? JSON.object([("id", "\(id)"), ("added_as", JSON.string(voter ? "voter" : "learner"))]) : "member \(id) added as \(voter ? "voter" : "learner")")
        }
    }

    struct Promote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "promote", abstract: "Make a learner a voter.")
        @OptionGroup var globals: GlobalOptions
        @Argument(help: "Member id.") var id: UInt64
        func run() async throws {
            try await withClient(globals) { try await $0.promoteMember(NodeID(id)) }
            print(globals.output == .json ? JSON.object([("id", "\(id)"), ("promoted", "true")]) : "member \(id) promoted to voter")
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "update", abstract: "Give a member a new peer address (etcd's member update); then restart it listening there.")
        @OptionGroup var globals: GlobalOptions
        @Argument(help: "Member id.") var id: UInt64
        @Argument(help: "The member's new peer address, host:port.") var peerAddress: String
        func validate() throws {
            guard id >= 1 else { throw ValidationError("member id must be at least 1") }
            do { _ = try HostPort(parsing: peerAddress) } catch { throw ValidationError("\(error)") }
        }
        func run() async throws {
            try await withClient(globals) { try await $0.updateMember(NodeID(id), peerAddress: peerAddress) }
            print(globals.output == .json ? JSON.object([("id", "\(id)"), ("peer_address", JSON.string(peerAddress))]) : "member \(id) now at \(peerAddress)")
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove a member.")
        @OptionGroup var globals: GlobalOptions
        @Argument(help: "Member id.") var id: UInt64
        func run() async throws {
            try await withClient(globals) { try await $0.removeMember(NodeID(id)) }
            print(globals.output == .json ? JSON.object([("id", "\(id)"), ("removed", "true")]) : "member \(id) removed")
        }
    }

    struct MoveLeader: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "move-leader", abstract: "Hand leadership to voter ID (before maintenance on the leader's machine); returns once it leads.")
        @OptionGroup var globals: GlobalOptions
        @Argument(help: "Member id.") var id: UInt64
        func validate() throws { guard id >= 1 else { throw ValidationError("member id must be at least 1") } }
        func run() async throws {
            try await withClient(globals) { try await $0.moveLeader(to: NodeID(id)) }
            print(globals.output == .json ? JSON.object([("leader", "\(id)")]) : "leadership moved to member \(id)")
        }
    }
}
