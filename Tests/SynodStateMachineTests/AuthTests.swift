import SynodCore
@testable import SynodStateMachine
import Testing

/// Auth in the state machine: users, roles and permissions are replicated state changed by
/// auth commands; a stamped command is checked at apply against the state as of its entry.
@Suite("Auth")
struct AuthTests {
    static let credential = PasswordCredential(salt: Array(repeating: 1, count: 16), hash: Array(repeating: 2, count: 32), rounds: 10_000)
    static let otherCredential = PasswordCredential(salt: Array(repeating: 3, count: 16), hash: Array(repeating: 4, count: 32), rounds: 10_000)

    /// Runs `command` stamped with `principal` (as the leader proposes a client's command).
    @discardableResult
    static func run(_ h: Harness, _ command: Command, as principal: AuthPrincipal?) throws -> Response {
        var e = h.entry(command)
        e.payload = CommandEnvelope.stamping(CommandEnvelope(command: command).encode(), with: principal ?? .anonymous)
        let applied = try h.sm.apply([e])
        try #require(applied.count == 1)
        return try #require(applied[0].response)
    }

    static func ok(_ r: Response, _ what: String = "", sourceLocation: SourceLocation = #_sourceLocation) {
        if case let .failure(e) = r { Issue.record("\(what): \(e)", sourceLocation: sourceLocation) }
    }

    static func denied(_ r: Response, _ what: String = "", sourceLocation: SourceLocation = #_sourceLocation) {
        guard case .failure(.permissionDenied) = r else { Issue.record("\(what) not denied: \(r)", sourceLocation: sourceLocation); return }
    }

    /// Version 2, root (root role), alice (role `r`: readwrite on prefix a/, read on key b),
    /// auth enabled. Returns the principals of root and alice.
    static func setUp(_ h: Harness) throws -> (root: AuthPrincipal, alice: AuthPrincipal) {
        try h.run(.clusterVersion(2))
        for c: AuthCommand in [.userAdd(name: "root", credential: credential), .roleAdd(name: "root"), .userGrantRole(user: "root", role: "root"),
                               .userAdd(name: "alice", credential: credential), .roleAdd(name: "r"),
                               .roleGrantPermission(role: "r", permission: KeyPermission(.readWrite, key: b("a/"), rangeEnd: KeyRange.prefixEnd(b("a/")))),
                               .roleGrantPermission(role: "r", permission: KeyPermission(.read, key: b("b"))),
                               .userGrantRole(user: "alice", role: "r"), .enable] {
            ok(try h.run(.auth(c)).response!, "\(c)")
        }
        let auth = h.sm.auth
        return (AuthPrincipal(user: "root", generation: auth.users["root"]!.generation), AuthPrincipal(user: "alice", generation: auth.users["alice"]!.generation))
    }

    @Test("auth commands need cluster version 2")
    func needsVersion() throws {
        let h = try Harness(.memory)
        guard case .failure(.invalidRequest) = try h.run(.auth(.roleAdd(name: "r"))).response else { Issue.record("applied below version 2"); return }
        #expect(h.sm.auth.roles.isEmpty)
    }

    @Test("enable needs root holding the role root; the state survives a restart", arguments: StoreKind.allCases)
    func enableNeedsRoot(_ kind: StoreKind) throws {
        let h = try Harness(kind)
        try h.run(.clusterVersion(2))
        Self.ok(try h.run(.auth(.userAdd(name: "root", credential: nil))).response!)
        guard case .failure(.invalidRequest) = try h.run(.auth(.enable)).response else { Issue.record("enabled without the root role"); return }
        Self.ok(try h.run(.auth(.roleAdd(name: "root"))).response!)
        Self.ok(try h.run(.auth(.userGrantRole(user: "root", role: "root"))).response!)
        // Nobody holding the role root could log in: enabling would lock administrators out.
        guard case .failure(.invalidRequest) = try h.run(.auth(.enable)).response else { Issue.record("enabled with a password-less root"); return }
        Self.ok(try h.run(.auth(.userChangePassword(name: "root", credential: Self.credential))).response!)
        // Unstamped auth commands are checked as anonymous: fine while disabled.
        Self.ok(try h.run(.auth(.enable)).response!)
        #expect(h.sm.auth.enabled)
        let before = h.sm.auth
        try h.restart()
        #expect(h.sm.auth == before)
        #expect(h.sm.auth.users["root"]?.credential == Self.credential)
        Self.denied(try h.run(.auth(.disable)).response!, "anonymous disable")
    }

