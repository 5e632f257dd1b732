import Crypto
import SynodCore
import SynodCrypto
import SynodPBFT
import Testing

/// The wire encoding of pBFT envelopes and the key files: every kind round-trips, and no input —
/// truncated, bit-flipped, extended or random — traps the decoder (STYLE.md: every decoder fuzzed).
@Suite("pBFT wire codec and key files")
struct CodecTests {
    /// Every message a run with checkpoints, a view change and a state transfer sent.
    static func corpus() -> [PBFTEnvelope] {
        var c = Cluster { $0.checkpointInterval = 2; $0.logWindow = 4; $0.viewChangeTimeoutTicks = 6 }
        CheckpointAndViewChangeTests.drive(&c, 3)
        // Replica 1 (view 0's primary) drops out: a view change; the rest go past its window.
        c.filter = without([1])
        CheckpointAndViewChangeTests.drive(&c, 10, first: 20)
        // It comes back behind the others' stable checkpoint: status, new-view, state transfer.
        c.filter = { _ in true }
        c.tick(80)
        _ = c.clients[0].invoke([99], readOnly: true)
        c.tick(20)
        return c.sent
    }

    @Test("every message kind round-trips exactly, MACs and signatures included")
    func roundTrip() throws {
        let sent = Self.corpus()
        let kinds = Set(sent.map(\.message.kind))
        for k in ["request", "pre-prepare", "prepare", "commit", "checkpoint", "view-change", "new-view", "reply", "fetch-state", "state-transfer", "status"] {
            #expect(kinds.contains(k), "the corpus has no \(k)")
        }
        for e in sent {
            let bytes = PBFTCodec.encode(e)
            #expect(try PBFTCodec.decode(bytes) == e)
        }
    }

    @Test("truncations, bit flips, extensions and random bytes give typed errors, never a trap")
    func fuzz() {
        var rng = SeededRandom(seed: 0xF022)
        var samples: [[UInt8]] = []
        var seen = Set<String>()
        for e in Self.corpus() where seen.insert(e.message.kind).inserted || rng.chance(1, in: 20) { samples.append(PBFTCodec.encode(e)) }
        var decoded = 0, refused = 0
        for s in samples {
            for cut in stride(from: 0, to: s.count, by: max(1, s.count / 64)) {
                if (try? PBFTCodec.decode(Array(s.prefix(cut)))) == nil { refused += 1 } else { decoded += 1 }
            }
            for _ in 0..<200 {
                var m = s
                for _ in 0..<rng.int(in: 1...4) {
                    let i = rng.int(in: 0...(m.count - 1))
                    m[i] ^= UInt8(truncatingIfNeeded: 1 << rng.int(in: 0...7)) | (rng.chance(1, in: 4) ? 0xFF : 0)
                }
                if rng.chance(1, in: 8) { m += (0..<rng.int(in: 1...16)).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
                if (try? PBFTCodec.decode(m)) == nil { refused += 1 } else { decoded += 1 }
            }
        }
        for _ in 0..<2000 {
            let m = (0..<rng.int(in: 0...200)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if (try? PBFTCodec.decode(m)) == nil { refused += 1 } else { decoded += 1 }
        }
        // A length field claiming 4 GiB is refused against its limit, not allocated.
        var huge = ByteWriter()
        huge.u8(1); huge.u8(2); huge.u64(1); huge.u8(1); huge.u64(1); huge.u8(1)
        huge.u64(1); huge.u64(1); huge.u8(0); huge.u32(UInt32.max)
        #expect(throws: DecodeError.self) { try PBFTCodec.decode(huge.bytes) }
        #expect(refused > 0 && decoded + refused > 10_000)
    }

    @Test("key files round-trip; each holds its owner's secrets only; corrupt ones are refused")
    func keyFiles() throws {
        let all = PBFTKeyring.generate(replicas: (1...4).map { NodeID(UInt64($0)) }, clients: [ClientID(1), ClientID(2)])
        #expect(all.count == 6)
        let byPrincipal = Dictionary(uniqueKeysWithValues: all.map { ($0.0, $0.1) })
        for (p, keys) in all {
            let (q, back) = try PBFTKeyring.decode(PBFTKeyring.encode(p, keys))
            #expect(q == p)
            #expect(back.signingKey.rawRepresentation == keys.signingKey.rawRepresentation)
            #expect(back.publicKeys.count == 6)
            // Clients share MAC keys with replicas only.
            #expect(back.macKeys.count == (p.replicaID == nil ? 4 : 5))
        }
        // The pairwise MAC keys agree: what replica 1 MACs for client 1, client 1 verifies.
        let r1 = Ed25519HMACAuthenticator(principal: .replica(NodeID(1)), keys: byPrincipal[.replica(NodeID(1))]!)
        let c1 = Ed25519HMACAuthenticator(principal: .client(ClientID(1)), keys: byPrincipal[.client(ClientID(1))]!)
        let c2 = Ed25519HMACAuthenticator(principal: .client(ClientID(2)), keys: byPrincipal[.client(ClientID(2))]!)
        let mac = r1.mac([1, 2, 3], to: .client(ClientID(1)))
        #expect(c1.verifyMAC(mac, of: [1, 2, 3], from: .replica(NodeID(1))))
        #expect(!c2.verifyMAC(mac, of: [1, 2, 3], from: .replica(NodeID(1))))
        #expect(r1.verifySignature(c1.sign([7]), of: [7], by: .client(ClientID(1))))
        // Corruption anywhere: a typed error or a file that decodes, never a trap.
        var rng = SeededRandom(seed: 7)
        let file = PBFTKeyring.encode(all[0].0, all[0].1)
        for _ in 0..<2000 {
            var m = file
            if rng.chance(1, in: 3) { m = Array(m.prefix(rng.int(in: 0...(m.count - 1)))) } else {
                let i = rng.int(in: 0...(m.count - 1))
                m[i] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
            }
            _ = try? PBFTKeyring.decode(m)
        }
        #expect(throws: DecodeError.self) { try PBFTKeyring.decode(Array("not a key file".utf8)) }
    }
}
