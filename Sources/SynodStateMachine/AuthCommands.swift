import SynodCore

/// A change to the auth state (`Command.auth`), etcd's Auth* requests. Each needs the role
/// `root` once auth is enabled (a user may change its own password); each bumps the auth
/// revision when it changes something.
public enum AuthCommand: Hashable, Sendable {
    /// Turns checking on. Refused unless the user `root` exists and holds the role `root`.
    case enable
    case disable
    /// Adds a user; a nil credential makes a user that cannot authenticate by password.
    case userAdd(name: String, credential: PasswordCredential?)
    /// Deletes a user (not `root` while enabled).
    case userDelete(name: String)
    /// Sets a user's password; connections authenticated with the old one are refused.
    case userChangePassword(name: String, credential: PasswordCredential)
    case userGrantRole(user: String, role: String)
    /// Takes a role from a user (not `root` from `root` while enabled).
    case userRevokeRole(user: String, role: String)
    case roleAdd(name: String)
    /// Deletes a role and takes it from every user (not `root` while enabled).
    case roleDelete(name: String)
    /// Grants a permission; one on the same range replaces the kind.
    case roleGrantPermission(role: String, permission: KeyPermission)
    case roleRevokePermission(role: String, key: [UInt8], rangeEnd: [UInt8])

    /// What the sender needs (while auth is enabled).
    public var access: Access {
        if case let .userChangePassword(name, _) = self { return .selfOrAdmin(name) }
        return .admin
    }
}

/// The answer to an auth command: the store revision (unchanged by auth commands) and the auth
/// revision after it.
public struct AuthResult: Hashable, Sendable {
    public var revision: Int64
    public var authRevision: UInt64
    public init(revision: Int64, authRevision: UInt64) {
        self.revision = revision
        self.authRevision = authRevision
    }
}

extension KVStateMachine {
    /// The cluster version from which auth commands and stamped envelopes apply.
    public static let authClusterVersion: UInt16 = 2
}

// MARK: - Encoding

enum AuthCommandTag: UInt8 {
    case enable = 1, disable, userAdd, userDelete, userChangePassword, userGrantRole, userRevokeRole
    case roleAdd, roleDelete, roleGrantPermission, roleRevokePermission
}

extension ByteWriter {
    mutating func authName(_ s: String) { lengthPrefixed(Array(s.utf8)) }
    mutating func credential(_ c: PasswordCredential) {
        lengthPrefixed(c.salt)
        lengthPrefixed(c.hash)
        u32(c.rounds)
    }
}

extension ByteReader {
    /// A user or role name; its length is checked again (tighter) when applied, so a long one
    /// gets `invalidRequest` rather than a decode error.
    mutating func authName(_ what: String) throws(DecodeError) -> String {
        String(decoding: try lengthPrefixed(what, limit: 4 * AuthLimits.nameBytesMax), as: UTF8.self)
    }
    mutating func credential() throws(DecodeError) -> PasswordCredential {
        PasswordCredential(salt: try lengthPrefixed("salt", limit: 256), hash: try lengthPrefixed("password hash", limit: 256),
                           rounds: try u32("rounds"))
    }
}

extension AuthCommand {
    func encode(into w: inout ByteWriter) {
        switch self {
        case .enable: w.u8(AuthCommandTag.enable.rawValue)
        case .disable: w.u8(AuthCommandTag.disable.rawValue)
        case let .userAdd(name, credential):
            w.u8(AuthCommandTag.userAdd.rawValue)
            w.authName(name)
            w.bool(credential != nil)
            if let credential { w.credential(credential) }
        case let .userDelete(name): w.u8(AuthCommandTag.userDelete.rawValue); w.authName(name)
        case let .userChangePassword(name, credential):
            w.u8(AuthCommandTag.userChangePassword.rawValue)
            w.authName(name)
            w.credential(credential)
        case let .userGrantRole(user, role): w.u8(AuthCommandTag.userGrantRole.rawValue); w.authName(user); w.authName(role)
        case let .userRevokeRole(user, role): w.u8(AuthCommandTag.userRevokeRole.rawValue); w.authName(user); w.authName(role)
        case let .roleAdd(name): w.u8(AuthCommandTag.roleAdd.rawValue); w.authName(name)
        case let .roleDelete(name): w.u8(AuthCommandTag.roleDelete.rawValue); w.authName(name)
        case let .roleGrantPermission(role, p):
            w.u8(AuthCommandTag.roleGrantPermission.rawValue)
            w.authName(role)
            p.encode(into: &w)
        case let .roleRevokePermission(role, key, rangeEnd):
            w.u8(AuthCommandTag.roleRevokePermission.rawValue)
            w.authName(role)
            w.lengthPrefixed(key)
            w.lengthPrefixed(rangeEnd)
        }
    }