    @Test("stamped commands are checked against the user's permissions at apply", arguments: StoreKind.allCases)
    func permissionsChecked(_ kind: StoreKind) throws {
        let h = try Harness(kind)
        let (root, alice) = try Self.setUp(h)
        Self.ok(try Self.run(h, .put(key: b("a/1"), value: b("x"), lease: nil, prevKV: true), as: alice), "put under a/")
        Self.denied(try Self.run(h, .put(key: b("b"), value: b("x"), lease: nil, prevKV: false), as: alice), "put b (read only)")
        Self.denied(try Self.run(h, .put(key: b("c"), value: b("x"), lease: nil, prevKV: false), as: alice), "put c")
        Self.denied(try Self.run(h, .put(key: b("a/1"), value: b("x"), lease: nil, prevKV: false), as: nil), "anonymous put")
        Self.denied(try Self.run(h, .deleteRange(from: b("a"), to: b("c"), prevKV: false), as: alice), "delete [a, c)")
        Self.ok(try Self.run(h, .deleteRange(from: b("a/"), to: KeyRange.prefixEnd(b("a/")), prevKV: false), as: alice), "delete a/*")
        // An empty end deletes to the end of the key space, not the one key.
        Self.ok(try Self.run(h, .put(key: b("a/9"), value: b("x"), lease: nil, prevKV: false), as: alice))
        Self.denied(try Self.run(h, .deleteRange(from: b("a/9"), to: [], prevKV: false), as: alice), "delete from a/9 to the end")
        let emptyEndTxn = Txn(compares: [], success: [.deleteRange(from: b("a/9"), to: [], prevKV: false)])
        Self.denied(try Self.run(h, .txn(emptyEndTxn), as: alice), "a txn deleting from a/9 to the end")
        let goodTxn = Txn(compares: [Compare(key: b("b"), .equal, .version(0))],
                          success: [.put(key: b("a/2"), value: b("y"), lease: nil, prevKV: false)], failure: [.range(RangeRequest(key: b("b")))])
        Self.ok(try Self.run(h, .txn(goodTxn), as: alice), "txn")
        let badTxn = Txn(compares: [], success: [.put(key: b("a/3"), value: b("y"), lease: nil, prevKV: false)],
                         failure: [.put(key: b("z"), value: b("y"), lease: nil, prevKV: false)])
        Self.denied(try Self.run(h, .txn(badTxn), as: alice), "txn with a put on z in a branch")
        #expect(try h.get("a/3") == nil, "nothing of a denied txn applies")
        Self.denied(try Self.run(h, .compact(revision: 1), as: alice), "compaction")
        Self.denied(try Self.run(h, .mesh(.rebalance, ifVersion: nil), as: alice), "mesh")
        Self.denied(try Self.run(h, .auth(.roleAdd(name: "x")), as: alice), "role add")
        Self.ok(try Self.run(h, .put(key: b("c"), value: b("x"), lease: nil, prevKV: false), as: root), "root writes anything")
        Self.ok(try Self.run(h, .leaseGrant(id: LeaseID(7), ttlMillis: 5000), as: alice), "lease grant")
        Self.ok(try Self.run(h, .put(key: b("c2"), value: b("x"), lease: LeaseID(7), prevKV: false), as: root))
        Self.denied(try Self.run(h, .leaseRevoke(id: LeaseID(7)), as: alice), "revoking a lease with c2 attached")
        // The leader's own commands carry no stamp and are not checked; an unstamped command with
        // a session (a client's, from a leader that should have stamped it) is checked as anonymous.
        Self.ok(try h.run(.put(key: b("zz"), value: b("x"), lease: nil, prevKV: false)).response!)
        Self.denied(try h.run(.put(key: b("zz"), value: b("y"), lease: nil, prevKV: false), session: ClientSession(clientID: 77, sequence: 1)).response!,
                    "an unstamped client command")
    }

