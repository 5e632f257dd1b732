import ArgumentParser
import Foundation
import SynodClient
import SynodStateMachine
import SynodWire

// `synod auth`, `synod user` and `synod role`: etcdctl's auth commands, with its output lines.

/// A password from the command line, or else one line of standard input (as `echo pw | synod
/// user add alice` or typed at the prompt-less terminal).
func passwordArgument(_ given: String?, for user: String) throws -> String {
    if let given { return given }
    guard let line = readLine(strippingNewline: true), !line.isEmpty else {
        throw ValidationError("give \(user)'s password: NAME:PASSWORD, --new-user-password, or one line on standard input")
    }
    return line
}

func printPermission(_ p: KeyPermission) {
    let key = text(p.key)
    if p.rangeEnd.isEmpty {
        print("\t\(p.kind) \(key)")
    } else if p.rangeEnd == [0] {
        print("\t\(p.kind) [\(key), <open ended>")
    } else if p.rangeEnd == KeyRange.prefixEnd(p.key) {
        print("\t\(p.kind) \(key)* (prefix)")
    } else {
        print("\t\(p.kind) [\(key), \(text(p.rangeEnd)))")
    }
}

func jsonPermission(_ p: KeyPermission) -> String {
    JSON.object([("permType", JSON.string(p.kind.description.uppercased())), ("key", JSON.string(text(p.key))),
                 ("range_end", JSON.string(text(p.rangeEnd)))])
}

struct AuthCLI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "auth", abstract: "Turn authentication on or off, or show whether it is on.",
                                                    subcommands: [Enable.self, Disable.self, Status.self])

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "enable",
            abstract: "Enable authentication. The user root must exist; the role root is created and granted to it first if missing (as etcdctl does).")
        @OptionGroup var globals: GlobalOptions
        func run() async throws {
            try await withClient(globals) { client in
                let state = try await client.authStatus()
                if state.enabled { return }
                if !state.roles.contains(where: { $0.name == AuthState.rootName }) { try await client.addRole(AuthState.rootName) }
                if let root = state.users.first(where: { $0.name == AuthState.rootName }), !root.roles.contains(AuthState.rootName) {
                    try await client.grantRole(AuthState.rootName, to: AuthState.rootName)
                }
                try await client.authEnable()
            }
            print("Authentication Enabled")
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "disable", abstract: "Disable authentication (needs the role root).")
        @OptionGroup var globals: GlobalOptions
        func run() async throws {
            try await withClient(globals) { try await $0.authDisable() }
            print("Authentication Disabled")
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "status", abstract: "Print whether authentication is enabled and the auth revision.")
        @OptionGroup var globals: GlobalOptions
        func run() async throws {
            let s = try await withClient(globals) { try await $0.authStatus() }
            if globals.output == .json {
                print(JSON.object([("enabled", s.enabled ? "true" : "false"), ("authRevision", "\(s.revision)"), ("clusterVersion", "\(s.clusterVersion)")]))
            } else {
                print("Authentication Status: \(s.enabled)")
                print("AuthRevision: \(s.revision)")
            }
        }
    }
}

struct UserCLI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "user", abstract: "Add, delete, list and inspect users; grant and revoke their roles.",
                                                    subcommands: [Add.self, Delete.self, Get.self, List.self, Passwd.self, GrantRole.self, RevokeRole.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add", abstract: "Add a user: NAME[:PASSWORD] (else --new-user-password, or a line of standard input).")
        @OptionGroup var globals: GlobalOptions
        @Argument(help: "NAME or NAME:PASSWORD.") var user: String
        @Option(help: "The new user's password.") var newUserPassword: String?
        @Flag(help: "A user without a password: it cannot authenticate by password.") var noPassword = false
        func run() async throws {
            var name = user
            var password = newUserPassword
            if let colon = user.firstIndex(of: ":") {
                name = String(user[..<colon])
                password = String(user[user.index(after: colon)...])
            }
            let secret = noPassword ? nil : try passwordArgument(password, for: name)
            try await withClient(globals) { try await $0.addUser(name, password: secret) }
            print("User \(name) created")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a user.")
        @OptionGroup var globals: GlobalOptions
        @Argument var name: String
        func run() async throws {
            try await withClient(globals) { try await $0.deleteUser(name) }
            print("User \(name) deleted")
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "get", abstract: "Print a user's roles (with --detail, their permissions).")
        @OptionGroup var globals: GlobalOptions
        @Argument var name: String
        @Flag(help: "Print each role's permissions too.") var detail = false
        func run() async throws {
            let s = try await withClient(globals) { try await $0.authStatus() }
            guard let u = s.users.first(where: { $0.name == name }) else { throw fail("user \(name) not found", status: ExitStatus.refused) }
            if globals.output == .json {
                print(JSON.object([("name", JSON.string(u.name)), ("roles", JSON.array(u.roles.map(JSON.string)))]))
                return
            }
            print("User: \(u.name)")
            if !detail {
                print("Roles: \(u.roles.joined(separator: " "))")
                return
            }
            for role in u.roles {
                print("Role \(role)")
                for p in s.roles.first(where: { $0.name == role })?.permissions ?? [] { printPermission(p) }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the users (all of them for root, else only yourself).")
        @OptionGroup var globals: GlobalOptions
        func run() async throws {
            let s = try await withClient(globals) { try await $0.authStatus() }
            if globals.output == .json { print(JSON.object([("users", JSON.array(s.users.map { JSON.string($0.name) }))])) } else { for u in s.users { print(u.name) } }
        }
    }

    struct Passwd: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "passwd", abstract: "Change a user's password (yours, or anyone's as root); its old sessions are refused.")
        @OptionGroup var globals: GlobalOptions
        @Argument var name: String
        @Option(help: "The new password (else a line of standard input).") var newUserPassword: String?
        func run() async throws {
            let secret = try passwordArgument(newUserPassword, for: name)
            try await withClient(globals) { try await $0.changePassword(user: name, to: secret) }
            print("Password updated")
        }
    }

    struct GrantRole: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "grant-role", abstract: "Grant a role to a user.")
        @OptionGroup var globals: GlobalOptions
        @Argument var user: String
        @Argument var role: String
        func run() async throws {
            try await withClient(globals) { try await $0.grantRole(role, to: user) }
            print("Role \(role) is granted to user \(user)")
        }
    }

    struct RevokeRole: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "revoke-role", abstract: "Revoke a role from a user.")
        @OptionGroup var globals: GlobalOptions
        @Argument var user: String
        @Argument var role: String
        func run() async throws {
            try await withClient(globals) { try await $0.revokeRole(role, from: user) }
            print("Role \(role) is revoked from user \(user)")
        }
    }
}

