import ArgumentParser

@main
struct Synod: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synod",
        abstract: "Synod: a replicated key-value and coordination store.",
        version: SynodVersion.string,
        subcommands: [StorageCommand.self, SimCommand.self]
    )
}

enum SynodVersion {
    static let string = "0.1.0"
}
