import NIOCore
import SynodCore
import SynodRaft
import SynodStateMachine
@testable import SynodWire
import SynodTestSupport
import Testing

/// The peer and client wire decoders: round trips, forward compatibility of the peer hello, and
/// hostile input (random bytes, mutated valid frames) that must give typed errors, never a trap.
@Suite struct WireCodecTests {
    /// Frames as `encode(into:)` writes them, split back into type and payload.
    static func frame(_ write: (inout ByteBuffer) -> Void) throws -> Frame {
        var buffer = ByteBuffer()
        write(&buffer)
        return try #require(try FrameDecoder.next(from: &buffer, frameBytesMax: WireProtocol.peerFrameBytesMax))
    }

    static func raft(_ m: Message) -> [UInt8] {
        var b = ByteBuffer()
        RaftCodec.encode(m, into: &b)
        return Array(b.readableBytesView)
    }

    /// One message of every type, with the fields that type uses.
    static func messages() throws -> [Message] {
        var out: [Message] = []
        for type in MessageType.allCases {
            var m = Message(type: type, from: NodeID(2), to: NodeID(1), term: Term(7))
            m.index = LogIndex(41)
            m.logTerm = Term(6)
            m.commit = LogIndex(40)
            m.context = 9
            m.sentTick = 77
            if type == .append { m.entries = [Entry(index: LogIndex(42), term: Term(7), kind: .command, payload: [1, 2, 3])] }
            if type == .readIndexResponse { m.reject = true }
            if type == .snapshot {
                m.snapshot = SnapshotChunkMessage.decoded(position: LogPosition(index: LogIndex(40), term: Term(6)),
                                                          membership: try Membership(voters: [NodeID(1), NodeID(2), NodeID(3)]),
                                                          offset: 0, data: [5, 6], isLast: true)
            }
            out.append(m)
        }
        return out
    }

    @Test func everyRaftMessageTypeRoundTrips() throws {
        for m in try Self.messages() {
            var b = ByteBuffer(bytes: Self.raft(m))
            #expect(try RaftCodec.decode(&b) == m, "\(m.type)")
        }
    }

    @Test func peerHelloCarriesTheProtocolVersion() throws {
        let hello = PeerHello(from: NodeID(3), clusterID: 11, clientAddress: "127.0.0.1:7003")
        var f = try Self.frame { hello.encode(into: &$0) }
        let back = try PeerHello.decode(&f.payload)
        #expect(back == hello)
        #expect(back.version == PeerHello.protocolVersion)
    }

    /// A hello payload written field by field: node 3, cluster 11, `address`, then `tail` (the
    /// version and anything after it, or nothing, as a build before versions sends).
    static func helloPayload(address: String = "127.0.0.1:7003", tail: (inout ByteBuffer) -> Void = { _ in }) throws -> ByteBuffer {
        try frame { b in
            b.writeFrame(.peerHello) { p in
                p.writeInteger(UInt64(3))
                p.writeInteger(UInt64(11))
                p.writeStringPrefixed(address)
                tail(&p)
            }
        }.payload
    }

    /// A hello from a build before versions has no version field: it speaks version 1.
    @Test func aHelloWithoutAVersionIsVersion1() throws {
        var payload = try Self.helloPayload()
        let hello = try PeerHello.decode(&payload)
        #expect(hello.version == 1)
        #expect(hello.clientAddress == "127.0.0.1:7003")
    }

    /// Fields a newer build appends are skipped, so its hello still reaches this one.
    @Test func aHelloWithFieldsFromANewerBuildDecodes() throws {
        var payload = try Self.helloPayload { p in
            p.writeInteger(UInt16(9))
            p.writeBytes([1, 2, 3, 4, 5])
        }
        let hello = try PeerHello.decode(&payload)
        #expect(hello.version == 9)
        #expect(payload.readableBytes == 0)
    }

    @Test func versionZeroAndTruncatedHellosAreTypedErrors() throws {
        var zero = try Self.helloPayload(address: "") { $0.writeInteger(UInt16(0)) }
        #expect(throws: DecodeError.self) { try PeerHello.decode(&zero) }
        var short = ByteBuffer(bytes: [0, 0, 0, 0, 0, 0, 0, 3, 0, 0])
        #expect(throws: DecodeError.self) { try PeerHello.decode(&short) }
    }

