import NIOCore
import NIOPosix
import SynodTransport
import Testing

/// Dialling a stopped member on 127.0.0.1 must never end up holding its port (a CI run once
/// failed to restart a replica with "Address already in use": its peers' redials had joined a
/// socket to itself on the replica's port, which sat in the ephemeral range).
@Suite("Dialling a stopped member")
struct DialTests {
    /// A bootstrap whose source address is `127.0.0.1:port`, so dialling that same address
    /// joins the socket to itself at once (what an ephemeral source port does by chance).
    private func selfDialling(_ group: MultiThreadedEventLoopGroup, port: Int) throws -> ClientBootstrap {
        ClientBootstrap(group: group).connectTimeout(.seconds(2)).bind(to: try SocketAddress(ipAddress: "127.0.0.1", port: port))
    }

    @Test("a plain connect can join a socket to itself; Dial.connect refuses it and frees the port")
    func selfConnectRefused() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // The hazard is real: without the check the socket is "connected", and holds the port.
        let port = LoopbackPorts.freeBase(count: 1)
        let plain = try await selfDialling(group, port: port).connect(host: "127.0.0.1", port: port).get()
        #expect(Dial.isConnectedToItself(plain))
        #expect(!LoopbackPorts.isFree(port))
        try await plain.close()
        // With the check it is a failed attempt, and the port is free again for the member.
        let other = LoopbackPorts.freeBase(count: 1)
        await #expect(throws: DialError.selfConnected(host: "127.0.0.1", port: other)) {
            _ = try await Dial.connect(try selfDialling(group, port: other), host: "127.0.0.1", port: other).get()
        }
        // The refused socket lingers in TIME_WAIT, which a member's listener (SO_REUSEADDR, as
        // both of Synod's listeners set) binds through.
        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: other).get()
        try await listener.close()
        try await group.shutdownGracefully()
    }

    @Test("test and benchmark clusters take ports outside the kernel's ephemeral range")
    func portsOutsideEphemeralRange() {
        let ephemeral = LoopbackPorts.ephemeralRange()
        for _ in 0..<50 {
            let base = LoopbackPorts.freeBase(count: 12)
            #expect(!(base...(base + 11)).overlaps(ephemeral), "ports \(base)...\(base + 11) overlap \(ephemeral)")
        }
        // A range that leaves no room outside still yields valid ports.
        for bases in [LoopbackPorts.candidateBases(count: 12, ephemeral: 10_500...65_000), LoopbackPorts.candidateBases(count: 12, ephemeral: 32_768...60_999)] {
            #expect(!bases.isEmpty)
            for r in bases { #expect(r.lowerBound >= 10_000 && r.upperBound + 11 <= 65_535) }
        }
    }
}