struct RoleCLI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "role", abstract: "Add, delete, list and inspect roles; grant and revoke key permissions.",
                                                    subcommands: [Add.self, Delete.self, Get.self, List.self, GrantPermission.self, RevokePermission.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add", abstract: "Add a role.")
        @OptionGroup var globals: GlobalOptions
        @Argument var name: String
        func run() async throws {
            try await withClient(globals) { try await $0.addRole(name) }
            print("Role \(name) created")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a role (it is revoked from every user).")
        @OptionGroup var globals: GlobalOptions
        @Argument var name: String
        func run() async throws {
            try await withClient(globals) { try await $0.deleteRole(name) }
            print("Role \(name) deleted")
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "get", abstract: "Print a role's key permissions.")
        @OptionGroup var globals: GlobalOptions
        @Argument var name: String
        func run() async throws {
            let s = try await withClient(globals) { try await $0.authStatus() }
            guard let role = s.roles.first(where: { $0.name == name }) else { throw fail("role \(name) not found", status: ExitStatus.refused) }
            if globals.output == .json {
                print(JSON.object([("name", JSON.string(role.name)), ("permissions", JSON.array(role.permissions.map(jsonPermission)))]))
                return
            }
            print("Role \(role.name)")
            print("KV Read:")
            for p in role.permissions where p.kind.allowsRead { printPermission(KeyPermission(.read, key: p.key, rangeEnd: p.rangeEnd)) }
            print("KV Write:")
            for p in role.permissions where p.kind.allowsWrite { printPermission(KeyPermission(.write, key: p.key, rangeEnd: p.rangeEnd)) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the roles (all of them for root, else your own).")
        @OptionGroup var globals: GlobalOptions
        func run() async throws {
            let s = try await withClient(globals) { try await $0.authStatus() }
            if globals.output == .json { print(JSON.object([("roles", JSON.array(s.roles.map { JSON.string($0.name) }))])) } else { for r in s.roles { print(r.name) } }
        }
    }

    /// The range of KEY [RANGE_END] with --prefix or --from-key, as etcdctl reads them.
    struct RangeOptions: ParsableArguments {
        @Argument(help: "The key.") var key: String
        @Argument(help: "The end of the range [KEY, RANGE_END).") var rangeEnd: String?
        @Flag(help: "Every key starting with KEY.") var prefix = false
        @Flag(help: "Every key from KEY on.") var fromKey = false

        func validate() throws {
            guard [rangeEnd != nil, prefix, fromKey].filter({ $0 }).count <= 1 else { throw ValidationError("give at most one of RANGE_END, --prefix, --from-key") }
            if key.isEmpty, !fromKey, !prefix { throw ValidationError("an empty key needs --from-key or --prefix (every key)") }
        }

        var range: (key: [UInt8], rangeEnd: [UInt8]) {
            if prefix { return key.isEmpty ? ([], [0]) : (bytes(key), KeyRange.prefixEnd(bytes(key))) }
            if fromKey { return (bytes(key), [0]) }
            return (bytes(key), rangeEnd.map(bytes) ?? [])
        }
    }

    struct GrantPermission: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "grant-permission", abstract: "Grant a role read, write or readwrite on a key, range, prefix or everything from a key.")
        @OptionGroup var globals: GlobalOptions
        @Argument var role: String
        @Argument(help: "read, write or readwrite.") var kind: String
        @OptionGroup var range: RangeOptions
        func validate() throws {
            guard Self.kind(kind) != nil else { throw ValidationError("the permission is read, write or readwrite, not \(kind)") }
        }
        static func kind(_ s: String) -> PermissionKind? { PermissionKind.allCases.first { $0.description == s.lowercased() } }
        func run() async throws {
            let (key, end) = range.range
            try await withClient(globals) { try await $0.grantPermission(Self.kind(kind)!, key: key, rangeEnd: end, to: role) }
            print("Role \(role) updated")
        }
    }

    struct RevokePermission: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "revoke-permission", abstract: "Revoke a role's permission on exactly that key, range or prefix.")
        @OptionGroup var globals: GlobalOptions
        @Argument var role: String
        @OptionGroup var range: RangeOptions
        func run() async throws {
            let (key, end) = range.range
            try await withClient(globals) { try await $0.revokePermission(key: key, rangeEnd: end, from: role) }
            print("Permission of range [\(key.isEmpty ? "" : text(key)), \(text(end))) is revoked from role \(role)")
        }
    }
}
