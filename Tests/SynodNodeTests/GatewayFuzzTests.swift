import Foundation
import SynodCore
import SynodStateMachine
import SynodTestSupport
import Testing
@testable import synod

/// The JSON gateway's decoders on hostile input: every route's decoder gets valid bodies,
/// mutations of them, random bytes and every known field set to every JSON type; each input is
/// answered with a value or a `GatewayError` (typed throws), never a trap.
@Suite("JSON gateway decoders under fuzzing")
struct GatewayFuzzTests {
    static let samples: [(String, String)] = [
        ("/v3/kv/range", #"{"key":"YQ==","range_end":"Yg==","limit":"10","revision":"3","keys_only":true,"count_only":false,"serializable":true}"#),
        ("/v3/kv/put", #"{"key":"YQ==","value":"MQ==","lease":"7","prev_kv":true}"#),
        ("/v3/kv/deleterange", #"{"key":"YQ==","range_end":"AA==","prev_kv":true}"#),
        ("/v3/kv/txn", #"{"compare":[{"key":"YQ==","target":"VALUE","result":"EQUAL","value":"MQ=="},{"key":"YQ==","target":1,"result":"LESS","create_revision":"4"}],"success":[{"request_put":{"key":"YQ==","value":"Mg=="}},{"request_range":{"key":"YQ=="}}],"failure":[{"request_delete_range":{"key":"YQ==","range_end":"Yg=="}}]}"#),
        ("/v3/kv/compaction", #"{"revision":"5","physical":true}"#),
        ("/v3/lease/grant", #"{"TTL":"30","ID":"9"}"#),
        ("/v3/lease/revoke", #"{"ID":"9"}"#),
        ("/v3/lease/keepalive", #"{"ID":9}"#),
        ("/v3/lease/timetolive", #"{"ID":"9","keys":true}"#),
        ("/v3/lease/leases", "{}"),
        ("/v3/maintenance/status", ""),
        ("/v3/cluster/member/list", #"{"linearizable":true}"#),
        ("/v3/cluster/member/add", #"{"peerURLs":["http://127.0.0.1:7104"],"isLearner":true}"#),
        ("/v3/cluster/member/remove", #"{"ID":"4"}"#),
        ("/v3/cluster/member/update", #"{"ID":"4","peerURLs":["127.0.0.1:7105"]}"#),
        ("/v3/cluster/member/promote", #"{"ID":"4"}"#),
        ("/v3/maintenance/transfer-leadership", #"{"targetID":"2"}"#),
        ("/v3/maintenance/alarm", #"{"action":"DEACTIVATE","alarm":"NOSPACE","memberID":"1"}"#),
        ("/v3/maintenance/defragment", "{}"),
        ("/v3/lock/lock", #"{"name":"am9i","lease":"9"}"#),
        ("/v3/lock/unlock", #"{"key":"X19zeW5vZC9sb2NrL2pvYi85"}"#),
        ("/v3/election/campaign", #"{"name":"Ym9zcw==","lease":"9","value":"YQ=="}"#),
        ("/v3/election/proclaim", #"{"leader":{"name":"Ym9zcw==","key":"X19zeW5vZC9lbGVjdGlvbi9ib3NzLzk=","rev":"5","lease":"9"},"value":"Yg=="}"#),
        ("/v3/election/leader", #"{"name":"Ym9zcw=="}"#),
        ("/v3/election/resign", #"{"leader":{"name":"Ym9zcw==","key":"X19zeW5vZC9lbGVjdGlvbi9ib3NzLzk=","rev":"5","lease":"9"}}"#),
        ("/v3/watch", #"{"create_request":{"key":"YQ==","range_end":"Yg==","start_revision":"2","prev_kv":true,"progress_notify":true}}"#),
    ]

    static let fieldNames = ["key", "range_end", "limit", "revision", "keys_only", "count_only", "serializable", "value", "lease", "prev_kv",
                             "compare", "success", "failure", "target", "result", "version", "create_revision", "mod_revision",
                             "request_put", "request_range", "request_delete_range", "request_txn", "TTL", "ID", "keys", "physical",
                             "create_request", "start_revision", "progress_notify", "sort_order", "filters",
                             "peerURLs", "isLearner", "targetID", "action", "alarm", "memberID", "name", "leader", "rev"]

    /// JSON values of every type, including the awkward ones.
    static var values: [Any] { ["", "YQ==", "not base64!", "-1", "9223372036854775807", "9223372036854775808", "1e3", "VALUE", "LEASE",
                                0, -1, 1, 3, 4, 99, 1.5, 1e300, -1e300, 9.3e18, true, false, NSNull(), [], [1], [["key": "YQ=="]],
                                ["key": "YQ=="], ["request_put": ["key": "YQ=="]], [:], ["http://h:1"], ["h:1", "h:2"], ["http://"], [7],
                                "GET", "ACTIVATE", "CORRUPT"] }

    static func decode(_ path: String, _ body: [UInt8]) -> Bool {
        do { _ = try GatewayCall.decode(path: path, body: body); return true } catch { return false }
    }

    @Test("valid bodies decode; mutations, random bytes and wrongly typed fields are refused or decoded, never a trap")
    func fuzzDecoders() throws {
        for (path, body) in Self.samples { #expect(Self.decode(path, Array(body.utf8)), "\(path) \(body)") }
        var rng = SeededRandom(seed: 0x6A7E)
        let paths = Self.samples.map(\.0) + ["/v3/nothing"]
        Fuzzing.mutations(of: Self.samples.map { Array($0.1.utf8) }, count: 4_000, &rng) { bytes in
            for path in paths { _ = Self.decode(path, bytes) }
        }
        Fuzzing.randomInputs(count: 500, lengthMax: 200, &rng) { bytes in
            for path in paths { _ = Self.decode(path, bytes) }
        }
        // Every field as every type, at the top level and inside the nested objects.
        var refused = 0
        for name in Self.fieldNames {
            for value in Self.values {
                for wrap in 0..<3 {
                    var inner: [String: Any] = ["key": "YQ=="]
                    inner[name] = value
                    let object: [String: Any]
                    switch wrap {
                    case 0: object = inner
                    case 1: object = ["create_request": inner]
                    default: object = ["compare": [inner], "success": [["request_put": inner], ["request_range": inner]]]
                    }
                    let body = [UInt8](try JSONSerialization.data(withJSONObject: object))
                    for path in paths where !Self.decode(path, body) { refused += 1 }
                }
            }
        }
        #expect(refused > 0)
        // Nesting deeper than the parser's limit is a refusal too.
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(!Self.decode("/v3/kv/put", Array(deep.utf8)))
    }

    @Test("what the decoders make of etcd's conventions: range_end \\0, enum numbers, unsupported options")
    func conventions() throws {
        guard case let .delete(_, end, _) = try GatewayCall.decode(path: "/v3/kv/deleterange", body: Array(#"{"key":"YQ==","range_end":"AA=="}"#.utf8)) else {
            Issue.record("not a delete")
            return
        }
        #expect(end == [])
        guard case let .txn(t) = try GatewayCall.decode(path: "/v3/kv/txn", body: Array(#"{"compare":[{"key":"YQ==","target":2,"result":3,"mod_revision":"8"}]}"#.utf8)) else {
            Issue.record("not a txn")
            return
        }
        #expect(t.compares.first?.op == .notEqual && t.compares.first?.target == .modRevision(8))
        guard case let .txn(leased) = try GatewayCall.decode(path: "/v3/kv/txn", body: Array(#"{"compare":[{"key":"YQ==","target":"LEASE","result":"EQUAL","lease":"7"}]}"#.utf8)) else {
            Issue.record("not a txn")
            return
        }
        #expect(leased.compares.first?.target == .lease(LeaseID(7)))
        guard case let .range(sorted, _) = try GatewayCall.decode(path: "/v3/kv/range", body: Array(#"{"key":"YQ==","sort_order":2,"sort_target":"MOD","max_create_revision":"7"}"#.utf8)) else {
            Issue.record("not a range")
            return
        }
        #expect(sorted.sortOrder == .descend && sorted.sortTarget == .mod && sorted.maxCreateRevision == 7)
        #expect(throws: GatewayError.self) { try GatewayCall.decode(path: "/v3/kv/range", body: Array(#"{"key":"YQ==","sort_order":"SIDEWAYS"}"#.utf8)) }
        #expect(throws: GatewayError.self) { try GatewayCall.decode(path: "/v3/kv/range", body: Array(#"{"key":"YQ==","sort_target":5}"#.utf8)) }
        #expect(throws: GatewayError.self) { try GatewayCall.decode(path: "/v3/kv/range", body: Array(#"{"key":"YQ==","min_mod_revision":"-1"}"#.utf8)) }
        #expect(Self.decode("/v3/kv/range", Array(#"{"key":"YQ==","sort_order":"NONE","sort_target":"KEY"}"#.utf8)))
        guard case let .watch(plan) = try GatewayCall.decode(path: "/v3/watch", body: Array(#"{"create_request":{"key":"YQ==","filters":["NODELETE",0]}}"#.utf8)) else {
            Issue.record("not a watch")
            return
        }
        #expect(plan.dropPuts && plan.dropDeletes)
        for bad in [#"["NOPOST"]"#, #""NOPUT""#, "[2]", "[0,0,0,0,0,0,0,0,0]"] {
            #expect(throws: GatewayError.self, "\(bad)") { try GatewayCall.decode(path: "/v3/watch", body: Array(#"{"create_request":{"key":"YQ==","filters":\#(bad)}}"#.utf8)) }
        }
        #expect(throws: GatewayError.self) { try GatewayCall.decode(path: "/v3/lease/grant", body: Array(#"{"TTL":"2000000000000"}"#.utf8)) }
    }
}

extension GatewayFuzzTests {
    @Test("the gateway's JSON writer: sorted keys, escapes, nesting; its output parses back to what was written")
    func writer() throws {
        let tricky = "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} slash / é 😀"
        let object: [String: Any] = ["b": [1, -2, Int(Int32.max)], "a": ["z": true, "y": false, "x": tricky], "c": [["k": "v"], [:] as [String: Any]], "d": [String]()]
        let bytes = GatewayJSON.encode(object)
        #expect(String(decoding: bytes, as: UTF8.self).hasPrefix(#"{"a":{"x":"#))
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        #expect((parsed["a"] as? [String: Any])?["x"] as? String == tricky)
        #expect((parsed["a"] as? [String: Any])?["z"] as? Bool == true)
        #expect(parsed["b"] as? [Int] == [1, -2, Int(Int32.max)])
        #expect((parsed["c"] as? [[String: Any]])?.first?["k"] as? String == "v")
        #expect((parsed["d"] as? [Any])?.isEmpty == true)
        // The same answer is the same bytes, whatever the dictionary's order.
        #expect(GatewayJSON.encode(object) == bytes)
    }
}
