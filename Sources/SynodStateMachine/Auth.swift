import SynodCore

// Authentication and role-based access (etcd's auth): users with passwords and roles, roles
// with key-range permissions, and a switch that turns checking on. All of it is replicated
// state (`sm_meta` records under `auth/`), changed only by `Command.auth` entries, so every
// replica decides a command's permission the same way at the same log index.
//
// Invariants:
// - While `enabled`, the user `root` exists and holds the role `root`, and when enabled some
//   holder of the role `root` had a password (enable refuses otherwise; neither root can be
//   removed while enabled), so an operator cannot lock every administrator out by accident.
// - A stamped command (`CommandEnvelope.principal`) is checked when it applies, against the
//   auth state as of its log index: a permission revoked before the entry is honoured, one
//   revoked after it is not (etcd checks at apply for the same reason).
// - A user's `generation` changes whenever its credential does (added, password changed):
//   a connection authenticated under an older generation is refused until it authenticates
//   again, so a changed password locks out sessions opened with the old one.

/// What a permission allows on its key range (etcd's numbering: READ 0, WRITE 1, READWRITE 2).
public enum PermissionKind: UInt8, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    case read = 0
    case write = 1
    case readWrite = 2

    public var allowsRead: Bool { self != .write }
    public var allowsWrite: Bool { self != .read }
    public var description: String {
        switch self {
        case .read: return "read"
        case .write: return "write"
        case .readWrite: return "readwrite"
        }
    }
}

/// One permission of a role: `kind` on the etcd range (`key`, `rangeEnd`) — an empty
/// `rangeEnd` is the single key, `[0]` every key from `key` on.
public struct KeyPermission: Hashable, Sendable, Comparable {
    public var kind: PermissionKind
    public var key: [UInt8]
    public var rangeEnd: [UInt8]
    public init(_ kind: PermissionKind, key: [UInt8], rangeEnd: [UInt8] = []) {
        self.kind = kind
        self.key = key
        self.rangeEnd = rangeEnd
    }
    public static func < (a: KeyPermission, b: KeyPermission) -> Bool {
        if a.key != b.key { return a.key.lexicographicallyPrecedes(b.key) }
        if a.rangeEnd != b.rangeEnd { return a.rangeEnd.lexicographicallyPrecedes(b.rangeEnd) }
        return a.kind.rawValue < b.kind.rawValue
    }
}

/// A password as stored: PBKDF2-HMAC-SHA256 of the password with `salt` over `rounds`
/// iterations. Computed by the client that sets it (the log never carries a password);
/// checked by the node a client authenticates with.
public struct PasswordCredential: Hashable, Sendable {
    public var salt: [UInt8]
    public var hash: [UInt8]
    public var rounds: UInt32
    public init(salt: [UInt8], hash: [UInt8], rounds: UInt32) {
        self.salt = salt
        self.hash = hash
        self.rounds = rounds
    }
}

/// A user: its credential (nil: no password, it cannot authenticate — etcd's `--no-password`),
/// its roles (ascending) and the generation of its credential.
public struct AuthUser: Hashable, Sendable {
    public var name: String
    public var credential: PasswordCredential?
    public var roles: [String]
    public var generation: UInt64
    public init(name: String, credential: PasswordCredential?, roles: [String] = [], generation: UInt64) {
        self.name = name
        self.credential = credential
        self.roles = roles
        self.generation = generation
    }
}

/// A role and its permissions (ascending, no duplicates).
public struct AuthRole: Hashable, Sendable {
    public var name: String
    public var permissions: [KeyPermission]
    public init(name: String, permissions: [KeyPermission] = []) {
        self.name = name
        self.permissions = permissions
    }
}

/// Who sent a client command or read: the user a connection authenticated as and the
/// generation of the credential it used. The leader stamps it on every client command
/// (`CommandEnvelope.principal`); an unauthenticated connection is `anonymous`.
public struct AuthPrincipal: Hashable, Sendable {
    public var user: String
    public var generation: UInt64
    public init(user: String, generation: UInt64) {
        self.user = user
        self.generation = generation
    }
    public static let anonymous = AuthPrincipal(user: "", generation: 0)
    public var isAnonymous: Bool { user.isEmpty }
}

