import SynodCore

extension ApplyContext {
    /// Why `principal` may not run `command` under the auth state as of this entry, or nil.
    func authDenial(_ principal: AuthPrincipal, _ command: Command) throws -> KVError? {
        guard auth.enabled, !testingAuthUnchecked else { return nil }
        // The common case without building a list.
        if case let .put(key, _, _, prevKV) = command {
            if let d = auth.denial(principal, .write(key: key, rangeEnd: [])) { return d }
            return prevKV ? auth.denial(principal, .read(key: key, rangeEnd: [])) : nil
        }
        for access in try requiredAccess(command) {
            if let denial = auth.denial(principal, access) { return denial }
        }
        return nil
    }

    /// What a client command needs (etcd's rules where etcd has them): key permissions for
    /// key-value changes (read as well when the previous value comes back), write on every key
    /// attached to a lease to revoke it, read-write on the mesh's prefix for mesh commands, any
    /// authenticated user to grant a lease, and the root role for the rest.
    func requiredAccess(_ command: Command) throws -> [Access] {
        func change(_ key: [UInt8], _ rangeEnd: [UInt8], prevKV: Bool) -> [Access] {
            prevKV ? [.write(key: key, rangeEnd: rangeEnd), .read(key: key, rangeEnd: rangeEnd)] : [.write(key: key, rangeEnd: rangeEnd)]
        }
        // A delete-range's empty end means "to the end of the key space" (`ApplyContext.keys`),
        // not the single key an empty end means in a permission: check it as `[0]`.
        func toEnd(_ to: [UInt8]) -> [UInt8] { to.isEmpty ? [0] : to }
        switch command {
        case let .put(key, _, _, prevKV): return change(key, [], prevKV: prevKV)
        // The kept value is not returned (unless prevKV asks, which needs read): as etcd, write.
        case let .putIgnoring(key, _, _, prevKV, _, _): return change(key, [], prevKV: prevKV)
        case let .delete(key, prevKV): return change(key, [], prevKV: prevKV)
        case let .deleteRange(from, to, prevKV): return change(from, toEnd(to), prevKV: prevKV)
        case let .txn(t):
            var out = t.compares.map { Access.read(key: $0.key, rangeEnd: []) }
            for op in t.success + t.failure {
                switch op {
                case let .put(key, _, _, prevKV): out += change(key, [], prevKV: prevKV)
                case let .delete(key, prevKV): out += change(key, [], prevKV: prevKV)
                case let .deleteRange(from, to, prevKV): out += change(from, toEnd(to), prevKV: prevKV)
                case let .range(r): out.append(.read(key: r.key, rangeEnd: r.rangeEnd))
                }
            }
            return out
        case .leaseGrant: return [.authenticated]
        case let .leaseRevoke(id):
            var keys: [[UInt8]] = []
            let prefix = LayoutKeys.leaseKey(id)
            try w.scan(Tables.leaseKeys, from: prefix, limit: Int.max) { k, _ in
                guard k.starts(with: prefix) else { return false }
                keys.append(Array(k.dropFirst(prefix.count)))
                return true
            }
            return [.authenticated] + keys.map { .write(key: $0, rangeEnd: []) }
        case .mesh:
            let end = KeyRange.prefixEnd(MeshKeys.prefix)
            return [.read(key: MeshKeys.prefix, rangeEnd: end), .write(key: MeshKeys.prefix, rangeEnd: end)]
        case let .auth(a): return [a.access]
        case .leaseExpire, .compact, .alarm, .clusterVersion: return [.admin]
        }
    }

    /// Applies an auth command (refused below `KVStateMachine.authClusterVersion`).
    func applyAuth(_ command: AuthCommand) throws -> Response {
        guard clusterVersion >= KVStateMachine.authClusterVersion else {
            return .failure(.invalidRequest("auth needs cluster version \(KVStateMachine.authClusterVersion); the cluster runs \(clusterVersion)"))
        }
        if let refusal = try changeAuth(command) { return .failure(refusal) }
        auth.recompile()
        return .auth(AuthResult(revision: revision, authRevision: auth.revision))
    }

    private func invalid(_ why: String) -> KVError { .invalidRequest(why) }

    private func validName(_ name: String, _ what: String) -> KVError? {
        let n = name.utf8.count
        guard n >= 1, n <= AuthLimits.nameBytesMax else { return invalid("a \(what) name has 1 to \(AuthLimits.nameBytesMax) bytes") }
        return nil
    }

    private func validCredential(_ c: PasswordCredential) -> KVError? {
        guard AuthLimits.credentialBytes.contains(c.salt.count), AuthLimits.credentialBytes.contains(c.hash.count) else {
            return invalid("a password's salt and hash have \(AuthLimits.credentialBytes.lowerBound) to \(AuthLimits.credentialBytes.upperBound) bytes")
        }
        guard AuthLimits.roundsRange.contains(c.rounds) else {
            return invalid("a password's rounds are \(AuthLimits.roundsRange.lowerBound) to \(AuthLimits.roundsRange.upperBound)")
        }
        return nil
    }

