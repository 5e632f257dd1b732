import Foundation
import NIOConcurrencyHelpers
import NIOCore
import SynodClient
import SynodCore
import SynodStateMachine
import SynodWire

// etcd's `/v3/auth/...` routes. `authenticate` answers a token; a request that carries it in its
// `Authorization` header runs as that user, through a `SynodClient` of its own that the gateway
// keeps while the token lives (etcd's simple tokens: an idle token expires after 300 s).

/// An auth call of the gateway (`/v3/auth/...`).
enum GatewayAuthCall: Sendable {
    case authenticate(name: String, password: String)
    case enable, disable, status
    case userAdd(name: String, password: String?)
    case userGet(String), userList, userDelete(String)
    case userChangePassword(name: String, password: String)
    case userGrantRole(user: String, role: String), userRevokeRole(user: String, role: String)
    case roleAdd(String), roleGet(String), roleList, roleDelete(String)
    case roleGrantPermission(role: String, KeyPermission)
    case roleRevokePermission(role: String, key: [UInt8], rangeEnd: [UInt8])

    static let permTypes = ["READ", "WRITE", "READWRITE"]

    static func decode(path: String, _ f: JSONFields) throws(GatewayError) -> GatewayAuthCall {
        func name(_ field: String) throws(GatewayError) -> String {
            guard let s = try f.string(field), !s.isEmpty else { throw .invalid("\(field) is not provided") }
            return s
        }
        switch path {
        case "/v3/auth/authenticate":
            try f.check(known: ["name", "password"])
            return .authenticate(name: try name("name"), password: try f.string("password") ?? "")
        case "/v3/auth/enable": try f.check(known: []); return .enable
        case "/v3/auth/disable": try f.check(known: []); return .disable
        case "/v3/auth/status": try f.check(known: []); return .status
        case "/v3/auth/user/add":
            try f.check(known: ["name", "password", "options"], unsupported: ["hashedPassword"])
            var noPassword = false
            if let options = try f.fields("options") {
                try options.check(known: ["no_password"])
                noPassword = try options.bool("no_password")
            }
            let password = try f.string("password") ?? ""
            if !noPassword && password.isEmpty { throw .invalid("password is not provided (or set options.no_password)") }
            return .userAdd(name: try name("name"), password: noPassword ? nil : password)
        case "/v3/auth/user/get": try f.check(known: ["name"]); return .userGet(try name("name"))
        case "/v3/auth/user/list": try f.check(known: []); return .userList
        case "/v3/auth/user/delete": try f.check(known: ["name"]); return .userDelete(try name("name"))
        case "/v3/auth/user/changepw":
            try f.check(known: ["name", "password"], unsupported: ["hashedPassword"])
            return .userChangePassword(name: try name("name"), password: try name("password"))
        case "/v3/auth/user/grant": try f.check(known: ["user", "role"]); return .userGrantRole(user: try name("user"), role: try name("role"))
        case "/v3/auth/user/revoke": try f.check(known: ["name", "role"]); return .userRevokeRole(user: try name("name"), role: try name("role"))
        case "/v3/auth/role/add": try f.check(known: ["name"]); return .roleAdd(try name("name"))
        case "/v3/auth/role/get": try f.check(known: ["role"]); return .roleGet(try name("role"))
        case "/v3/auth/role/list": try f.check(known: []); return .roleList
        case "/v3/auth/role/delete": try f.check(known: ["role"]); return .roleDelete(try name("role"))
        case "/v3/auth/role/grant":
            try f.check(known: ["name", "perm"])
            guard let perm = try f.fields("perm") else { throw .invalid("perm is not provided") }
            try perm.check(known: ["permType", "key", "range_end"])
            let kind = PermissionKind(rawValue: UInt8(try GatewayCall.enumField(perm, "permType", permTypes)))!
            return .roleGrantPermission(role: try name("name"), KeyPermission(kind, key: try perm.bytes("key"), rangeEnd: try perm.bytes("range_end")))
        case "/v3/auth/role/revoke":
            try f.check(known: ["role", "key", "range_end"])
            return .roleRevokePermission(role: try name("role"), key: try f.bytes("key"), rangeEnd: try f.bytes("range_end"))
        default: throw GatewayError(status: .notFound, code: 12, message: "no route \(path)")
        }
    }
}

/// The gateway's auth tokens: each names a client authenticated as its user. Bounded in number
/// and idle time — idle meaning no request of the token in flight (a long watch or lock wait
/// keeps it) for `idleSeconds`; a token past either bound is refused (401, as etcd's invalid
/// token).
final class GatewayTokens: Sendable {
    static let tokensMax = 1_024
    static let idleSeconds: Int64 = 300
    struct Entry {
        var client: SynodClient
        var lastUsed: NIODeadline
        var inFlight = 0
    }
    private let table = NIOLockedValueBox<[String: Entry]>([:])

    func idle(_ e: Entry, _ now: NIODeadline) -> Bool { e.inFlight == 0 && now - e.lastUsed > .seconds(Self.idleSeconds) }

    /// The client of `token`, or 401; with `use`, counts a request in flight until `release`.
    func client(for token: String, use: Bool = false) throws(GatewayError) -> SynodClient {
        let now = NIODeadline.now()
        let found = table.withLockedValue { t -> SynodClient? in
            guard let entry = t[token] else { return nil }
            if idle(entry, now) {
                t[token] = nil
                let client = entry.client
                Task { await client.close() }
                return nil
            }
            t[token]?.lastUsed = now
            if use { t[token]?.inFlight += 1 }
            return entry.client
        }
        guard let found else { throw GatewayError(status: .unauthorized, code: 16, message: "etcdserver: invalid auth token") }
        return found
    }