    /// Valid payloads of every peer and client decoder, for mutation.
    static func samples() throws -> [[UInt8]] {
        var out = try messages().map(raft)
        let hello = try frame { PeerHello(from: NodeID(1), clusterID: 1, clientAddress: "h:1").encode(into: &$0) }
        out.append(Array(hello.payload.readableBytesView))
        for body: ClientRequestBody in [.write([1, 2]), .read(.linearizable, [3]), .status, .leaseKeepAlive(id: 5), .watch([7]), .cancelWatch(id: 2), .member([1]), .snapshot,
                                        .hashKV(revision: 9), .statusDetail, .defragment, .requestWatchProgress(id: 3),
                                        .authenticate(user: "alice", password: Array("pw".utf8))] {
            let f = try frame { ClientRequest(id: 4, body: body).encode(into: &$0) }
            out.append(Array(f.payload.readableBytesView))
        }
        let r = try frame { ClientResponse(id: 4, status: .notLeader, leader: NodeID(2), leaderAddress: "h:2", message: "m", body: [9]).encode(into: &$0) }
        out.append(Array(r.payload.readableBytesView))
        out.append(DefragResult(bytesBefore: 2_707_456, bytesAfter: 1_368_064, millis: 8).encode())
        out.append(WatchRequest(key: [1, 2], rangeEnd: [3], startRevision: 5, prevKV: true).encode())
        out.append(WatchRequest(key: [1], startRevision: 0, progressNotify: true).encode())
        out.append(Self.authSummary.encode())
        out.append(KVQuery.auth.encode())
        return out
    }

    /// Every decoder on `bytes`: each either decodes or throws a typed error.
    static func decodeAll(_ bytes: [UInt8]) {
        var a = ByteBuffer(bytes: bytes)
        _ = try? RaftCodec.decode(&a)
        var b = ByteBuffer(bytes: bytes)
        _ = try? PeerHello.decode(&b)
        var c = ByteBuffer(bytes: bytes)
        _ = try? ClientRequest.decode(&c)
        var d = ByteBuffer(bytes: bytes)
        _ = try? ClientResponse.decode(&d)
        var e = ByteBuffer(bytes: bytes)
        _ = try? FrameDecoder.next(from: &e, frameBytesMax: 1 << 16)
        _ = try? DefragResult.decode(bytes)
        _ = try? KVHash.decode(bytes)
        _ = try? NodeStatus.decode(bytes)
        _ = try? WatchRequest.decode(bytes)
        _ = try? AuthSummary.decode(bytes)
        _ = try? KVQuery.decode(bytes)
    }

    static let authSummary = AuthSummary(enabled: true, revision: 9, clusterVersion: 2,
                                         users: [.init(name: "alice", roles: ["app"], hasPassword: true), .init(name: "nobody", roles: [], hasPassword: false)],
                                         roles: [AuthRole(name: "app", permissions: [KeyPermission(.readWrite, key: [1], rangeEnd: [2]), KeyPermission(.read, key: [], rangeEnd: [0])])])

    @Test("the auth summary and authenticate round-trip; a truncated summary is a typed error")
    func authMessages() throws {
        #expect(try AuthSummary.decode(Self.authSummary.encode()) == Self.authSummary)
        #expect(throws: DecodeError.self) { try AuthSummary.decode(Array(Self.authSummary.encode().dropLast())) }
        #expect(try KVQuery.decode(KVQuery.auth.encode()) == .auth)
        var buffer = ByteBuffer()
        ClientRequest(id: 7, body: .authenticate(user: "alice", password: Array("pw".utf8))).encode(into: &buffer)
        var frame = try #require(try FrameDecoder.next(from: &buffer, frameBytesMax: 1 << 16))
        #expect(try ClientRequest.decode(&frame.payload) == ClientRequest(id: 7, body: .authenticate(user: "alice", password: Array("pw".utf8))))
    }

