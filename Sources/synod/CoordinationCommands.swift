import ArgumentParser
import Foundation
import SynodClient
import SynodStateMachine
import SynodWire

struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "watch", abstract: "Print changes to a key (or prefix) as they happen, until Ctrl-C.",
                                                    discussion: "Each event prints three lines: PUT or DELETE, the key, the value. With --progress-notify or --request-progress, a progress notification prints one line, PROGRESS and the revision.")
    @OptionGroup var globals: GlobalOptions
    @Argument(help: "The key (or prefix with --prefix).") var key: String
    @Flag(help: "Watch every key starting with KEY.") var prefix = false
    @Option(help: "Start from this revision (replaying history); default: from now.") var rev: Int64 = 0
    @Option(help: "Stop after this many events (0: never).") var count: Int = 0
    @Flag(help: "Include the previous value.") var prevKV = false
    @Flag(help: "Ask for progress notifications: while nothing changes, the node says which revision the watch is current to (PROGRESS REV; etcd's --progress-notify).") var progressNotify = false

    @Flag(help: "Ask once, when the watch starts, which revision it is current to (PROGRESS REV once any history from --rev is printed; etcd's RequestProgress).") var requestProgress = false

    func run() async throws {
        let client = try globals.client()
        let end = prefix ? KeyRange.prefixEnd(bytes(key)) : []
        var seen = 0
        let watch = client.openWatch(bytes(key), rangeEnd: end, fromRevision: rev, prevKV: prevKV, progressNotify: progressNotify)
        let asking = requestProgress ? Task { await Self.askProgress(watch) } : nil
        defer { asking?.cancel() }
        do {
            for try await update in watch {
                guard case let .event(e) = update else {
                    if case let .progress(revision) = update {
                        say(globals.output == .json ? JSON.object([("type", JSON.string("PROGRESS")), ("revision", "\(revision)")]) : "PROGRESS \(revision)")
                    }
                    continue
                }
                if globals.output == .json {
                    say(JSON.object([("type", JSON.string(e.type == .put ? "PUT" : "DELETE")), ("revision", "\(e.revision)"), ("kv", json(e.kv)),
                                     ("prev_kv", e.prevKV.map(json) ?? "null")]))
                } else {
                    say(e.type == .put ? "PUT" : "DELETE")
                    say(text(e.kv.key))
                    say(text(e.kv.value))
                }
                seen += 1
                if count > 0 && seen >= count { break }
                if StandardOutput.isClosed.load(ordering: .relaxed) { break }   // nobody reads any more (`| head`)
            }
        } catch {
            await client.close()
            throw fail("\(error)", status: ExitStatus.refused)
        }
        await client.close()
    }

    /// Asks for progress until a node serving the watch takes the request (the watch may still
    /// be connecting, or moving to another node), for at most about 10 s.
    static func askProgress(_ watch: SynodWatch) async {
        for _ in 0..<100 where !Task.isCancelled {
            do {
                try await watch.requestProgress()
                return
            } catch ClientError.rejected(_, let message) {
                FileHandle.standardError.write(Data("error: progress request refused: \(message)\n".utf8))
                return
            } catch {
                try? await Task.sleep(nanoseconds: 100_000_000)
            }
        }
    }
}

