import Foundation
import SynodClient
import SynodStateMachine
import SynodCore
import SynodTestSupport
import SynodTransport
import Testing

/// The JSON gateway answers over HTTP as etcd's does: a JSON object, or nil if it is not one.
func json(_ text: String) -> [String: Any]? {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
}

/// The `synod_server_watchers` gauge of the node serving metrics on `metricsPort`.
func nodeWatchers(metricsPort: Int) -> Double? {
    httpGet(port: metricsPort, path: "/metrics")?.body.split(separator: "\n")
        .first { $0.hasPrefix("synod_server_watchers ") }
        .flatMap { Double($0.split(separator: " ")[1]) }
}

func b64(_ s: String) -> String { Data(s.utf8).base64EncodedString() }

func unb64(_ any: Any?) -> String? {
    (any as? String).flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) }
}

extension RealProcessTests {
/// `synod serve --listen-http`: etcd's JSON gateway on real processes, driven by raw HTTP and
/// by curl.
@Suite("JSON gateway (etcd's /v3 HTTP API)")
struct GatewayTests {
    /// POSTs `body` (a JSON object) and parses the answer.
    func post(_ port: Int, _ path: String, _ body: [String: Any]) throws -> (status: Int, json: [String: Any]) {
        let bytes = [UInt8](try JSONSerialization.data(withJSONObject: body))
        let r = try #require(httpRequest(port: port, method: "POST", path: path, body: bytes))
        return (r.status, try #require(json(r.body), "not a JSON object: \(r.body)"))
    }

    func revision(_ o: [String: Any]) -> Int64? { ((o["header"] as? [String: Any])?["revision"] as? String).flatMap { Int64($0) } }

    @Test("through a follower's gateway: put, range, txn, delete-range, leases, compaction, status and members answer in etcd's JSON; bad requests get typed errors")
    func kvLeasesAndErrors() async throws {
        let httpBase = LoopbackPorts.freeBase(count: 3)
        let cluster = try Cluster(size: 3, nodeArgs: { ["--listen-http", "127.0.0.1:\(httpBase + $0 - 1)"] })
        let client = cluster.client()
        defer { Task { await client.close() } }
        _ = try await client.put(b("warmup"), b("1"))
        let leader = try #require(await cluster.leader(using: client))
        let port = httpBase + (leader == 1 ? 1 : 0)   // a follower's gateway: writes go to the leader

        let put = try post(port, "/v3/kv/put", ["key": b64("g/a"), "value": b64("1")])
        #expect(put.status == 200, "\(put.json)")
        let written = try #require(revision(put.json))
        #expect(try await client.get(b("g/a"))?.value == b("1"))
        for (k, v) in [("g/b", "2"), ("g/c", "3")] { #expect(try post(port, "/v3/kv/put", ["key": b64(k), "value": b64(v)]).status == 200) }

        // A prefix range (range_end = the prefix's end), limited, and a count.
        let range = try post(port, "/v3/kv/range", ["key": b64("g/"), "range_end": b64("g0"), "limit": 2])
        #expect(range.status == 200)
        let kvs = try #require(range.json["kvs"] as? [[String: Any]])
        #expect(kvs.map { unb64($0["key"]) } == ["g/a", "g/b"] && kvs.map { unb64($0["value"]) } == ["1", "2"])
        #expect(range.json["more"] as? Bool == true && range.json["count"] as? String == "3")
        #expect(kvs.first?["create_revision"] as? String == "\(written)" && kvs.first?["version"] as? String == "1")
        let serializable = try post(port, "/v3/kv/range", ["key": b64("g/a"), "serializable": true, "count_only": true])
        #expect(serializable.status == 200 && serializable.json["count"] as? String == "1" && serializable.json["kvs"] == nil)
        // etcd's ordering and revision filters: newest first, only keys changed after the first put.
        let sorted = try post(port, "/v3/kv/range", ["key": b64("g/"), "range_end": b64("g0"), "sort_order": "DESCEND", "sort_target": "MOD",
                                                      "min_mod_revision": String(written + 1)])
        #expect(sorted.status == 200, "\(sorted.json)")
        #expect((sorted.json["kvs"] as? [[String: Any]])?.map { unb64($0["key"]) } == ["g/c", "g/b"] && sorted.json["count"] as? String == "3")

        // Compare-and-swap: the compare holds once, then fails.
        let cas: [String: Any] = ["compare": [["key": b64("g/a"), "target": "VALUE", "result": "EQUAL", "value": b64("1")]],
                                  "success": [["request_put": ["key": b64("g/a"), "value": b64("10"), "prev_kv": true]]],
                                  "failure": [["request_range": ["key": b64("g/a")]]]]
        let first = try post(port, "/v3/kv/txn", cas)
        #expect(first.status == 200 && first.json["succeeded"] as? Bool == true, "\(first.json)")
        let prev = ((first.json["responses"] as? [[String: Any]])?.first?["response_put"] as? [String: Any])?["prev_kv"] as? [String: Any]
        #expect(unb64(prev?["value"]) == "1")
        let second = try post(port, "/v3/kv/txn", cas)
        #expect(second.status == 200 && second.json["succeeded"] == nil)
        let read = ((second.json["responses"] as? [[String: Any]])?.first?["response_range"] as? [String: Any])?["kvs"] as? [[String: Any]]
        #expect(unb64(read?.first?["value"]) == "10")

        // A lease: grant, attach, time to live with keys, revoke (the key goes).
        let grant = try post(port, "/v3/lease/grant", ["TTL": 60])
        let id = try #require(grant.json["ID"] as? String)
        #expect(grant.status == 200 && grant.json["TTL"] as? String == "60")
        #expect(try post(port, "/v3/kv/put", ["key": b64("g/leased"), "value": b64("x"), "lease": id]).status == 200)
        // ignore_value keeps the value while the lease moves; ignore_lease keeps the lease (cluster version 3).
        for _ in 0..<100 where try await client.authStatus().clusterVersion < KVStateMachine.version3ClusterVersion { try await Task.sleep(nanoseconds: 100_000_000) }
        try await client.put(b("g/kept"), b("k"))
        #expect(try post(port, "/v3/kv/put", ["key": b64("g/kept"), "ignore_value": true, "lease": id]).status == 200)
        #expect(try post(port, "/v3/kv/put", ["key": b64("g/kept"), "value": b64("22"), "ignore_lease": true]).status == 200)
        let kept = try await client.get(b("g/kept"))
        #expect(kept?.value == b("22") && kept?.lease.map { String($0.rawValue) } == id, "\(String(describing: kept))")
        #expect(try post(port, "/v3/kv/put", ["key": b64("g/none"), "ignore_value": true]).status == 400)
        let ttl = try post(port, "/v3/lease/timetolive", ["ID": id, "keys": true])
        #expect(ttl.json["grantedTTL"] as? String == "60" && (ttl.json["keys"] as? [Any])?.compactMap(unb64) == ["g/kept", "g/leased"], "\(ttl.json)")
        let remaining = Int((ttl.json["TTL"] as? String) ?? "") ?? -1
        #expect((50...60).contains(remaining), "\(ttl.json)")
        #expect(try post(port, "/v3/lease/keepalive", ["ID": id]).json["result"] != nil)
        #expect(((try post(port, "/v3/lease/leases", [:]).json["leases"] as? [[String: Any]]) ?? []).contains { $0["ID"] as? String == id })
        #expect(try post(port, "/v3/lease/revoke", ["ID": id]).status == 200)
        #expect(try await client.get(b("g/leased")) == nil)
        #expect(try await client.get(b("g/kept")) == nil)
        #expect(try post(port, "/v3/lease/timetolive", ["ID": id]).json["TTL"] as? String == "-1")

        // Delete a range with its previous values.
        let deleted = try post(port, "/v3/kv/deleterange", ["key": b64("g/"), "range_end": b64("g0"), "prev_kv": true])
        #expect(deleted.json["deleted"] as? String == "3" && (deleted.json["prev_kvs"] as? [Any])?.count == 3, "\(deleted.json)")

        // Compaction, and a read below it: OUT_OF_RANGE (gRPC 11) as etcd answers.
        let now = try #require(revision(deleted.json))
        #expect(try post(port, "/v3/kv/compaction", ["revision": String(now)]).status == 200)
        let old = try post(port, "/v3/kv/range", ["key": b64("g/a"), "revision": String(written)])
        #expect(old.status == 400 && old.json["code"] as? Int == 11, "\(old.json)")

        // Status and members.
        let status = try post(port, "/v3/maintenance/status", [:])
        #expect(status.json["leader"] as? String == "\(leader)" && status.json["raftTerm"] != nil, "\(status.json)")
        let members = try post(port, "/v3/cluster/member/list", [:]).json["members"] as? [[String: Any]]
        #expect(members?.count == 3)

        // Maintenance and membership: alarms, defragment, a learner added with the next id and
        // removed again, the leadership moved to another member.
        let alarms = try post(port, "/v3/maintenance/alarm", ["action": "GET"])
        #expect(alarms.status == 200 && alarms.json["alarms"] == nil, "\(alarms.json)")
        #expect(try post(port, "/v3/maintenance/alarm", ["action": "ACTIVATE", "alarm": "NOSPACE"]).status == 501)
        #expect(try post(port, "/v3/maintenance/defragment", [:]).status == 200)
        let added = try post(port, "/v3/cluster/member/add", ["peerURLs": ["http://127.0.0.1:1"], "isLearner": true])
        #expect(added.status == 200 && (added.json["member"] as? [String: Any])?["ID"] as? String == "4", "\(added.json)")
        #expect((added.json["members"] as? [[String: Any]])?.contains { $0["ID"] as? String == "4" && $0["isLearner"] as? Bool == true } == true)
        let removed = try post(port, "/v3/cluster/member/remove", ["ID": "4"])
        #expect(removed.status == 200 && (removed.json["members"] as? [Any])?.count == 3, "\(removed.json)")
        let target = [1, 2, 3].first { $0 != leader }!
        #expect(try post(port, "/v3/maintenance/transfer-leadership", ["targetID": String(target)]).status == 200)
        #expect(await cluster.leader(using: client) == target)

        // Refusals: typed, never a crash, and the node still answers after them.
        #expect(try post(port, "/v3/kv/range", ["key": b64("g/a"), "sort_order": "SIDEWAYS"]).status == 400)
        #expect(try post(port, "/v3/kv/put", ["key": b64("g/a"), "valu": b64("x")]).json["code"] as? Int == 3)
        #expect(try post(port, "/v3/kv/put", ["key": "not base64!", "value": b64("x")]).status == 400)
        #expect(try post(port, "/v3/kv/put", ["value": b64("x")]).status == 400)
        #expect(try post(port, "/v3/kv/txn", ["success": [["request_put": ["key": b64("k")], "request_range": ["key": b64("k")]]]]).status == 400)
        #expect(try post(port, "/v3/lease/grant", ["TTL": -5]).status == 400)
        #expect(httpRequest(port: port, method: "POST", path: "/v3/kv/put", body: Array("{not json".utf8))?.status == 400)
        #expect(httpRequest(port: port, method: "GET", path: "/v3/kv/put")?.status == 405)
        #expect(httpRequest(port: port, method: "POST", path: "/v3/nothing", body: Array("{}".utf8))?.status == 404)
        let huge = [UInt8](repeating: 0x20, count: 4 << 20)
        #expect(httpRequest(port: port, method: "POST", path: "/v3/kv/put", body: huge)?.status == 413)
        #expect(try post(port, "/v3/kv/put", ["key": b64("g/after"), "value": b64("ok")]).status == 200)
        // /health as on the metrics port (the node publishes its view twice a second).
        let healthy = try await eventuallyAsync(tries: 30) { httpGet(port: port, path: "/health")?.status == 200 }
        #expect(healthy)
    }

    @Test("/v3/watch streams etcd's watch responses from a past revision, then live; a client that hangs up ends its watch")
    func watchStreams() async throws {
        let httpBase = LoopbackPorts.freeBase(count: 2)
        let metricsPort = httpBase + 1
        let cluster = try Cluster(size: 3, nodeArgs: { $0 == 1 ? ["--listen-http", "127.0.0.1:\(httpBase)", "--listen-metrics", "127.0.0.1:\(metricsPort)"] : [] })
        let client = cluster.client()
        defer { Task { await client.close() } }
        let start = try await client.put(b("w/1"), b("a")).revision
        _ = try await client.put(b("other"), b("x"))
        _ = try await client.put(b("w/2"), b("b"))
        let body = [UInt8](try JSONSerialization.data(withJSONObject: ["create_request": ["key": b64("w/"), "range_end": b64("w0"), "start_revision": String(start), "prev_kv": true]]))
        let stream = try #require(HTTPLineStream(port: httpBase, path: "/v3/watch", body: body))
        let created = try #require(stream.nextLine().flatMap(json)?["result"] as? [String: Any])
        #expect(stream.status == 200 && created["created"] as? Bool == true)
        func nextEvent() -> (type: String, key: String?, value: String?, prev: String?)? {
            guard let line = stream.nextLine(), let result = json(line)?["result"] as? [String: Any],
                  let e = (result["events"] as? [[String: Any]])?.first else { return nil }
            let kv = e["kv"] as? [String: Any]
            return ((e["type"] as? String) ?? "PUT", unb64(kv?["key"]), unb64(kv?["value"]), unb64((e["prev_kv"] as? [String: Any])?["value"]))
        }
        #expect(nextEvent().map { [$0.type, $0.key, $0.value] } == ["PUT", "w/1", "a"])
        #expect(nextEvent().map { [$0.type, $0.key, $0.value] } == ["PUT", "w/2", "b"])
        _ = try await client.put(b("w/1"), b("c"))
        _ = try await client.delete(b("w/2"))
        let update = nextEvent()
        #expect(update.map { [$0.type, $0.key, $0.value, $0.prev] } == ["PUT", "w/1", "c", "a"])
        #expect(nextEvent().map { [$0.type, $0.key] } == ["DELETE", "w/2"])
        func watchers() -> Double? { nodeWatchers(metricsPort: metricsPort) }
        let watching = try await eventuallyAsync(tries: 30) { watchers() == 1 }
        #expect(watching, "\(watchers() ?? -1)")
        stream.close()
        // The gateway notices the hang-up and cancels the watch: the node's watcher gauge goes
        // back to 0 (published twice a second).
        let dropped = try await eventuallyAsync(tries: 30) { watchers() == 0 }
        #expect(dropped, "\(watchers() ?? -1)")

        // A watch of a compacted revision is cancelled with the reason, as etcd does.
        let now = try await client.put(b("w/3"), b("d")).revision
        _ = try await client.compact(revision: now)
        let old = [UInt8](try JSONSerialization.data(withJSONObject: ["create_request": ["key": b64("w/"), "range_end": b64("w0"), "start_revision": String(start)]]))
        let compacted = try #require(HTTPLineStream(port: httpBase, path: "/v3/watch", body: old))
        _ = compacted.nextLine()
        let cancel = try #require(compacted.nextLine().flatMap(json)?["result"] as? [String: Any])
        #expect(cancel["canceled"] as? Bool == true && (cancel["cancel_reason"] as? String ?? "").contains("compacted"), "\(cancel)")

        // etcd's filters: NOPUT leaves the puts out, and a message with nothing left is not sent.
        let from = try await client.put(b("f/0"), b("x")).revision + 1
        let filtered = [UInt8](try JSONSerialization.data(withJSONObject: ["create_request": ["key": b64("f/"), "range_end": b64("f0"), "start_revision": String(from),
                                                                                              "filters": ["NOPUT"]]]))
        let onlyDeletes = try #require(HTTPLineStream(port: httpBase, path: "/v3/watch", body: filtered))
        _ = onlyDeletes.nextLine()
        _ = try await client.put(b("f/1"), b("y"))
        _ = try await client.delete(b("f/1"))
        let deleted = (onlyDeletes.nextLine().flatMap(json)?["result"] as? [String: Any])?["events"] as? [[String: Any]]
        #expect(deleted?.count == 1 && deleted?.first?["type"] as? String == "DELETE", "\(String(describing: deleted))")
        onlyDeletes.close()
    }

    @Test("a connection with no request in flight closes after --http-request-timeout: idle, half a head (slowloris), kept alive after an answer; a quiet watch stays")
    func requestTimeout() async throws {
        let httpBase = LoopbackPorts.freeBase(count: 1)
        let cluster = try Cluster(size: 3, nodeArgs: { $0 == 1 ? ["--listen-http", "127.0.0.1:\(httpBase)", "--http-request-timeout", "1"] : [] })
        let client = cluster.client()
        defer { Task { await client.close() } }
        _ = try await client.put(b("t"), b("1"))
        func closedInTime(_ seconds: Double?, _ what: String) {
            #expect(seconds.map { $0 >= 0.8 && $0 < 6 } == true, "\(what): closed after \(String(describing: seconds)) s")
        }
        closedInTime(secondsUntilClosed(port: httpBase, timeoutSeconds: 10), "idle from the start")
        closedInTime(secondsUntilClosed(port: httpBase, sending: Array("POST /v3/kv/range HTTP/1.1\r\nHost: x\r\n".utf8), timeoutSeconds: 10), "half a head")
        let body = #"{"key":"\#(b64("t"))"}"#
        let request = "POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        closedInTime(secondsUntilClosed(port: httpBase, sending: Array(request.utf8), timeoutSeconds: 10), "kept alive after an answer")
        // A watch is a request in flight: quiet for longer than the timeout, it still delivers.
        let watchBody = [UInt8](try JSONSerialization.data(withJSONObject: ["create_request": ["key": b64("t")]]))
        let stream = try #require(HTTPLineStream(port: httpBase, path: "/v3/watch", body: watchBody))
        #expect(stream.nextLine() != nil)
        try await Task.sleep(nanoseconds: 2_500_000_000)
        _ = try await client.put(b("t"), b("2"))
        let event = stream.nextLine().flatMap(json)?["result"] as? [String: Any]
        #expect((event?["events"] as? [[String: Any]])?.count == 1, "\(String(describing: event))")
        stream.close()
        // The same for a watch pipelined behind another request on one keep-alive connection:
        // the answer to the first must not start the timeout for the watch.
        let raw = try #require(RawTCPConnection(port: httpBase))
        let watchText = String(decoding: watchBody, as: UTF8.self)
        #expect(raw.send(request + "POST /v3/watch HTTP/1.1\r\nHost: x\r\nContent-Length: \(watchBody.count)\r\n\r\n\(watchText)"))
        #expect(raw.waitFor(#""created":true"#, timeoutSeconds: 5))
        try await Task.sleep(nanoseconds: 2_500_000_000)
        _ = try await client.put(b("t"), b("3"))
        #expect(raw.waitFor(b64("3"), timeoutSeconds: 5), "the pipelined watch was cut by the request timeout")
        #expect(try post(httpBase, "/v3/kv/range", ["key": b64("t")]).status == 200)
    }

    @Test("curl: HTTP/1.1 keep-alive carries several calls on one connection; with TLS and client certificates required, curl without a certificate is refused")
    func curlKeepAliveAndTLS() async throws {
        let curl = "/usr/bin/curl"
        try #require(FileManager.default.isExecutableFile(atPath: curl), "curl is needed (make deps installs it)")
        let certs = try TestCertificates(in: NSTemporaryDirectory() + "synod-gw-tls-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let httpBase = LoopbackPorts.freeBase(count: 1)
        let tlsArgs = ["--cert-file", certs.nodeCert, "--key-file", certs.nodeKey, "--trusted-ca-file", certs.ca, "--client-cert-auth"]
        let cluster = try Cluster(size: 1, extraArgs: tlsArgs, nodeArgs: { _ in ["--listen-http", "127.0.0.1:\(httpBase)"] })
        defer { cluster.stopAll() }
        var config = ClientConfiguration(endpoints: cluster.endpoints)
        config.tls = TLSFiles(certificate: certs.clientCert, privateKey: certs.clientKey, trustedCA: certs.ca)
        let client = SynodClient(config)
        defer { Task { await client.close() } }
        _ = try await client.put(b("warmup"), b("1"))
        let url = "https://127.0.0.1:\(httpBase)"
        let auth = ["--cacert", certs.ca, "--cert", certs.clientCert, "--key", certs.clientKey]
        // Two calls in one curl run: the second reuses the connection (num_connects 0).
        let (status, out, err) = try runCommand(curl, ["-s", "--http1.1", "--max-time", "10"] + auth + [
            "-X", "POST", "\(url)/v3/kv/put", "-d", #"{"key":"\#(b64("c/1"))","value":"\#(b64("v"))"}"#, "-w", "\n%{num_connects}\n",
            "--next", "-s", "--http1.1", "--max-time", "10"] + auth + [
            "-X", "POST", "\(url)/v3/kv/range", "-d", #"{"key":"\#(b64("c/1"))"}"#, "-w", "\n%{num_connects}\n"])
        #expect(status == 0, "\(err)")
        let lines = out.split(separator: "\n").map(String.init)
        #expect(lines.count == 4, "\(lines)")
        #expect(lines.count == 4 && lines[1] == "1" && lines[3] == "0", "the second call did not reuse the connection: \(lines)")
        #expect(lines.count == 4 && unb64((json(lines[2])?["kvs"] as? [[String: Any]])?.first?["value"]) == "v", "\(lines)")
        // No client certificate: the TLS handshake fails, nothing is answered.
        let (refused, refusedOut, _) = try runCommand(curl, ["-s", "--max-time", "10", "--cacert", certs.ca, "-X", "POST", "\(url)/v3/kv/range", "-d", #"{"key":"\#(b64("c/1"))"}"#])
        #expect(refused != 0 && refusedOut.isEmpty, "curl without a certificate got: \(refusedOut)")
        // Plain HTTP to the TLS port gets nothing either.
        #expect(httpRequest(port: httpBase, method: "POST", path: "/v3/kv/range", body: Array(#"{"key":"\#(b64("c/1"))"}"#.utf8))?.status == nil)
    }

    @Test("locks and elections over HTTP (etcd's v3lock and v3election): a second locker waits until the first unlocks; campaign, leader, proclaim, resign")
    func locksAndElections() async throws {
        let httpBase = LoopbackPorts.freeBase(count: 1)
        let cluster = try Cluster(size: 3, nodeArgs: { $0 == 1 ? ["--listen-http", "127.0.0.1:\(httpBase)"] : [] })
        let client = cluster.client()
        defer { Task { await client.close() } }
        _ = try await client.put(b("warmup"), b("1"))
        let port = httpBase
        let first = try #require(try post(port, "/v3/lease/grant", ["TTL": 60]).json["ID"] as? String)
        let second = try #require(try post(port, "/v3/lease/grant", ["TTL": 60]).json["ID"] as? String)

        let held = try post(port, "/v3/lock/lock", ["name": b64("job"), "lease": first])
        let key = try #require(held.json["key"] as? String, "\(held.json)")
        #expect(held.status == 200 && unb64(key)?.hasPrefix("__synod/lock/job/") == true)
        // The second locker's request blocks until the first unlocks.
        let body = [UInt8](try JSONSerialization.data(withJSONObject: ["name": b64("job"), "lease": second]))
        let waiter = Task.detached { () -> ((status: Int, body: String)?, Date) in
            let answer = httpRequest(port: port, method: "POST", path: "/v3/lock/lock", body: body, timeoutSeconds: 20)
            return (answer, Date())
        }
        try await Task.sleep(nanoseconds: 800_000_000)
        let unlockedAt = Date()
        #expect(try post(port, "/v3/lock/unlock", ["key": key]).status == 200)
        let (answer, answeredAt) = await waiter.value
        let secondKey = answer.flatMap { json($0.body) }?["key"] as? String
        #expect(answer?.status == 200 && secondKey != nil && secondKey != key, "\(String(describing: answer))")
        #expect(answeredAt >= unlockedAt, "the second locker was answered while the first held the lock")
        // Fencing: the second holder's token (the header revision) is above the first's.
        let firstRev = Int64(((held.json["header"] as? [String: Any])?["revision"] as? String) ?? "") ?? 0
        let secondRev = Int64(((answer.flatMap { json($0.body) }?["header"] as? [String: Any])?["revision"] as? String) ?? "") ?? 0
        #expect(firstRev > 0 && secondRev > firstRev)
        #expect(try post(port, "/v3/lock/lock", ["name": b64("job")]).status == 400, "a lock needs the caller's lease")
        #expect(try post(port, "/v3/lock/unlock", ["key": b64("warmup")]).status == 400, "unlock deletes lock keys only")

        // An election.
        let campaign = try post(port, "/v3/election/campaign", ["name": b64("boss"), "lease": first, "value": b64("a")])
        let leader = try #require(campaign.json["leader"] as? [String: Any], "\(campaign.json)")
        #expect(unb64((try post(port, "/v3/election/leader", ["name": b64("boss")]).json["kv"] as? [String: Any])?["value"]) == "a")
        #expect(try post(port, "/v3/election/proclaim", ["leader": leader, "value": b64("b")]).status == 200)
        #expect(unb64((try post(port, "/v3/election/leader", ["name": b64("boss")]).json["kv"] as? [String: Any])?["value"]) == "b")
        #expect(try await client.electionLeader("boss")?.value == b("b"), "the CLI's recipes see the same election")
        #expect(try post(port, "/v3/election/resign", ["leader": leader]).status == 200)
        #expect(try post(port, "/v3/election/leader", ["name": b64("boss")]).status == 404)
        #expect(try post(port, "/v3/election/proclaim", ["leader": leader, "value": b64("c")]).json["code"] as? Int == 9)
        #expect(try post(port, "/v3/election/observe", ["name": b64("boss")]).status == 501)
    }

    /// POSTs `body` with curl, with `token` as the Authorization header if given.
    func curlPost(_ port: Int, _ path: String, _ body: [String: Any], token: String? = nil) throws -> (status: Int, json: [String: Any]) {
        let text = String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
        let (rc, out, err) = try runCommand("/usr/bin/curl", ["-s", "--max-time", "20", "-X", "POST", "http://127.0.0.1:\(port)\(path)", "-d", text, "-w", "\n%{http_code}"]
                                            + (token.map { ["-H", "Authorization: \($0)"] } ?? []))
        try #require(rc == 0, "curl: \(err)")
        let lines = out.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        return (Int(lines.last ?? "") ?? 0, json(lines.dropLast().joined(separator: "\n")) ?? [:])
    }

    @Test("auth over HTTP (etcd's /v3/auth): users and roles set up, a token from authenticate, requests held to the token user's ranges")
    func authOverHTTP() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/curl"), "curl is needed (make deps installs it)")
        let port = LoopbackPorts.freeBase(count: 1)
        let cluster = try Cluster(size: 1, nodeArgs: { _ in ["--listen-http", "127.0.0.1:\(port)"] })
        defer { cluster.stopAll() }
        let client = cluster.client()
        defer { Task { await client.close() } }
        for _ in 0..<100 where try await client.authStatus().clusterVersion < KVStateMachine.authClusterVersion {
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        for (path, body) in [("/v3/auth/user/add", ["name": "root", "password": "rootpw"]), ("/v3/auth/role/add", ["name": "root"]),
                             ("/v3/auth/user/grant", ["user": "root", "role": "root"]), ("/v3/auth/user/add", ["name": "alice", "password": "alicepw"]),
                             ("/v3/auth/role/add", ["name": "app"]), ("/v3/auth/user/grant", ["user": "alice", "role": "app"])] as [(String, [String: Any])] {
            #expect(try curlPost(port, path, body).status == 200, "\(path)")
        }
        let perm: [String: Any] = ["permType": "READWRITE", "key": b64("app/"), "range_end": b64("app0")]
        #expect(try curlPost(port, "/v3/auth/role/grant", ["name": "app", "perm": perm]).status == 200)
        #expect(try curlPost(port, "/v3/auth/enable", [:]).status == 200)

        let anonymous = try curlPost(port, "/v3/kv/put", ["key": b64("app/x"), "value": b64("v")])
        #expect(anonymous.status == 403 && anonymous.json["code"] as? Int == 7, "\(anonymous)")
        let wrong = try curlPost(port, "/v3/auth/authenticate", ["name": "alice", "password": "nope"])
        #expect(wrong.status == 400 && wrong.json["code"] as? Int == 3, "\(wrong)")
        let alice = try #require(try curlPost(port, "/v3/auth/authenticate", ["name": "alice", "password": "alicepw"]).json["token"] as? String)
        #expect(try curlPost(port, "/v3/kv/put", ["key": b64("app/x"), "value": b64("v")], token: alice).status == 200)
        let outside = try curlPost(port, "/v3/kv/put", ["key": b64("other"), "value": b64("v")], token: alice)
        #expect(outside.status == 403 && (outside.json["message"] as? String)?.contains("may not write") == true, "\(outside)")
        let read = try curlPost(port, "/v3/kv/range", ["key": b64("app/x")], token: alice)
        #expect(unb64((read.json["kvs"] as? [[String: Any]])?.first?["value"]) == "v", "\(read)")
        #expect(try curlPost(port, "/v3/kv/range", ["key": b64("app/x")], token: "forged").status == 401)
        #expect(try curlPost(port, "/v3/auth/user/list", [:], token: alice).json["users"] as? [String] == ["alice"], "a user sees itself only")
        let root = try #require(try curlPost(port, "/v3/auth/authenticate", ["name": "root", "password": "rootpw"]).json["token"] as? String)
        #expect(try curlPost(port, "/v3/auth/user/list", [:], token: root).json["users"] as? [String] == ["alice", "root"])
        let role = try curlPost(port, "/v3/auth/role/get", ["role": "app"], token: root)
        let perms = role.json["perm"] as? [[String: Any]]
        #expect(perms?.count == 1 && perms?.first?["permType"] as? String == "READWRITE" && unb64(perms?.first?["key"]) == "app/", "\(role)")
        let status = try curlPost(port, "/v3/auth/status", [:], token: root)
        #expect(status.json["enabled"] as? Bool == true, "\(status)")
        #expect(try curlPost(port, "/v3/auth/disable", [:], token: alice).status == 403, "alice may not disable auth")
        #expect(try curlPost(port, "/v3/auth/disable", [:], token: root).status == 200)
        #expect(try curlPost(port, "/v3/kv/put", ["key": b64("other"), "value": b64("v")]).status == 200, "anyone writes once disabled")
    }
}
}
