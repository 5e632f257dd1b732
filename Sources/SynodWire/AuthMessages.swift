import SynodCore
import SynodStateMachine

/// The answer to `KVQuery.auth`: whether auth is on, its revision, and the users (without
/// credentials) and roles the asker may see, each ascending by name.
public struct AuthSummary: Sendable, Hashable {
    public struct User: Sendable, Hashable {
        public var name: String
        public var roles: [String]
        public var hasPassword: Bool
        public init(name: String, roles: [String], hasPassword: Bool) {
            self.name = name
            self.roles = roles
            self.hasPassword = hasPassword
        }
    }
    public var enabled: Bool
    public var revision: UInt64
    /// The cluster version in force: auth needs `KVStateMachine.authClusterVersion`.
    public var clusterVersion: UInt16
    public var users: [User]
    public var roles: [AuthRole]

    public init(enabled: Bool, revision: UInt64, clusterVersion: UInt16, users: [User], roles: [AuthRole]) {
        self.enabled = enabled
        self.revision = revision
        self.clusterVersion = clusterVersion
        self.users = users
        self.roles = roles
    }

    static let version: UInt8 = 1
    static let namesMax = 4 * AuthLimits.nameBytesMax

    public func encode() -> [UInt8] {
        var w = ByteWriter()
        w.u8(Self.version)
        w.u8(enabled ? 1 : 0)
        w.u64(revision)
        w.u32(UInt32(clusterVersion))
        w.u32(UInt32(users.count))
        for u in users {
            w.lengthPrefixed(Array(u.name.utf8))
            w.u8(u.hasPassword ? 1 : 0)
            w.u32(UInt32(u.roles.count))
            for r in u.roles { w.lengthPrefixed(Array(r.utf8)) }
        }
        w.u32(UInt32(roles.count))
        for role in roles {
            w.lengthPrefixed(Array(role.name.utf8))
            w.u32(UInt32(role.permissions.count))
            for p in role.permissions {
                w.u8(p.kind.rawValue)
                w.lengthPrefixed(p.key)
                w.lengthPrefixed(p.rangeEnd)
            }
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> AuthSummary {
        var r = ByteReader(bytes)
        let v = try r.u8("auth summary version")
        guard v == version else { throw .unknownValue(what: "auth summary version", value: UInt64(v)) }
        func count(_ what: String, _ limit: Int, _ r: inout ByteReader) throws(DecodeError) -> Int {
            let n = Int(try r.u32(what))
            guard n <= limit else { throw .lengthTooLarge(what: what, length: n, limit: limit) }
            guard n <= r.remaining else { throw .truncated(what: what, needed: n - r.remaining) }
            return n
        }
        func name(_ what: String, _ r: inout ByteReader) throws(DecodeError) -> String {
            String(decoding: try r.lengthPrefixed(what, limit: namesMax), as: UTF8.self)
        }
        let enabled = try r.u8("enabled") != 0
        let revision = try r.u64("auth revision")
        let clusterVersion = UInt16(clamping: try r.u32("cluster version"))
        var users: [User] = []
        for _ in 0..<(try count("users", AuthLimits.usersMax, &r)) {
            let n = try name("user", &r)
            let hasPassword = try r.u8("has password") != 0
            var roles: [String] = []
            for _ in 0..<(try count("user roles", AuthLimits.rolesPerUserMax, &r)) { roles.append(try name("role", &r)) }
            users.append(User(name: n, roles: roles, hasPassword: hasPassword))
        }
        var roles: [AuthRole] = []
        for _ in 0..<(try count("roles", AuthLimits.rolesMax, &r)) {
            let n = try name("role", &r)
            var permissions: [KeyPermission] = []
            for _ in 0..<(try count("permissions", AuthLimits.permissionsPerRoleMax, &r)) {
                let raw = try r.u8("permission kind")
                guard let kind = PermissionKind(rawValue: raw) else { throw .unknownValue(what: "permission kind", value: UInt64(raw)) }
                permissions.append(KeyPermission(kind, key: try r.lengthPrefixed("permission key", limit: 4096),
                                                 rangeEnd: try r.lengthPrefixed("permission range end", limit: 4096)))
            }
            roles.append(AuthRole(name: n, permissions: permissions))
        }
        try r.expectEnd()
        return AuthSummary(enabled: enabled, revision: revision, clusterVersion: clusterVersion, users: users, roles: roles)
    }
}