/// What a request needs to be allowed.
public enum Access: Hashable, Sendable {
    /// Read permission on the etcd range (`key`, `rangeEnd`).
    case read(key: [UInt8], rangeEnd: [UInt8])
    /// Write permission on the etcd range (`key`, `rangeEnd`).
    case write(key: [UInt8], rangeEnd: [UInt8])
    /// Any authenticated user (lease grants and keep-alives, alarms' list).
    case authenticated
    /// The role `root` (membership, compaction, backups, auth administration).
    case admin
    /// The user `name` itself, or the role `root` (changing one's own password).
    case selfOrAdmin(String)
}

/// The replicated auth state (see the invariants at the top of this file).
public struct AuthState: Hashable, Sendable {
    /// Whether permissions are checked. Off: every request is allowed (etcd's default).
    public var enabled = false
    /// Bumped by every auth change (etcd's auth revision; a new credential's generation).
    public var revision: UInt64 = 0
    public var users: [String: AuthUser] = [:]
    public var roles: [String: AuthRole] = [:]
    /// Each user's permissions merged into disjoint ranges (derived from `users` and `roles` by
    /// `recompile`, after every change): a check is a binary search, not a walk of every role.
    var grants: [String: UserGrants] = [:]
    public init() {}

    /// Rebuilds `grants`; call after changing `users` or `roles`.
    mutating func recompile() {
        var out: [String: UserGrants] = [:]
        for user in users.values {
            var read: [KeyInterval] = [], write: [KeyInterval] = []
            for name in user.roles {
                for p in roles[name]?.permissions ?? [] {
                    if p.kind.allowsRead { read.append(KeyInterval(p.key, p.rangeEnd)) }
                    if p.kind.allowsWrite { write.append(KeyInterval(p.key, p.rangeEnd)) }
                }
            }
            out[user.name] = UserGrants(isRoot: user.roles.contains(Self.rootName), read: KeyGrants(read), write: KeyGrants(write))
        }
        grants = out
    }

    /// The user and role every enabled cluster has (see the invariants).
    public static let rootName = "root"

    /// Why `principal` may not do `access`, or nil if it may.
    public func denial(_ principal: AuthPrincipal?, _ access: Access) -> KVError? {
        guard enabled else { return nil }
        guard let principal, !principal.isAnonymous else {
            return .permissionDenied("authentication required: authentication is enabled")
        }
        guard let user = users[principal.user], user.generation == principal.generation else {
            return .permissionDenied("user \(principal.user) was deleted or its password changed: authenticate again")
        }
        let g = grants[user.name] ?? UserGrants(isRoot: false, read: KeyGrants([]), write: KeyGrants([]))
        if g.isRoot { return nil }
        switch access {
        case .authenticated: return nil
        case .admin:
            return .permissionDenied("user \(user.name) lacks the root role")
        case let .selfOrAdmin(name):
            return name == user.name ? nil : .permissionDenied("user \(user.name) lacks the root role")
        case let .read(key, rangeEnd):
            return g.read.covers(key, rangeEnd) ? nil : .permissionDenied("user \(user.name) may not read \(Self.describe(key, rangeEnd))")
        case let .write(key, rangeEnd):
            return g.write.covers(key, rangeEnd) ? nil : .permissionDenied("user \(user.name) may not write \(Self.describe(key, rangeEnd))")
        }
    }

    static func describe(_ key: [UInt8], _ rangeEnd: [UInt8]) -> String {
        let k = String(decoding: key.prefix(64), as: UTF8.self)
        if rangeEnd.isEmpty { return "key \"\(k)\"" }
        if rangeEnd == [0] { return "keys from \"\(k)\" on" }
        return "range [\"\(k)\", \"\(String(decoding: rangeEnd.prefix(64), as: UTF8.self))\")"
    }