    static func decode(from r: inout ByteReader) throws(DecodeError) -> AuthCommand {
        let raw = try r.u8("auth command tag")
        guard let tag = AuthCommandTag(rawValue: raw) else { throw .unknownValue(what: "auth command tag", value: UInt64(raw)) }
        switch tag {
        case .enable: return .enable
        case .disable: return .disable
        case .userAdd:
            let name = try r.authName("user name")
            return .userAdd(name: name, credential: try r.bool("has password") ? try r.credential() : nil)
        case .userDelete: return .userDelete(name: try r.authName("user name"))
        case .userChangePassword: return .userChangePassword(name: try r.authName("user name"), credential: try r.credential())
        case .userGrantRole: return .userGrantRole(user: try r.authName("user name"), role: try r.authName("role name"))
        case .userRevokeRole: return .userRevokeRole(user: try r.authName("user name"), role: try r.authName("role name"))
        case .roleAdd: return .roleAdd(name: try r.authName("role name"))
        case .roleDelete: return .roleDelete(name: try r.authName("role name"))
        case .roleGrantPermission: return .roleGrantPermission(role: try r.authName("role name"), permission: try KeyPermission.decode(from: &r))
        case .roleRevokePermission:
            return .roleRevokePermission(role: try r.authName("role name"), key: try r.lengthPrefixed("permission key", limit: KVLimits.decodeBytesMax),
                                         rangeEnd: try r.lengthPrefixed("permission range end", limit: KVLimits.decodeBytesMax))
        }
    }
}

extension KeyPermission {
    func encode(into w: inout ByteWriter) {
        w.u8(kind.rawValue)
        w.lengthPrefixed(key)
        w.lengthPrefixed(rangeEnd)
    }
    static func decode(from r: inout ByteReader) throws(DecodeError) -> KeyPermission {
        let raw = try r.u8("permission kind")
        guard let kind = PermissionKind(rawValue: raw) else { throw .unknownValue(what: "permission kind", value: UInt64(raw)) }
        return KeyPermission(kind, key: try r.lengthPrefixed("permission key", limit: KVLimits.decodeBytesMax),
                             rangeEnd: try r.lengthPrefixed("permission range end", limit: KVLimits.decodeBytesMax))
    }
}

extension AuthPrincipal {
    func encode(into w: inout ByteWriter) {
        w.authName(user)
        w.u64(generation)
    }
    static func decode(from r: inout ByteReader) throws(DecodeError) -> AuthPrincipal {
        AuthPrincipal(user: try r.authName("principal user"), generation: try r.u64("principal generation"))
    }
}

// MARK: - Stored records (`sm_meta`, keys under `auth/`)

enum AuthKeys {
    static let prefix = Array("auth/".utf8)
    static let meta = Array("auth/meta".utf8)
    static let userPrefix = Array("auth/user/".utf8)
    static let rolePrefix = Array("auth/role/".utf8)
    static func user(_ name: String) -> [UInt8] { userPrefix + Array(name.utf8) }
    static func role(_ name: String) -> [UInt8] { rolePrefix + Array(name.utf8) }
}

enum StoredAuth {
    static let formatVersion: UInt8 = 1

    static func encodeMeta(_ s: AuthState) -> [UInt8] {
        var w = ByteWriter()
        w.u8(formatVersion)
        w.bool(s.enabled)
        w.u64(s.revision)
        return w.bytes
    }

    static func encode(_ u: AuthUser) -> [UInt8] {
        var w = ByteWriter()
        w.u8(formatVersion)
        w.bool(u.credential != nil)
        if let c = u.credential { w.credential(c) }
        w.u64(u.generation)
        w.count(u.roles.count)
        for role in u.roles { w.authName(role) }
        return w.bytes
    }

    static func encode(_ role: AuthRole) -> [UInt8] {
        var w = ByteWriter()
        w.u8(formatVersion)
        w.count(role.permissions.count)
        for p in role.permissions { p.encode(into: &w) }
        return w.bytes
    }

    /// Loads the auth state from the `sm_meta` records under `auth/`.
    static func load(_ r: any StateReader) throws -> AuthState {
        var state = AuthState()
        var records: [([UInt8], [UInt8])] = []
        try r.scan(Tables.meta, from: AuthKeys.prefix, limit: Int.max) { k, v in
            guard k.starts(with: AuthKeys.prefix) else { return false }
            records.append((k, v))
            return true
        }
        do throws(DecodeError) {
            for (k, v) in records {
                var r = ByteReader(v)
                try r.version("auth record version", expected: formatVersion)
                if k == AuthKeys.meta {
                    state.enabled = try r.bool("auth enabled")
                    state.revision = try r.u64("auth revision")
                } else if k.starts(with: AuthKeys.userPrefix) {
                    let name = String(decoding: k.dropFirst(AuthKeys.userPrefix.count), as: UTF8.self)
                    let credential = try r.bool("has password") ? try r.credential() : nil
                    let generation = try r.u64("generation")
                    let n = try r.count("user roles", limit: AuthLimits.rolesPerUserMax, minBytesEach: 4)
                    var roles: [String] = []
                    for _ in 0..<n { roles.append(try r.authName("role name")) }
                    state.users[name] = AuthUser(name: name, credential: credential, roles: roles, generation: generation)
                } else if k.starts(with: AuthKeys.rolePrefix) {
                    let name = String(decoding: k.dropFirst(AuthKeys.rolePrefix.count), as: UTF8.self)
                    let n = try r.count("role permissions", limit: AuthLimits.permissionsPerRoleMax, minBytesEach: 9)
                    var permissions: [KeyPermission] = []
                    for _ in 0..<n { permissions.append(try KeyPermission.decode(from: &r)) }
                    state.roles[name] = AuthRole(name: name, permissions: permissions)
                } else {
                    throw DecodeError.invalid("unknown auth record")
                }
                try r.expectEnd()
            }
        } catch { throw corrupt(Tables.meta, error) }
        state.recompile()
        return state
    }
}
