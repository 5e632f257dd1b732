import Foundation
import SynodClient
import SynodCore
import SynodNode
import SynodTestSupport
import SynodTransport
import Testing

@Suite("Advertised client addresses")
struct AdvertiseConfigurationTests {
    func configuration(listen: String, advertise: String?) throws -> NodeConfiguration {
        var c = NodeConfiguration(id: NodeID(1), dataDirectory: "/tmp/unused", peers: [(NodeID(1), try HostPort(parsing: "127.0.0.1:7101"))],
                                  clientAddress: try HostPort(parsing: listen))
        c.advertiseClientAddress = try advertise.map { try HostPort(parsing: $0) }
        return c
    }

    @Test("listening on every interface needs an advertised address that is not a wildcard")
    func wildcardNeedsAdvertise() throws {
        #expect(throws: ConfigurationError.self) { try configuration(listen: "0.0.0.0:7001", advertise: nil).validate() }
        #expect(throws: ConfigurationError.self) { try configuration(listen: "[::]:7001", advertise: nil).validate() }
        #expect(throws: ConfigurationError.self) { try configuration(listen: "0.0.0.0:7001", advertise: "0.0.0.0:7001").validate() }
        try configuration(listen: "0.0.0.0:7001", advertise: "10.0.0.4:7001").validate()
        try configuration(listen: "127.0.0.1:7001", advertise: nil).validate()
    }
}

extension RealProcessTests {
@Suite("Advertised client addresses on a real cluster")
struct AdvertiseProcessTests {
    @Test("nodes listening on 0.0.0.0 announce their --advertise-client address: member list shows it, redirects to the leader work")
    func advertisedAddressesRedirect() async throws {
        // The harness starts each node with --listen-client 127.0.0.1:P; these later options win.
        var ports: [Int] = []
        let cluster = try Cluster(size: 3, nodeArgs: { n in ["--listen-client", "0.0.0.0:\(ports[n - 1])", "--advertise-client", "127.0.0.1:\(ports[n - 1])"] },
                                  beforeStart: { c in ports = (1...3).map(c.clientPort) })
        let client = cluster.client()
        defer { Task { await client.close() } }
        try await client.put(b("k"), b("v"))
        let members = try await client.members()
        #expect(Set(members.map(\.clientAddress)) == Set(ports.map { "127.0.0.1:\($0)" }), "\(members)")
        // A client that knows only a follower is redirected to the leader's advertised address.
        let leader = try #require(await cluster.leader(using: client))
        let follower = leader % 3 + 1
        let viaFollower = SynodClient(ClientConfiguration(endpoints: [HostPort(host: "127.0.0.1", port: ports[follower - 1])]))
        defer { Task { await viaFollower.close() } }
        try await viaFollower.put(b("k2"), b("v2"))
        #expect(try await client.get(b("k2"))?.value == b("v2"))
    }
}
}