    @Test("a changed password or a deleted user locks out the old credential; a revoked role its permissions")
    func staleCredentials() throws {
        let h = try Harness(.memory)
        let (root, alice) = try Self.setUp(h)
        let put = Command.put(key: b("a/1"), value: b("x"), lease: nil, prevKV: false)
        Self.ok(try Self.run(h, .auth(.userChangePassword(name: "alice", credential: Self.otherCredential)), as: alice), "own password")
        Self.denied(try Self.run(h, put, as: alice), "old generation")
        let alice2 = AuthPrincipal(user: "alice", generation: h.sm.auth.users["alice"]!.generation)
        Self.ok(try Self.run(h, put, as: alice2))
        Self.denied(try Self.run(h, .auth(.userChangePassword(name: "root", credential: Self.otherCredential)), as: alice2), "someone else's password")
        Self.ok(try Self.run(h, .auth(.roleRevokePermission(role: "r", key: b("a/"), rangeEnd: KeyRange.prefixEnd(b("a/")))), as: root))
        Self.denied(try Self.run(h, put, as: alice2), "after the permission was revoked")
        Self.ok(try Self.run(h, .auth(.userDelete(name: "alice")), as: root))
        Self.ok(try Self.run(h, .auth(.userAdd(name: "alice", credential: Self.credential)), as: root))
        #expect(h.sm.auth.users["alice"]!.generation != alice2.generation, "a re-added user is a new credential")
    }

    @Test("root stays an administrator while enabled; deleting a role takes it from its users")
    func rootProtected() throws {
        let h = try Harness(.memory)
        let (root, _) = try Self.setUp(h)
        for c: AuthCommand in [.userDelete(name: "root"), .userRevokeRole(user: "root", role: "root"), .roleDelete(name: "root")] {
            guard case .failure(.invalidRequest) = try Self.run(h, .auth(c), as: root) else { Issue.record("\(c) allowed"); continue }
        }
        Self.ok(try Self.run(h, .auth(.roleDelete(name: "r")), as: root))
        #expect(h.sm.auth.users["alice"]?.roles == [])
        guard case .failure(.invalidRequest) = try Self.run(h, .auth(.userAdd(name: String(repeating: "n", count: 129), credential: nil)), as: root) else {
            Issue.record("an over-long name was accepted"); return
        }
        let weak = PasswordCredential(salt: Self.credential.salt, hash: Self.credential.hash, rounds: 1)
        guard case .failure(.invalidRequest) = try Self.run(h, .auth(.userAdd(name: "bob", credential: weak)), as: root) else {
            Issue.record("a credential of 1 round was accepted"); return
        }
        Self.ok(try Self.run(h, .auth(.disable), as: root))
        Self.ok(try h.run(.put(key: b("c"), value: b("x"), lease: nil, prevKV: false)).response!)
        Self.ok(try Self.run(h, .put(key: b("c"), value: b("x"), lease: nil, prevKV: false), as: nil), "anyone writes once disabled")
    }

    @Test("canonically equivalent names are one user, and deleting it by either spelling deletes its record", arguments: StoreKind.allCases)
    func canonicalNames(_ kind: StoreKind) throws {
        let h = try Harness(kind)
        try h.run(.clusterVersion(2))
        let composed = "caf\u{E9}", decomposed = "cafe\u{301}"
        Self.ok(try h.run(.auth(.userAdd(name: composed, credential: Self.credential))).response!)
        guard case .failure(.invalidRequest) = try h.run(.auth(.userAdd(name: decomposed, credential: Self.credential))).response else {
            Issue.record("a second user under an equivalent name"); return
        }
        Self.ok(try h.run(.auth(.roleAdd(name: decomposed))).response!)
        Self.ok(try h.run(.auth(.userGrantRole(user: decomposed, role: composed))).response!)
        Self.ok(try h.run(.auth(.userDelete(name: decomposed))).response!)
        Self.ok(try h.run(.auth(.roleDelete(name: composed))).response!)
        try h.restart()
        #expect(h.sm.auth.users.isEmpty && h.sm.auth.roles.isEmpty, "a record survived: \(h.sm.auth)")
    }

