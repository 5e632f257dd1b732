import ArgumentParser
import Foundation
import SynodClient
import SynodTransport
import SynodWire

/// Output format of client commands.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case simple, json
}

/// Options every client command takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "Comma-separated client addresses (host:port). Default: $SYNOD_ENDPOINTS, else 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003.")
    var endpoints: String?

    @Option(name: [.customShort("w"), .customLong("write-out")], help: "Output format: simple or json.")
    var output: OutputFormat = .simple

    @Option(name: .long, help: "TLS: CA certificates (PEM) the nodes' certificates chain to (turns TLS on). Default: $SYNOD_CACERT.") var cacert: String?
    @Option(name: .long, help: "TLS: this client's certificate (PEM), for nodes that require one. Default: $SYNOD_CERT.") var cert: String?
    @Option(name: .long, help: "TLS: the client certificate's private key (PEM). Default: $SYNOD_KEY.") var key: String?
    @Option(name: .long, help: "Give up after this many seconds of retrying (1...600).")
    var timeout: Int = 15
    @Option(name: .long, help: "Auth: authenticate as this user, NAME or NAME:PASSWORD (etcdctl's --user). Default: $SYNOD_USER.")
    var user: String?
    @Option(name: .long, help: "Auth: the password, when --user gives only the name. Default: $SYNOD_PASSWORD.")
    var password: String?

    static let defaultEndpoints = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
    static let names: Set<String> = ["--endpoints", "-w", "--write-out", "--timeout", "--cacert", "--cert", "--key", "--user", "--password"]

    /// The credentials `--user` and `--password` (or $SYNOD_USER and $SYNOD_PASSWORD) give, if any.
    func credentials() throws -> Credentials? {
        let environment = ProcessInfo.processInfo.environment
        guard let given = user ?? environment["SYNOD_USER"] else {
            if password != nil { throw ValidationError("--password needs --user") }
            return nil
        }
        var name = given
        var secret = password ?? environment["SYNOD_PASSWORD"]
        if let colon = given.firstIndex(of: ":") {
            name = String(given[..<colon])
            secret = String(given[given.index(after: colon)...])
        }
        guard !name.isEmpty else { throw ValidationError("--user needs a user name (NAME or NAME:PASSWORD)") }
        guard let secret else { throw ValidationError("--user \(name) needs a password: --user NAME:PASSWORD, --password or $SYNOD_PASSWORD") }
        return Credentials(user: name, password: secret)
    }

    func parsedEndpoints() throws -> [HostPort] {
        let text = endpoints ?? ProcessInfo.processInfo.environment["SYNOD_ENDPOINTS"] ?? Self.defaultEndpoints
        var out: [HostPort] = []
        for part in text.split(separator: ",") {
            do { out.append(try HostPort(parsing: String(part))) } catch { throw ValidationError("--endpoints: \(error)") }
        }
        guard !out.isEmpty else { throw ValidationError("--endpoints is empty; give host:port[,host:port...]") }
        return out
    }

    func client() throws -> SynodClient { try client(endpoints: try parsedEndpoints(), timeoutSeconds: timeout) }

    /// A client of `endpoints` only (TLS as the options and environment say), giving up after
    /// `timeoutSeconds` of retrying.
    func client(endpoints: [HostPort], timeoutSeconds: Int) throws -> SynodClient {
        guard (1...600).contains(timeoutSeconds) else { throw ValidationError("--timeout must be 1...600 seconds") }
        var config = ClientConfiguration(endpoints: endpoints)
        config.retryDeadlineMillis = Int64(timeoutSeconds) * 1000
        config.requestTimeoutMillis = min(3000, Int64(timeoutSeconds) * 1000)
        config.credentials = try credentials()
        // As etcdctl's ETCDCTL_CACERT, ETCDCTL_CERT and ETCDCTL_KEY: flags win over the environment.
        let environment = ProcessInfo.processInfo.environment
        let (cacert, cert, key) = (cacert ?? environment["SYNOD_CACERT"], cert ?? environment["SYNOD_CERT"], key ?? environment["SYNOD_KEY"])
        if cacert != nil || cert != nil || key != nil {
            guard (cert == nil) == (key == nil) else { throw ValidationError("--cert and --key go together ($SYNOD_CERT and $SYNOD_KEY too)") }
            config.tls = TLSFiles(certificate: cert, privateKey: key, trustedCA: cacert)
        }
        return SynodClient(config)
    }

    /// Moves global options that appear before the subcommand name to after it.
    static func hoist(_ args: [String]) -> [String] {
        var before: [String] = []
        var rest = args[...]
        while let first = rest.first, first.hasPrefix("-") {
            let name = first.split(separator: "=", maxSplits: 1).first.map(String.init) ?? first
            guard names.contains(name) else { break }
            before.append(first)
            rest = rest.dropFirst()
            if !first.contains("="), let value = rest.first {
                before.append(value)
                rest = rest.dropFirst()
            }
        }
        guard !before.isEmpty else { return args }
        var out = Array(rest)
        let insertAt = out.firstIndex(of: "--") ?? out.count
        out.insert(contentsOf: before, at: insertAt)
        return out
    }
}

/// Prints an error the way an operator reads it and picks the exit status.
func fail(_ message: String, status: Int32 = 2) -> ExitCode {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    return ExitCode(status)
}

/// Renders a value as JSON text (strings escaped).
enum JSON {
    static func string(_ s: String) -> String {
        var out = "\""
        for ch in s.unicodeScalars {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if ch.value < 0x20 { out += String(format: "\\u%04x", ch.value) } else { out.unicodeScalars.append(ch) }
            }
        }
        return out + "\""
    }

    static func object(_ fields: [(String, String)]) -> String {
        "{" + fields.map { "\(string($0.0)):\($0.1)" }.joined(separator: ",") + "}"
    }

    static func array(_ items: [String]) -> String { "[" + items.joined(separator: ",") + "]" }
}

extension GlobalOptions {
    /// `--endpoints`, or with `cluster` every member's client address from the member list (as
    /// etcdctl's `--cluster`).
    func endpoints(cluster: Bool, using client: SynodClient) async throws -> [HostPort] {
        guard cluster else { return try parsedEndpoints() }
        let members: [MemberInfo]
        do { members = try await client.members() } catch { throw clientFailure("member list", error) }
        return try members.filter { !$0.clientAddress.isEmpty }.map { m in
            do { return try HostPort(parsing: m.clientAddress) } catch {
                throw fail("member \(m.id) has no usable client address (\(m.clientAddress))")
            }
        }
    }
}