struct LeaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "lease", abstract: "Grant, keep alive, revoke, inspect or list leases.",
                                                    subcommands: [Grant.self, KeepAlive.self, Revoke.self, TimeToLive.self, List.self])

    static func parseID(_ s: String) throws -> LeaseID {
        guard let v = UInt64(s, radix: 16), v > 0 else { throw ValidationError("'\(s)' is not a lease id (hexadecimal, as `lease grant` prints)") }
        return LeaseID(v)
    }

    struct Grant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "grant", abstract: "Grant a lease with a TTL in seconds; prints its id.")
        @OptionGroup var globals: GlobalOptions
        @Argument(help: "TTL in seconds (1...86400).") var ttl: Int64
        func validate() throws { guard (1...86_400).contains(ttl) else { throw ValidationError("TTL must be 1...86400 seconds") } }
        func run() async throws {
            let granted = try await withClient(globals) { try await $0.leaseGrantDetailed(ttlMillis: ttl * 1000) }
            let hex = String(granted.id.rawValue, radix: 16)
            // The cluster may have raised the TTL to its minimum; whole seconds, rounded up.
            let seconds = (granted.ttlMillis + 999) / 1000
            print(globals.output == .json ? JSON.object([("id", JSON.string(hex)), ("ttl", "\(seconds)")]) : "lease \(hex) granted with TTL(\(seconds)s)")
        }
    }

    struct KeepAlive: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "keepalive", abstract: "Keep a lease alive until Ctrl-C (or --once).")
        @OptionGroup var globals: GlobalOptions
        @Argument(help: "Lease id (hex).") var id: String
        @Flag(help: "Renew once and exit.") var once = false
        func run() async throws {
            let lease = try LeaseCommand.parseID(id)
            try await withClient(globals) { client in
                while true {
                    let ttl = try await client.leaseKeepAlive(lease)
                    print(globals.output == .json ? JSON.object([("id", JSON.string(id)), ("ttl", "\(ttl / 1000)")]) : "lease \(id) keepalived with TTL(\(ttl / 1000)s)")
                    if once { return }
                    try await Task.sleep(nanoseconds: UInt64(max(ttl / 3, 100)) * 1_000_000)
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Revoke a lease, deleting its keys.")
        @OptionGroup var globals: GlobalOptions
        @Argument(help: "Lease id (hex).") var id: String
        func run() async throws {
            let lease = try LeaseCommand.parseID(id)
            let deleted = try await withClient(globals) { try await $0.leaseRevoke(lease) }
            print(globals.output == .json ? JSON.object([("id", JSON.string(id)), ("deleted_keys", "\(deleted)")]) : "lease \(id) revoked (\(deleted) keys deleted)")
        }
    }

    struct TimeToLive: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "timetolive", abstract: "Show a lease's TTL and remaining time (and its keys with --keys); exit 1 if it does not exist.")
        @OptionGroup var globals: GlobalOptions
        @Argument(help: "Lease id (hex).") var id: String
        @Flag(help: "Also list the keys attached to it.") var keys = false
        func run() async throws {
            let lease = try LeaseCommand.parseID(id)
            guard let l = try await withClient(globals, { try await $0.lease(lease) }) else {
                throw fail("lease \(id) not found (expired or revoked)", status: ExitStatus.notFound)
            }
            let remaining = l.remainingMillis >= 0 ? "\(l.remainingMillis / 1000)s" : "?"
            if globals.output == .json {
                var fields = [("id", JSON.string(id)), ("ttl_ms", "\(l.ttlMillis)"), ("remaining_ms", "\(l.remainingMillis)")]
                if keys { fields.append(("keys", JSON.array(l.keys.map { JSON.string(text($0)) }))) }
                print(JSON.object(fields))
            } else {
                print("lease \(id) granted with TTL(\(l.ttlMillis / 1000)s), remaining(\(remaining))" + (keys ? ", attached keys([\(l.keys.map(text).joined(separator: " "))])" : ""))
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List leases with their TTL and remaining time.")
        @OptionGroup var globals: GlobalOptions
        func run() async throws {
            let leases = try await withClient(globals) { try await $0.leases() }
            if globals.output == .json {
                print(JSON.array(leases.map { JSON.object([("id", JSON.string(String($0.id.rawValue, radix: 16))), ("ttl_ms", "\($0.ttlMillis)"), ("remaining_ms", "\($0.remainingMillis)")]) }))
            } else {
                print("found \(leases.count) leases")
                for l in leases { print("\(String(l.id.rawValue, radix: 16))  ttl \(l.ttlMillis / 1000)s  remaining \(l.remainingMillis >= 0 ? "\(l.remainingMillis / 1000)s" : "?")") }
            }
        }
    }
}

struct LockCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lock", abstract: "Acquire a distributed lock; run a command while holding it, or hold until Ctrl-C.",
        discussion: "The command sees SYNOD_LOCK_TOKEN, the lock's fencing token (its key's create revision).")
    @OptionGroup var globals: GlobalOptions
    @Argument(help: "Lock name.") var name: String
    @Option(help: "Lease TTL in seconds: how long the lock outlives a crashed holder.") var ttl: Int64 = 10
    @Argument(parsing: .postTerminator, help: "Command to run while holding the lock (after --).") var command: [String] = []

    func run() async throws {
        let client = try globals.client()
        let (held, keepAlive) = try await client.lock(name, ttlMillis: ttl * 1000)
        say(globals.output == .json ? JSON.object([("name", JSON.string(name)), ("key", JSON.string(text(held.key))), ("fencing_token", "\(held.fencingToken)")])
            : "\(text(held.key)) acquired (fencing token \(held.fencingToken))")
        var status: Int32 = 0
        if command.isEmpty {
            await Signals.waitForTermination()
        } else {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = command
            p.environment = ProcessInfo.processInfo.environment.merging(["SYNOD_LOCK_TOKEN": "\(held.fencingToken)"]) { $1 }
            try p.run()
            p.waitUntilExit()
            status = p.terminationStatus
        }
        try await client.unlock(held, keepAlive: keepAlive)
        await client.close()
        if status != 0 { throw ExitCode(status) }
    }
}

struct ElectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "elect", abstract: "Campaign in election NAME with PROPOSAL and lead until Ctrl-C; or --show the leader.")
    @OptionGroup var globals: GlobalOptions
    @Argument(help: "Election name.") var name: String
    @Argument(help: "This candidate's value.") var proposal: String?
    @Flag(help: "Print the current leader's value and exit.") var show = false
    @Option(help: "Lease TTL in seconds.") var ttl: Int64 = 10

    func run() async throws {
        if show {
            let leader = try await withClient(globals) { try await $0.electionLeader(name) }
            guard let leader else { throw fail("election \(name) has no leader", status: ExitStatus.notFound) }
            print(globals.output == .json ? JSON.object([("name", JSON.string(name)), ("leader", JSON.string(text(leader.value))), ("token", "\(leader.createRevision)")]) : text(leader.value))
            return
        }
        guard let proposal else { throw ValidationError("give a PROPOSAL to campaign, or --show") }
        let client = try globals.client()
        let (held, keepAlive) = try await client.campaign(name, value: bytes(proposal), ttlMillis: ttl * 1000)
        say(globals.output == .json ? JSON.object([("name", JSON.string(name)), ("elected", JSON.string(proposal)), ("token", "\(held.fencingToken)")])
            : "elected: \(name) = \(proposal) (term token \(held.fencingToken))")
        await Signals.waitForTermination()
        try await client.resign(held, keepAlive: keepAlive)
        await client.close()
    }
}