    @Test("the auth tests catch a state machine that skips the check (injected bug)")
    func uncheckedCommandsAreCaught() throws {
        let h = try Harness(.memory)
        let (_, alice) = try Self.setUp(h)
        h.sm.testingAuthUnchecked = true
        // `permissionsChecked`'s "put c" assertion would fail: the put goes through.
        guard case .put = try Self.run(h, .put(key: b("c"), value: b("x"), lease: nil, prevKV: false), as: alice) else {
            Issue.record("the injected bug did not let the put through"); return
        }
    }

    /// Alice writes under a session; Bob (allowed on b/ only) retries her sequence number with
    /// a put of his own — the retry would answer Alice's cached response — and sends a new
    /// sequence number on her session. Both are refused and change nothing; Alice's own retry is
    /// answered from the record. With the check skipped (`testingAuthUnchecked`, the injected
    /// bug) Bob receives Alice's cached answer.
    @Test("a session written by one user is refused to another (cluster version 3)", arguments: [false, true])
    func sessionsBelongToTheirUser(unchecked: Bool) throws {
        let h = try Harness(.memory)
        let (root, alice) = try Self.setUp(h)
        try h.run(.clusterVersion(3))
        for c: AuthCommand in [.userAdd(name: "bob", credential: Self.otherCredential), .roleAdd(name: "rb"),
                               .roleGrantPermission(role: "rb", permission: KeyPermission(.readWrite, key: b("b/"), rangeEnd: KeyRange.prefixEnd(b("b/")))),
                               .userGrantRole(user: "bob", role: "rb")] {
            Self.ok(try Self.run(h, .auth(c), as: root), "\(c)")
        }
        let bob = AuthPrincipal(user: "bob", generation: h.sm.auth.users["bob"]!.generation)
        func run(_ command: Command, _ session: ClientSession, as principal: AuthPrincipal) throws -> Response {
            var e = h.entry(command, session: session)
            e.payload = CommandEnvelope.stamping(CommandEnvelope(session: session, command: command).encode(), with: principal)
            return try #require(try h.sm.apply([e]).first?.response)
        }
        let s1 = ClientSession(clientID: 77, sequence: 1)
        let written = try run(.txn(Txn(compares: [], success: [.put(key: b("a/secret"), value: b("s"), lease: nil, prevKV: false),
                                                               .range(RangeRequest(key: b("a/secret")))])), s1, as: alice)
        guard case .txn = written else { Issue.record("alice's write: \(written)"); return }
        h.sm.testingAuthUnchecked = unchecked
        let retried = try run(.put(key: b("b/x"), value: b("1"), lease: nil, prevKV: false), s1, as: bob)
        if unchecked {
            #expect(retried == written, "the injected bug hands Bob Alice's cached answer")
            return
        }
        Self.denied(retried, "bob retrying alice's session")
        Self.denied(try run(.put(key: b("b/x"), value: b("1"), lease: nil, prevKV: false), ClientSession(clientID: 77, sequence: 2), as: bob),
                    "bob taking alice's session over")
        #expect(try h.get("b/x") == nil)
        #expect(try run(.put(key: b("a/other"), value: b("1"), lease: nil, prevKV: false), s1, as: alice) == written, "alice's own retry")
        // While auth is off there is no owner to hold to.
        Self.ok(try Self.run(h, .auth(.disable), as: root))
        guard case .put = try run(.put(key: b("b/x"), value: b("1"), lease: nil, prevKV: false), ClientSession(clientID: 77, sequence: 2), as: .anonymous) else {
            Issue.record("a session refused while auth is off"); return
        }
    }

    @Test("permission ranges: a union of ranges covers what it covers, and nothing more")
    func coverage() {
        func covers(_ granted: [([UInt8], [UInt8])], _ key: [UInt8], _ end: [UInt8]) -> Bool {
            KeyInterval.union(granted.map { KeyInterval($0.0, $0.1) }, covers: KeyInterval(key, end))
        }
        #expect(covers([(b("a"), b("c")), (b("c"), b("e"))], b("b"), b("d")))
        #expect(!covers([(b("a"), b("c")), (b("d"), b("e"))], b("b"), b("d")))
        #expect(covers([(b("k"), [])], b("k"), []))
        #expect(!covers([(b("k"), [])], b("k"), b("l")), "the single key k does not cover [k, l)")
        #expect(covers([(b("k"), [0])], b("zzz"), [0]))
        #expect(!covers([(b("k"), b("z"))], b("m"), [0]))
        #expect(covers([([], [0])], b("anything"), [0]))
        #expect(!covers([], b("a"), []))
        #expect(covers([(b("a"), b("b")), (b("a"), b("d"))], b("c"), []))
    }