    /// A request of `token` finished (`client(for:use: true)`).
    func release(_ token: String) {
        let now = NIODeadline.now()
        table.withLockedValue { t in
            t[token]?.inFlight -= 1
            t[token]?.lastUsed = now
        }
    }

    /// Keeps `client` under a new random token; expired tokens go first.
    func add(_ client: SynodClient) throws(GatewayError) -> String {
        var rng = SystemRandomNumberGenerator()
        let token = (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &rng)) }.joined()
        let now = NIODeadline.now()
        let (added, expired) = table.withLockedValue { t -> (Bool, [SynodClient]) in
            let old = t.filter { idle($0.value, now) }
            for key in old.keys { t[key] = nil }
            guard t.count < Self.tokensMax else { return (false, old.values.map(\.client)) }
            t[token] = Entry(client: client, lastUsed: now)
            return (true, old.values.map(\.client))
        }
        for c in expired { Task { await c.close() } }
        guard added else { throw GatewayError(status: .tooManyRequests, code: 8, message: "\(Self.tokensMax) auth tokens are live on this gateway; retry later") }
        return token
    }
}

extension Gateway {
    /// Runs `body` as the user of `token` (the anonymous client without one); an unknown or
    /// expired token is 401.
    func asTokenUser<T: Sendable>(_ token: String?, _ body: () async -> T, refused: (GatewayError) -> T) async -> T {
        guard let token, !token.isEmpty else { return await body() }
        let session: SynodClient
        do { session = try tokens.client(for: token, use: true) } catch { return refused(error) }
        defer { tokens.release(token) }
        return await Self.$session.withValue(session) { await body() }
    }

    func executeAuth(_ call: GatewayAuthCall) async throws -> [String: Any] {
        switch call {
        case let .authenticate(name, password):
            var config = anonymous.configuration
            config.credentials = Credentials(user: name, password: password)
            let session = SynodClient(config, group: anonymous.eventLoopGroup)
            let enabled: Bool
            do { enabled = try await session.authStatus().enabled } catch {
                await session.close()
                if case ClientError.authenticationFailed = error {
                    throw GatewayError(status: .badRequest, code: 3, message: "etcdserver: authentication failed, invalid user ID or password")
                }
                throw error
            }
            guard enabled else {
                // As etcd: no tokens while auth is off (every request is allowed anyway).
                await session.close()
                throw GatewayError(status: .badRequest, code: 9, message: "etcdserver: authentication is not enabled")
            }
            do { return ["header": header(0), "token": try tokens.add(session)] } catch {
                await session.close()
                throw error
            }
        case .enable: try await client.authEnable()
        case .disable: try await client.authDisable()
        case .status:
            let s = try await client.authStatus()
            var o: [String: Any] = ["header": header(0), "authRevision": String(s.revision)]
            if s.enabled { o["enabled"] = true }
            return o
        case let .userAdd(name, password): try await client.addUser(name, password: password)
        case let .userGet(name):
            guard let user = try await client.authStatus().users.first(where: { $0.name == name }) else {
                throw GatewayError(status: .badRequest, code: 9, message: "etcdserver: user name not found")
            }
            var o: [String: Any] = ["header": header(0)]
            if !user.roles.isEmpty { o["roles"] = user.roles }
            return o
        case .userList:
            let users = try await client.authStatus().users
            var o: [String: Any] = ["header": header(0)]
            if !users.isEmpty { o["users"] = users.map(\.name) }
            return o
        case let .userDelete(name): try await client.deleteUser(name)
        case let .userChangePassword(name, password): try await client.changePassword(user: name, to: password)
        case let .userGrantRole(user, role): try await client.grantRole(role, to: user)
        case let .userRevokeRole(user, role): try await client.revokeRole(role, from: user)
        case let .roleAdd(name): try await client.addRole(name)
        case let .roleGet(name):
            guard let role = try await client.authStatus().roles.first(where: { $0.name == name }) else {
                throw GatewayError(status: .badRequest, code: 9, message: "etcdserver: role name not found")
            }
            var o: [String: Any] = ["header": header(0)]
            if !role.permissions.isEmpty {
                o["perm"] = role.permissions.map { p -> [String: Any] in
                    var perm: [String: Any] = ["key": GatewayJSON.b64(p.key)]
                    if p.kind != .read { perm["permType"] = GatewayAuthCall.permTypes[Int(p.kind.rawValue)] }
                    if !p.rangeEnd.isEmpty { perm["range_end"] = GatewayJSON.b64(p.rangeEnd) }
                    return perm
                }
            }
            return o
        case .roleList:
            let roles = try await client.authStatus().roles
            var o: [String: Any] = ["header": header(0)]
            if !roles.isEmpty { o["roles"] = roles.map(\.name) }
            return o
        case let .roleDelete(name): try await client.deleteRole(name)
        case let .roleGrantPermission(role, p): try await client.grantPermission(p.kind, key: p.key, rangeEnd: p.rangeEnd, to: role)
        case let .roleRevokePermission(role, key, rangeEnd): try await client.revokePermission(key: key, rangeEnd: rangeEnd, from: role)
        }
        return ["header": header(0)]
    }
}
