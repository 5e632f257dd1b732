import Foundation
import SynodClient
import SynodCore
import SynodStateMachine
import SynodTestSupport
import SynodWire
import Testing

extension RealProcessTests {
/// etcd's auth on real processes, set up with the CLI as an operator would: once enabled,
/// anonymous clients are refused, a user gets exactly its roles' key ranges (writes checked
/// where they apply, reads and watches on whichever node serves them), a wrong password is
/// refused, a changed password or a revoked permission takes effect at once, administrative
/// requests need root, and all of it survives a restart of the whole cluster.
@Suite("Auth on a real cluster")
struct AuthProcessTests {
    static func denied(_ what: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void) async {
        do {
            try await body()
            Issue.record("\(what) was allowed", sourceLocation: sourceLocation)
        } catch ClientError.kv(.permissionDenied) {
        } catch ClientError.rejected(.permissionDenied, _) {
        } catch {
            Issue.record("\(what): \(error)", sourceLocation: sourceLocation)
        }
    }

    func client(_ cluster: Cluster, _ user: String, _ password: String, only node: Int? = nil) -> SynodClient {
        var config = ClientConfiguration(endpoints: node.map { [cluster.endpoints[$0 - 1]] } ?? cluster.endpoints)
        config.retryDeadlineMillis = 20_000
        config.credentials = Credentials(user: user, password: password)
        return SynodClient(config)
    }