    @Test("watch requests round-trip; without progress notifications they stay version 1, which older nodes decode")
    func watchRequestVersions() throws {
        let plain = WatchRequest(key: [1, 2], rangeEnd: [3], startRevision: 5, prevKV: true)
        #expect(plain.encode().first == 1)
        #expect(try WatchRequest.decode(plain.encode()) == plain)
        let progress = WatchRequest(key: [1], startRevision: 7, progressNotify: true)
        #expect(progress.encode().first == 2)
        #expect(try WatchRequest.decode(progress.encode()) == progress)
        #expect(throws: DecodeError.self) { try WatchRequest.decode(Array(progress.encode().dropLast())) }
        #expect(throws: DecodeError.self) { try WatchRequest.decode(plain.encode() + [1]) }
        #expect(throws: DecodeError.self) { try WatchRequest.decode([3] + plain.encode().dropFirst()) }
    }

    @Test("defragment request and result round-trip; a short or long result is refused")
    func defragRoundTrip() throws {
        let f = try Self.frame { ClientRequest(id: 7, body: .defragment).encode(into: &$0) }
        var payload = f.payload
        #expect(try ClientRequest.decode(&payload) == ClientRequest(id: 7, body: .defragment))
        let r = DefragResult(bytesBefore: 10, bytesAfter: 4, millis: 3)
        #expect(try DefragResult.decode(r.encode()) == r)
        #expect(throws: DecodeError.self) { try DefragResult.decode(Array(r.encode().dropLast())) }
        #expect(throws: DecodeError.self) { try DefragResult.decode(r.encode() + [0]) }
    }

    @Test("random bytes", arguments: 0..<4)
    func randomBytes(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        Fuzzing.randomInputs(count: 5000, lengthMax: 160, &rng, Self.decodeAll)
    }

    @Test("mutated valid encodings", arguments: 0..<4)
    func mutated(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        Fuzzing.mutations(of: try Self.samples(), count: 5000, &rng, Self.decodeAll)
    }
}

/// `NodeStatus` with and without its storage trailer (`statusDetail`): both round-trip, and a
/// status without one still decodes as before.
@Suite struct NodeStatusCodecTests {
    static let base = NodeStatus(id: NodeID(2), clientAddress: "127.0.0.1:7002", role: "leader", term: 3, leader: NodeID(2), commit: 9,
                                 applied: 9, lastIndex: 9, revision: 7, voters: [NodeID(1), NodeID(2), NodeID(3)], learners: [NodeID(4)])

    @Test("round-trips with and without storage; bad trailers are typed errors")
    func roundTrip() throws {
        #expect(try NodeStatus.decode(Self.base.encode()) == Self.base)
        var detailed = Self.base
        detailed.storage = NodeStatus.StorageStatus(stateBytes: 20_480, quotaBytes: 768 << 20, alarms: [.noSpace, .corrupt])
        #expect(try NodeStatus.decode(detailed.encode()) == detailed)
        var bytes = detailed.encode()
        bytes[Self.base.encode().count] = 2          // an unknown trailer version
        #expect(throws: DecodeError.self) { try NodeStatus.decode(bytes) }
        bytes = detailed.encode()
        bytes[bytes.count - 1] = 9                   // an unknown alarm
        #expect(throws: DecodeError.self) { try NodeStatus.decode(bytes) }
        #expect(throws: DecodeError.self) { try NodeStatus.decode(Array(detailed.encode().dropLast())) }
    }
}

/// The comparison `synod hashkv` and the corruption check share.
@Suite struct KVHashMinorityTests {
    static func h(_ byte: UInt8, compacted: Int64 = 0) -> KVHash { KVHash(revision: 9, compactedRevision: compacted, hash: [UInt8](repeating: byte, count: 32)) }

