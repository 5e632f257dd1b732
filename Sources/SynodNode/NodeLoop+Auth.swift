import Dispatch
import SynodCrypto
import SynodStateMachine
import SynodTransport
import SynodWire

// Auth on the node (docs/OPERATIONS.md, "Auth"): a connection authenticates once, then every
// request on it runs as that user. Writes are checked where they apply (the leader stamps each
// with its sender, `CommandEnvelope.stamping`); reads, watches and administrative requests are
// checked here, against this node's applied auth state — for a linearizable read, after the
// node has applied through the read index, so a permission revoked before the read is honoured.

extension NodeLoop {
    /// The user `c` authenticated as, or anonymous.
    func principal(of c: ClientConnection) -> AuthPrincipal {
        c.identity.map { AuthPrincipal(user: $0.user, generation: $0.generation) } ?? .anonymous
    }

    /// The refusal of `access` for `c`'s user, or nil when allowed (always while auth is off).
    func denial(_ c: ClientConnection, _ access: Access, _ id: UInt64) -> ClientResponse? {
        let auth = sm.kv.auth
        guard auth.enabled, let e = auth.denial(principal(of: c), access) else { return nil }
        return ClientResponse(id: id, status: .permissionDenied, message: Self.reason(e))
    }

    /// A refusal's text for the client: a denial's reason alone, anything else described.
    static func reason(_ e: KVError) -> String {
        if case let .permissionDenied(why) = e { return why }
        return "\(e)"
    }

    /// What a request other than a write or a read needs; nil: anyone may send it.
    func access(_ body: ClientRequestBody) -> Access? {
        switch body {
        case .write, .read, .watch, .status, .statusDetail, .cancelWatch, .requestWatchProgress, .authenticate: return nil
        case .leaseKeepAlive: return .authenticated
        case let .member(bytes):
            // The list is anyone's (clients find the cluster with it); changes are root's.
            if let r = try? MemberRequest.decode(bytes), r.operation == .list { return nil }
            return .admin
        case .snapshot, .hashKV, .defragment: return .admin
        }
    }

    /// After the auth state changed (a batch applied an auth command): every watch is checked
    /// again as the user that started it, and one no longer allowed ends with `permissionDenied`
    /// before it is handed any event of the batch. A watch is otherwise checked only as it starts.
    func recheckWatchers() {
        let auth = sm.kv.auth
        guard auth.revision != watchersAuthRevision else { return }
        watchersAuthRevision = auth.revision
        guard auth.enabled else { return }
        for (key, w) in watchers {
            guard let e = auth.denial(w.principal, .read(key: w.request.key, rangeEnd: w.request.rangeEnd)) else { continue }
            watchers[key] = nil
            respond(w.connection, ClientResponse(id: w.requestID, status: .permissionDenied, message: Self.reason(e)))
        }
    }

    /// What a query needs (its auth-state answer is trimmed instead: `authSummary`).
    static func access(_ query: KVQuery) -> Access? {
        switch query {
        case let .range(r): return .read(key: r.key, rangeEnd: r.rangeEnd)
        case .leases, .lease, .alarms: return .authenticated
        case .auth: return nil
        }
    }

    /// Most password checks queued or running at once; beyond it `authenticate` is `busy`.
    static let authChecksMax = 256

    /// Answers `authenticate` once this node applied through the read index (so a user added
    /// or a password changed before the request counts): the password is checked on a
    /// background queue (PBKDF2 is slow on purpose), then the connection takes the identity.
    func authenticate(_ user: String, _ password: [UInt8], _ id: UInt64, _ c: ClientConnection) {
        let counter = authChecks
        let claimed = counter.withLockedValue { n -> Bool in
            guard n < Self.authChecksMax else { return false }
            n += 1
            return true
        }
        guard claimed else { return respond(c, ClientResponse(id: id, status: .busy, message: "too many authentications in flight; retry")) }
        let record = sm.kv.auth.users[user]
        authQueue.async {
            defer { counter.withLockedValue { $0 -= 1 } }
            let matched: Bool
            if let record, let credential = record.credential {
                matched = Passwords.matches(password, credential)
            } else {
                Passwords.checkNothing(password)
                matched = false
            }
            guard let record, matched else {
                return c.send(ClientResponse(id: id, status: .authenticationFailed, message: "authentication failed: wrong user name or password"))
            }
            c.identity = ConnectionIdentity(user: user, generation: record.generation)
            c.send(ClientResponse(id: id, status: .ok, body: Array(user.utf8)))
        }
    }

    /// The auth state as `c`'s user may see it: everything (credentials left out) for root or
    /// while auth is off; otherwise only the switch, the user itself and its roles.
    func authSummary(for c: ClientConnection) -> AuthSummary {
        let auth = sm.kv.auth
        let everything = !auth.enabled || auth.denial(principal(of: c), .admin) == nil
        let me = c.identity?.user
        let users = auth.sortedUsers.filter { everything || $0.name == me }
        let roles = auth.sortedRoles.filter { role in everything || users.contains { $0.roles.contains(role.name) } }
        return AuthSummary(enabled: auth.enabled, revision: auth.revision, clusterVersion: sm.kv.clusterVersion,
                           users: users.map { AuthSummary.User(name: $0.name, roles: $0.roles, hasPassword: $0.credential != nil) },
                           roles: roles)
    }
}