    @Test("users, roles and permissions end to end, through the CLI and the client")
    func endToEnd() async throws {
        let cluster = try Cluster(size: 3)
        let anonymous = cluster.client()
        defer { Task { await anonymous.close() } }
        // A new cluster moves to cluster version 2 (auth) once its leader has heard every member.
        var version: UInt16 = 0
        for _ in 0..<100 where version < KVStateMachine.authClusterVersion {
            version = try await anonymous.authStatus().clusterVersion
            if version < KVStateMachine.authClusterVersion { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        try #require(version >= KVStateMachine.authClusterVersion, "the cluster did not move to version 2")
        try await anonymous.put(b("x"), b("before"))

        // Set up as etcdctl users do; `auth enable` creates the role root and grants it.
        let cli = ["--endpoints", cluster.endpointsText]
        for args in [["user", "add", "root:rootpw"], ["user", "add", "alice", "--new-user-password", "alicepw"], ["role", "add", "r"],
                     ["role", "grant-permission", "r", "readwrite", "a/", "--prefix"], ["role", "grant-permission", "r", "read", "b"],
                     ["user", "grant-role", "alice", "r"]] {
            let (status, out, err) = try runSynod(cli + args)
            #expect(status == 0, "\(args): \(out) \(err)")
        }
        let (enabled, enableOut, enableErr) = try runSynod(cli + ["auth", "enable"])
        #expect(enabled == 0 && enableOut == "Authentication Enabled\n", "\(enableOut) \(enableErr)")

        // Anonymous: refused, writes and reads alike; the status and member list stay open.
        await Self.denied("an anonymous put") { try await anonymous.put(b("x"), b("y")) }
        await Self.denied("an anonymous get") { _ = try await anonymous.get(b("x")) }
        _ = try await anonymous.members()
        let (anonCLI, _, anonErr) = try runSynod(cli + ["get", "x"])
        #expect(anonCLI == 5 && anonErr.contains("authentication required"), "\(anonErr)")

        // alice: exactly her role's ranges, on every path.
        let alice = client(cluster, "alice", "alicepw")
        defer { Task { await alice.close() } }
        try await alice.put(b("a/1"), b("v1"))
        #expect(try await alice.get(b("a/1"))?.value == b("v1"))
        _ = try await alice.get(b("b"), consistency: .serializable)
        await Self.denied("alice writing b (read only)") { try await alice.put(b("b"), b("v")) }
        await Self.denied("alice reading x") { _ = try await alice.get(b("x")) }
        await Self.denied("alice reading [a, c)") { _ = try await alice.range(RangeRequest(key: b("a"), rangeEnd: b("c"))) }
        let txn = Txn(compares: [], success: [.put(key: b("a/2"), value: b("t"), lease: nil, prevKV: false)],
                      failure: [.put(key: b("elsewhere"), value: b("t"), lease: nil, prevKV: false)])
        await Self.denied("a txn with a branch outside her ranges") { _ = try await alice.txn(txn) }
        #expect(try await alice.get(b("a/2")) == nil)
        await Self.denied("alice compacting") { _ = try await alice.compact(revision: 1) }
        await Self.denied("alice adding a member") { try await alice.addMember(NodeID(9), peerAddress: "127.0.0.1:1") }
        await Self.denied("alice adding a user") { try await alice.addUser("mallory", password: "x") }
        await Self.denied("alice taking a backup") { _ = try await alice.snapshot() }
        await Self.denied("alice watching x") {
            for try await _ in alice.watch(b("x")) { break }
        }
        // A follower serves her reads too, checked against its own copy of the auth state.
        let leader = try #require(await cluster.leader(using: anonymous))
        let follower = leader == 1 ? 2 : 1
        let viaFollower = client(cluster, "alice", "alicepw", only: follower)
        defer { Task { await viaFollower.close() } }
        #expect(try await viaFollower.get(b("a/1"), consistency: .serializable)?.value == b("v1"))
        await Self.denied("alice reading x on a follower") { _ = try await viaFollower.get(b("x"), consistency: .serializable) }

        // A wrong password is refused outright (no retries), through the client and the CLI.
        let wrong = client(cluster, "alice", "nope")
        await #expect(throws: ClientError.self) { try await wrong.put(b("a/3"), b("v")) }
        do { try await wrong.put(b("a/3"), b("v")) } catch ClientError.authenticationFailed {} catch { Issue.record("wrong password: \(error)") }
        await wrong.close()
        let (wrongCLI, _, wrongErr) = try runSynod(cli + ["--user", "alice:nope", "get", "a/1"])
        #expect(wrongCLI == 5 && wrongErr.contains("authentication failed"), "\(wrongErr)")

        // root: everything; a password change locks out alice's open sessions at once.
        let root = client(cluster, "root", "rootpw")
        defer { Task { await root.close() } }
        #expect(try await root.get(b("x"))?.value == b("before"))
        try await root.changePassword(user: "alice", to: "alicepw2")
        await Self.denied("a session opened with the old password") { try await alice.put(b("a/4"), b("v")) }
        let alice2 = client(cluster, "alice", "alicepw2")
        defer { Task { await alice2.close() } }
        try await alice2.put(b("a/4"), b("v"))
        // A lease's key names are data: alice may not list keys she cannot read.
        let lease = try await alice2.leaseGrant(ttlMillis: 60_000)
        try await root.put(b("x2"), b("v"), lease: lease)
        await Self.denied("alice listing a key she cannot read through her lease") { _ = try await alice2.lease(lease) }
        // A running watch is checked again when the auth state changes: revoked, it ends.
        let watch = Task { () -> (any Error)? in
            do {
                for try await _ in alice2.watch(b("a/"), rangeEnd: KeyRange.prefixEnd(b("a/"))) {}
                return nil
            } catch { return error }
        }
        try await Task.sleep(nanoseconds: 300_000_000)
        // A revoked permission: her next write is refused, and her watch ends.
        let (revoked, revokeOut, _) = try runSynod(cli + ["--user", "root:rootpw", "role", "revoke-permission", "r", "a/", "--prefix"])
        #expect(revoked == 0, "\(revokeOut)")
        await Self.denied("a write after the permission was revoked") { try await alice2.put(b("a/5"), b("v")) }
        try await root.put(b("a/6"), b("v"))
        let ended = await withTaskGroup(of: (any Error)??.self) { group in
            group.addTask { await watch.value }
            group.addTask {
                try? await Task.sleep(nanoseconds: 5_000_000_000)
                watch.cancel()   // the group waits for the watch's child: end it
                return nil
            }
            defer { group.cancelAll() }
            return await group.next() ?? nil
        }
        guard case ClientError.kv(.permissionDenied)?? = ended else {
            watch.cancel()
            Issue.record("the watch did not end with permission denied: \(String(describing: ended))")
            return
        }
        let (listed, listOut, _) = try runSynod(cli + ["--user", "root:rootpw", "user", "list"])
        #expect(listed == 0 && listOut == "alice\nroot\n", "\(listOut)")

        // The whole cluster restarts: auth is replicated state, so it is all still there.
        for n in 1...3 { cluster.kill(n, signal: SIGTERM) }
        try await Task.sleep(nanoseconds: 500_000_000)
        for n in 1...3 { try cluster.start(n) }
        let again = client(cluster, "alice", "alicepw2")
        defer { Task { await again.close() } }
        #expect(try await again.get(b("b")) == nil, "alice still reads b")
        await Self.denied("alice reading a/4 after the restart (revoked)") { _ = try await again.get(b("a/4")) }
        let rootAgain = client(cluster, "root", "rootpw")
        defer { Task { await rootAgain.close() } }
        #expect(try await rootAgain.get(b("a/4"))?.value == b("v"))
        await Self.denied("an anonymous put after the restart") { try await anonymous.put(b("x"), b("y")) }
        let (status, statusOut, _) = try runSynod(cli + ["auth", "status"])
        #expect(status == 0 && statusOut.hasPrefix("Authentication Status: true\n"), "\(statusOut)")
        // Disabled by root, anyone may write again.
        let (disabled, _, _) = try runSynod(cli + ["--user", "root", "--password", "rootpw", "auth", "disable"])
        #expect(disabled == 0)
        try await anonymous.put(b("x"), b("after"))
    }
}
}