    @Test("the minority within each compaction group; other groups and lone members are not compared")
    func minority() {
        #expect(KVHash.minority([(1, Self.h(1)), (2, Self.h(1)), (3, Self.h(1))]).isEmpty)
        #expect(KVHash.minority([(1, Self.h(1)), (2, Self.h(7)), (3, Self.h(1))]) == [2])
        #expect(KVHash.minority([(1, Self.h(5)), (2, Self.h(3))]) == [1], "a tie keeps the lowest hash as the cluster's")
        #expect(KVHash.minority([(1, Self.h(1)), (2, Self.h(7, compacted: 4)), (3, Self.h(1))]).isEmpty, "different compaction points are not comparable")
    }
}

@Suite struct SnapshotFileTests {
    static func sample() -> SnapshotFile {
        var chunker = SnapshotChunker(chunkBytesMax: 200)
        var chunks: [SnapshotChunk] = []
        for i in 0..<40 {
            if let c = chunker.add(table: 0, key: Array("key-\(i)".utf8), value: Array(repeating: UInt8(i), count: 30)) { chunks.append(c) }
        }
        chunks.append(chunker.finish().last)
        return SnapshotFile(appliedIndex: LogIndex(77), revision: 41, chunks: chunks)
    }

    @Test("format 2 round-trips with its SHA-256; any flipped byte is a typed error, never a trap; format 1 still decodes, unchecked")
    func checksum() throws {
        let file = Self.sample()
        let bytes = file.encode()
        let (decoded, records) = try SnapshotFile.decode(bytes, tableCount: 1)
        #expect(records == 40 && decoded.checksummed && decoded.chunks == file.chunks && decoded.digest == file.digest)
        // Every single-byte flip after the magic is caught (by the digest, or by the header's checks).
        for at in 8..<bytes.count {
            var damaged = bytes
            damaged[at] ^= 0x20
            #expect(throws: (any Error).self, "flip at \(at)") { _ = try SnapshotFile.decode(damaged, tableCount: 1) }
        }
        var inRecord = bytes
        inRecord[bytes.count - 5] ^= 0x01
        #expect(throws: SnapshotFileError.self) { _ = try SnapshotFile.decode(inRecord, tableCount: 1) }
        // A format-1 file (no digest) as written before: header then chunks.
        var w = ByteWriter()
        w.raw(SnapshotFile.magic)
        w.u32(1)
        w.u64(77)
        w.u64(41)
        let old = try SnapshotFile.decode(w.bytes + SnapshotCodec.encode(file.chunks), tableCount: 1)
        #expect(!old.file.checksummed && old.records == 40)
        // Hostile bytes behind a valid magic and format.
        var rng = SeededRandom(seed: 5)
        Fuzzing.randomInputs(count: 2_000, lengthMax: 200, &rng) { junk in
            _ = try? SnapshotFile.decode(Array(bytes.prefix(12)) + junk, tableCount: 1)
            _ = try? SnapshotFile.decode(Array(bytes.prefix(60 + junk.count % 40)) + junk, tableCount: 1)
        }
    }
}

@Suite struct SnapshotSealTests {
    @Test("a sealed snapshot opens to its body; any flipped byte fails; unsealed bytes pass through; hostile bytes never trap")
    func seal() {
        let body = SnapshotCodec.encode(SnapshotFileTests.sample().chunks)
        let sealed = SnapshotSeal.seal(body)
        #expect(SnapshotSeal.open(sealed) == body)
        for at in 0..<sealed.count {
            var damaged = sealed
            damaged[at] ^= 0x04
            // A flip in the magic makes the bytes unsealed: they then fail to decode as chunks.
            if at < 8 { #expect(SnapshotSeal.open(damaged) == damaged, "a damaged magic reads as unsealed") }
            #expect(!SnapshotSeal.isIntact(damaged), "flip at \(at)")
        }
        #expect(SnapshotSeal.open(body) == body, "unsealed bytes (older snapshots, BFT state) pass through")
        #expect(SnapshotSeal.isIntact(body), "and are fit to install when they decode")
        #expect(SnapshotSeal.open(Array(sealed.prefix(20))) == nil)
        var rng = SeededRandom(seed: 9)
        Fuzzing.randomInputs(count: 2_000, lengthMax: 100, &rng) { junk in
            _ = SnapshotSeal.open(Array("SYNSEAL1".utf8) + junk)
            _ = SnapshotSeal.open(junk)
        }
    }
}