    @Test("merged grants (the fast check) decide as the reference union on random ranges")
    func mergedGrantsMatchReference() {
        var rng = SeededRandom(seed: 7)
        let alphabet: [UInt8] = [0, 1, 97, 98, 99, 255]
        func key() -> [UInt8] { (0..<Int(rng.next() % 3)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] } }
        func end(after k: [UInt8]) -> [UInt8] {
            switch rng.next() % 4 {
            case 0: return []
            case 1: return [0]
            default: return k + [alphabet[Int(rng.next() % UInt64(alphabet.count))]] + key()
            }
        }
        for _ in 0..<3_000 {
            let granted = (0..<Int(rng.next() % 5)).map { _ -> KeyInterval in let k = key(); return KeyInterval(k, end(after: k)) }
            let k = key(), e = rng.next() % 5 == 0 ? key() : end(after: k)
            let fast = KeyGrants(granted).covers(k, e)
            let reference = KeyInterval.union(granted, covers: KeyInterval(k, e))
            #expect(fast == reference, "granted \(granted), wanted \(k) \(e)")
            if fast != reference { return }
        }
    }

    @Test("auth commands and stamped envelopes round-trip")
    func codec() throws {
        let commands: [AuthCommand] = [.enable, .disable, .userAdd(name: "u", credential: Self.credential), .userAdd(name: "v", credential: nil),
                                       .userDelete(name: "u"), .userChangePassword(name: "u", credential: Self.otherCredential),
                                       .userGrantRole(user: "u", role: "r"), .userRevokeRole(user: "u", role: "r"), .roleAdd(name: "r"), .roleDelete(name: "r"),
                                       .roleGrantPermission(role: "r", permission: KeyPermission(.write, key: b("k"), rangeEnd: [0])),
                                       .roleRevokePermission(role: "r", key: b("k"), rangeEnd: [0])]
        for c in commands {
            let e = CommandEnvelope(session: ClientSession(clientID: 1, sequence: 2), command: .auth(c), principal: AuthPrincipal(user: "ü", generation: 9))
            #expect(try CommandEnvelope.decode(e.encode()) == e)
        }
        let plain = CommandEnvelope(session: ClientSession(clientID: 1, sequence: 2), command: .put(key: b("k"), value: b("v"), lease: nil, prevKV: false))
        let stamped = CommandEnvelope.stamping(plain.encode(), with: AuthPrincipal(user: "alice", generation: 3))
        var expected = plain
        expected.principal = AuthPrincipal(user: "alice", generation: 3)
        #expect(try CommandEnvelope.decode(stamped) == expected)
        #expect(try Response.decode(Response.auth(AuthResult(revision: 4, authRevision: 5)).encode()) == .auth(AuthResult(revision: 4, authRevision: 5)))
        #expect(try Response.decode(Response.failure(.permissionDenied("no")).encode()) == .failure(.permissionDenied("no")))
    }
}

extension KeyInterval {
    /// Whether the union of `intervals` contains every key of `wanted` (the reference that
    /// `KeyGrants` is tested against; a plain walk, kept out of the product).
    static func union(_ intervals: [KeyInterval], covers wanted: KeyInterval) -> Bool {
        if wanted.isEmpty { return true }
        let sorted = intervals.filter { !$0.isEmpty }.sorted { $0.start.lexicographicallyPrecedes($1.start) }
        // Walk the intervals in start order, extending how far from `wanted.start` is covered.
        var reached = wanted.start
        for i in sorted {
            if reached.lexicographicallyPrecedes(i.start) { break }   // a gap before i
            guard let end = i.end else { return true }
            if reached.lexicographicallyPrecedes(end) { reached = end }
            if let w = wanted.end, !reached.lexicographicallyPrecedes(w) { return true }
        }
        return false
    }
}
