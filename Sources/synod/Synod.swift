import ArgumentParser
import Foundation

@main
struct Synod: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synod",
        abstract: "Synod: a replicated key-value and coordination store.",
        discussion: """
            Start a local cluster with `synod dev`, or one node with `synod serve`. Client commands \
            take --endpoints (default: $SYNOD_ENDPOINTS, else the `synod dev` defaults) and -w json.
            """,
        version: SynodVersion.string,
        subcommands: [
            ServeCommand.self, DevCommand.self,
            PutCommand.self, GetCommand.self, DelCommand.self, TxnCommand.self, WatchCommand.self, LeaseCommand.self,
            LockCommand.self, ElectCommand.self, MemberCommand.self, AuthCLI.self, UserCLI.self, RoleCLI.self, CompactCommand.self, AlarmCommand.self, SnapshotCommand.self, StatusCommand.self, HashKVCommand.self, DefragCommand.self, HealthCommand.self,
            MeshCLI<GlobalOptions>.self, StorageCommand.self, SimCommand.self, BFTCommand.self,
        ]
    )

    /// Global options may come before the subcommand (`synod --endpoints X put k v`), as in
    /// etcdctl; ArgumentParser wants them after it, so move them there.
    static func main() async {
        // A closed stdout (`synod dev | head -1`) must make writes fail with EPIPE, which `say`
        // handles, not kill the process (and leave `dev`'s children running). NIO ignores
        // SIGPIPE too, but only once it opens a socket.
        signal(SIGPIPE, SIG_IGN)
        var args = Array(CommandLine.arguments.dropFirst())
        args = GlobalOptions.hoist(args)
        do {
            var command = try parseAsRoot(args)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

enum SynodVersion {
    static let string = "0.1.0"
}
