import SynodCrypto
import SynodStateMachine
import SynodWire

// etcd's auth API: users, roles, permissions and the switch. Each change is a replicated
// command that needs the role root once auth is on (a user may change its own password).
// Passwords are hashed here (PBKDF2, `Passwords`) before they leave the client: the log holds
// only salted hashes.
extension SynodClient {
    /// Turns auth on. Refused unless the user root exists and holds the role root (`synod auth
    /// enable` creates the role and grants it first, as etcdctl does).
    public func authEnable() async throws { try await auth(.enable) }

    public func authDisable() async throws { try await auth(.disable) }

    /// The auth state: everything for root (or while auth is off), else the asker's own user
    /// and roles. Linearizable.
    public func authStatus() async throws -> AuthSummary {
        let response = try await send(.read(.linearizable, KVQuery.auth.encode()))
        do { return try AuthSummary.decode(response.body) } catch { throw ClientError.badResponse("\(error)") }
    }

    /// Adds a user; a nil password makes one that cannot authenticate by password.
    public func addUser(_ name: String, password: String?) async throws {
        try await auth(.userAdd(name: name, credential: password.map { Passwords.credential(for: Array($0.utf8)) }))
    }

    public func deleteUser(_ name: String) async throws { try await auth(.userDelete(name: name)) }

    /// Sets `user`'s password: connections authenticated with the old one are refused from then on.
    public func changePassword(user: String, to password: String) async throws {
        try await auth(.userChangePassword(name: user, credential: Passwords.credential(for: Array(password.utf8))))
    }

    public func grantRole(_ role: String, to user: String) async throws { try await auth(.userGrantRole(user: user, role: role)) }
    public func revokeRole(_ role: String, from user: String) async throws { try await auth(.userRevokeRole(user: user, role: role)) }
    public func addRole(_ name: String) async throws { try await auth(.roleAdd(name: name)) }
    public func deleteRole(_ name: String) async throws { try await auth(.roleDelete(name: name)) }

    /// Grants `role` `kind` on the etcd range (`key`, `rangeEnd`): an empty `rangeEnd` is the key
    /// alone, `[0]` every key from `key` on, `KeyRange.prefixEnd(key)` the prefix.
    public func grantPermission(_ kind: PermissionKind, key: [UInt8], rangeEnd: [UInt8] = [], to role: String) async throws {
        try await auth(.roleGrantPermission(role: role, permission: KeyPermission(kind, key: key, rangeEnd: rangeEnd)))
    }

    public func revokePermission(key: [UInt8], rangeEnd: [UInt8] = [], from role: String) async throws {
        try await auth(.roleRevokePermission(role: role, key: key, rangeEnd: rangeEnd))
    }

    @discardableResult
    func auth(_ command: AuthCommand) async throws -> AuthResult {
        guard case let .auth(r) = try await write(.auth(command)) else { throw unexpected() }
        return r
    }
}