    /// Makes the change (tables and `auth`), or returns why not (nothing changed then).
    private func changeAuth(_ command: AuthCommand) throws -> KVError? {
        let root = AuthState.rootName
        switch command {
        case .enable:
            if auth.enabled { return nil }
            guard let user = auth.users[root], user.roles.contains(root), auth.roles[root] != nil else {
                return invalid("enabling auth needs the user root holding the role root")
            }
            // Someone must be able to log in as an administrator, or nobody could ever disable it.
            guard auth.users.values.contains(where: { $0.credential != nil && $0.roles.contains(root) }) else {
                return invalid("enabling auth needs a user holding the role root that has a password")
            }
            auth.enabled = true
            try bumpAuth()
        case .disable:
            guard auth.enabled else { return nil }
            auth.enabled = false
            try bumpAuth()
        case let .userAdd(name, credential):
            if let e = validName(name, "user") { return e }
            if let credential, let e = validCredential(credential) { return e }
            guard auth.users[name] == nil else { return invalid("user \(name) already exists") }
            guard auth.users.count < AuthLimits.usersMax else { return invalid("at most \(AuthLimits.usersMax) users") }
            try bumpAuth()
            try store(AuthUser(name: name, credential: credential, generation: auth.revision))
        case let .userDelete(name):
            // Names compare as Swift strings (canonically equivalent spellings are one name); the
            // record's key is the stored spelling's bytes, never the command's.
            guard let stored = auth.users[name]?.name else { return invalid("user \(name) not found") }
            if auth.enabled, stored == root { return invalid("the user root cannot be deleted while auth is enabled") }
            auth.users[stored] = nil
            try w.delete(Tables.meta, AuthKeys.user(stored))
            try bumpAuth()
        case let .userChangePassword(name, credential):
            guard var user = auth.users[name] else { return invalid("user \(name) not found") }
            if let e = validCredential(credential) { return e }
            try bumpAuth()
            user.credential = credential
            user.generation = auth.revision
            try store(user)
        case let .userGrantRole(name, role):
            guard var user = auth.users[name] else { return invalid("user \(name) not found") }
            guard let stored = auth.roles[role]?.name else { return invalid("role \(role) not found") }
            if user.roles.contains(stored) { return nil }
            guard user.roles.count < AuthLimits.rolesPerUserMax else { return invalid("a user holds at most \(AuthLimits.rolesPerUserMax) roles") }
            user.roles = (user.roles + [stored]).sorted()
            try store(user)
            try bumpAuth()
        case let .userRevokeRole(name, role):
            guard var user = auth.users[name] else { return invalid("user \(name) not found") }
            guard user.roles.contains(role) else { return invalid("user \(name) does not hold role \(role)") }
            if auth.enabled, name == root, role == root { return invalid("the role root cannot be taken from the user root while auth is enabled") }
            user.roles.removeAll { $0 == role }
            try store(user)
            try bumpAuth()
        case let .roleAdd(name):
            if let e = validName(name, "role") { return e }
            guard auth.roles[name] == nil else { return invalid("role \(name) already exists") }
            guard auth.roles.count < AuthLimits.rolesMax else { return invalid("at most \(AuthLimits.rolesMax) roles") }
            try store(AuthRole(name: name))
            try bumpAuth()
        case let .roleDelete(name):
            guard let stored = auth.roles[name]?.name else { return invalid("role \(name) not found") }
            if auth.enabled, stored == root { return invalid("the role root cannot be deleted while auth is enabled") }
            auth.roles[stored] = nil
            try w.delete(Tables.meta, AuthKeys.role(stored))
            // Taken from every user that held it (in name order: deterministic writes).
            for var user in auth.sortedUsers where user.roles.contains(stored) {
                user.roles.removeAll { $0 == stored }
                try store(user)
            }
            try bumpAuth()
        case let .roleGrantPermission(name, permission):
            guard var role = auth.roles[name] else { return invalid("role \(name) not found") }
            if let e = validRange(permission.key, permission.rangeEnd) { return e }
            let others = role.permissions.filter { !($0.key == permission.key && $0.rangeEnd == permission.rangeEnd) }
            guard others.count < AuthLimits.permissionsPerRoleMax else { return invalid("a role has at most \(AuthLimits.permissionsPerRoleMax) permissions") }
            role.permissions = (others + [permission]).sorted()
            try store(role)
            try bumpAuth()
        case let .roleRevokePermission(name, key, rangeEnd):
            guard var role = auth.roles[name] else { return invalid("role \(name) not found") }
            let kept = role.permissions.filter { !($0.key == key && $0.rangeEnd == rangeEnd) }
            guard kept.count < role.permissions.count else { return invalid("role \(name) has no permission on \(AuthState.describe(key, rangeEnd))") }
            role.permissions = kept
            try store(role)
            try bumpAuth()
        }
        return nil
    }

    /// A permission's range: a non-empty key no longer than a key may be, and an end that is
    /// empty, `[0]`, or after the key (the empty key only with `[0]`: every key).
    private func validRange(_ key: [UInt8], _ rangeEnd: [UInt8]) -> KVError? {
        guard key.count <= KVLimits.keyBytesMax, rangeEnd.count <= KVLimits.keyBytesMax else {
            return .keyTooLarge(bytes: max(key.count, rangeEnd.count), limit: KVLimits.keyBytesMax)
        }
        if key.isEmpty, rangeEnd != [0] { return invalid("an empty permission key needs the range end [0] (every key)") }
        if !rangeEnd.isEmpty, rangeEnd != [0], !key.lexicographicallyPrecedes(rangeEnd) { return invalid("a permission's range end must follow its key") }
        return nil
    }

    private func store(_ user: AuthUser) throws {
        auth.users[user.name] = user
        try w.put(Tables.meta, AuthKeys.user(user.name), StoredAuth.encode(user))
    }

    private func store(_ role: AuthRole) throws {
        auth.roles[role.name] = role
        try w.put(Tables.meta, AuthKeys.role(role.name), StoredAuth.encode(role))
    }

    private func bumpAuth() throws {
        auth.revision += 1
        try w.put(Tables.meta, AuthKeys.meta, StoredAuth.encodeMeta(auth))
    }
}