    /// The users, ascending by name (never dictionary order).
    public var sortedUsers: [AuthUser] { users.values.sorted { $0.name < $1.name } }
    /// The roles, ascending by name.
    public var sortedRoles: [AuthRole] { roles.values.sorted { $0.name < $1.name } }
}

/// A half-open interval of keys [`start`, `end`); `end` nil is "to the end of the key space".
struct KeyInterval: Hashable {
    var start: [UInt8]
    var end: [UInt8]?

    /// The interval of the etcd range (`key`, `rangeEnd`): a single key k is [k, k + [0]).
    init(_ key: [UInt8], _ rangeEnd: [UInt8]) {
        start = key
        if rangeEnd.isEmpty { end = key + [0] } else if rangeEnd == [0] { end = nil } else { end = rangeEnd }
    }

    var isEmpty: Bool { end.map { !start.lexicographicallyPrecedes($0) } ?? false }
}

/// What one user may read and write, merged (`AuthState.recompile`).
struct UserGrants: Hashable, Sendable {
    var isRoot: Bool
    var read: KeyGrants
    var write: KeyGrants
}

/// Key ranges merged into disjoint, ascending, non-adjacent intervals, so a range is covered by
/// the union exactly when one interval contains it.
struct KeyGrants: Hashable, Sendable {
    /// Invariant: ascending by start, non-empty, and each ends before the next starts.
    private(set) var intervals: [KeyInterval]

    init(_ granted: [KeyInterval]) {
        var out: [KeyInterval] = []
        for i in granted.filter({ !$0.isEmpty }).sorted(by: { $0.start.lexicographicallyPrecedes($1.start) }) {
            guard var last = out.last else { out.append(i); continue }
            guard let lastEnd = last.end else { break }   // open-ended: covers everything after
            if i.start.lexicographicallyPrecedes(lastEnd) || i.start == lastEnd {
                if let end = i.end {
                    if lastEnd.lexicographicallyPrecedes(end) { last.end = end }
                } else {
                    last.end = nil
                }
                out[out.count - 1] = last
            } else {
                out.append(i)
            }
        }
        intervals = out
    }

    /// Whether every key of the etcd range (`key`, `rangeEnd`) is granted. Allocates nothing.
    func covers(_ key: [UInt8], _ rangeEnd: [UInt8]) -> Bool {
        if !rangeEnd.isEmpty, rangeEnd != [0], !key.lexicographicallyPrecedes(rangeEnd) { return true }   // an empty range
        // The last interval starting at or before `key`.
        var lo = 0, hi = intervals.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if key.lexicographicallyPrecedes(intervals[mid].start) { hi = mid } else { lo = mid + 1 }
        }
        guard lo > 0 else { return false }
        let i = intervals[lo - 1]
        guard let end = i.end else { return true }
        // A single key k is covered when k < end; [key, rangeEnd) when key < end and rangeEnd <= end.
        guard key.lexicographicallyPrecedes(end) else { return false }
        if rangeEnd.isEmpty { return true }
        if rangeEnd == [0] { return false }
        return !end.lexicographicallyPrecedes(rangeEnd)
    }
}

/// Bounds on the auth state (STYLE.md: a limit on everything).
public enum AuthLimits {
    public static let usersMax = 1_000
    public static let rolesMax = 1_000
    public static let rolesPerUserMax = 100
    public static let permissionsPerRoleMax = 1_000
    /// Longest user or role name, in UTF-8 bytes.
    public static let nameBytesMax = 128
    /// Salt and hash lengths a credential may have.
    public static let credentialBytes = 8...64
    /// PBKDF2 rounds a credential may ask for: enough to make guessing slow, few enough that
    /// checking one cannot stall a node for long.
    public static let roundsRange: ClosedRange<UInt32> = 10_000...500_000
    /// The rounds Synod's clients use for new passwords (swift-crypto's floor, after OWASP).
    public static let roundsDefault: UInt32 = 210_000
}
