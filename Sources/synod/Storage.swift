import ArgumentParser
struct StorageCommand: ParsableCommand {}
