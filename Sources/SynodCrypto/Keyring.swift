import Crypto
import SynodCore
import SynodPBFT

/// A deployment's keys for BFT mode: each principal gets a file holding its own Ed25519 signing
/// key, every principal's public key, and the HMAC-SHA256 keys it shares with each peer — and
/// nothing else, so a replica's file never lets it sign or MAC as anyone else (`synod bft keygen`).
///
/// File layout (`encode`): `"SYNODKEY"` · u8 version · principal · 32-byte signing key ·
/// u32 n · n × (principal, 32-byte public key) · u32 m · m × (principal, lp MAC key).
public enum PBFTKeyring {
    static let magic = Array("SYNODKEY".utf8)
    static let version: UInt8 = 1
    /// Most principals one key file may name.
    public static let principalsMax = 65_536

    /// Fresh random keys for every principal of a deployment (swift-crypto's generator). Clients
    /// share MAC keys with replicas only; replicas with everyone.
    public static func generate(replicas: [NodeID], clients: [ClientID]) -> [(Principal, PBFTKeys)] {
        let all = replicas.sorted().map(Principal.replica) + clients.sorted().map(Principal.client)
        var signing: [Principal: Curve25519.Signing.PrivateKey] = [:]
        for p in all { signing[p] = Curve25519.Signing.PrivateKey() }
        let publicKeys = signing.mapValues(\.publicKey)
        var macs: [Principal: [Principal: SymmetricKey]] = [:]
        for (i, a) in all.enumerated() {
            for b in all[(i + 1)...] where a.replicaID != nil || b.replicaID != nil {
                let k = SymmetricKey(size: .bits256)
                macs[a, default: [:]][b] = k
                macs[b, default: [:]][a] = k
            }
        }
        return all.map { p in (p, PBFTKeys(signingKey: signing[p]!, publicKeys: publicKeys, macKeys: macs[p] ?? [:])) }
    }

    /// One principal's key file.
    public static func encode(_ principal: Principal, _ keys: PBFTKeys) -> [UInt8] {
        var w = ByteWriter(capacity: 4096)
        w.raw(magic)
        w.u8(version)
        PBFTCodec.principal(principal, &w)
        w.raw(keys.signingKey.rawRepresentation)
        let pubs = keys.publicKeys.sorted { $0.key < $1.key }
        w.u32(UInt32(pubs.count))
        for (p, k) in pubs { PBFTCodec.principal(p, &w); w.raw(k.rawRepresentation) }
        let macs = keys.macKeys.sorted { $0.key < $1.key }
        w.u32(UInt32(macs.count))
        for (p, k) in macs { PBFTCodec.principal(p, &w); w.lengthPrefixed(k.withUnsafeBytes { Array($0) }) }
        return w.bytes
    }

    /// Reads a key file; anything malformed is a typed error.
    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> (Principal, PBFTKeys) {
        var r = ByteReader(bytes)
        guard try r.raw(magic.count, "key file magic") == magic else { throw .invalid("not a Synod key file") }
        let v = try r.u8("key file version")
        guard v == version else { throw .unknownValue(what: "key file version", value: UInt64(v)) }
        let me = try PBFTCodec.principal(&r)
        guard let signing = try? Curve25519.Signing.PrivateKey(rawRepresentation: try r.raw(32, "signing key")) else {
            throw .invalid("bad signing key")
        }
        var pubs: [Principal: Curve25519.Signing.PublicKey] = [:]
        let n = Int(try r.u32("public key count"))
        guard n <= principalsMax else { throw .lengthTooLarge(what: "public keys", length: n, limit: principalsMax) }
        for _ in 0..<n {
            let p = try PBFTCodec.principal(&r)
            guard let k = try? Curve25519.Signing.PublicKey(rawRepresentation: try r.raw(32, "public key")) else { throw .invalid("bad public key of \(p)") }
            pubs[p] = k
        }
        var macs: [Principal: SymmetricKey] = [:]
        let m = Int(try r.u32("mac key count"))
        guard m <= principalsMax else { throw .lengthTooLarge(what: "mac keys", length: m, limit: principalsMax) }
        for _ in 0..<m {
            let p = try PBFTCodec.principal(&r)
            let k = try r.lengthPrefixed("mac key", limit: 64)
            guard k.count >= 16 else { throw .invalid("mac key of \(p) shorter than 16 bytes") }
            macs[p] = SymmetricKey(data: k)
        }
        try r.expectEnd()
        guard pubs[me] == nil || pubs[me]!.rawRepresentation == signing.publicKey.rawRepresentation else {
            throw .invalid("the key file's signing key does not match its own public key")
        }
        return (me, PBFTKeys(signingKey: signing, publicKeys: pubs, macKeys: macs))
    }

    /// The file name `synod bft keygen` gives a principal's keys.
    public static func fileName(_ p: Principal) -> String {
        switch p {
        case let .replica(id): return "replica-\(id.rawValue).key"
        case let .client(id): return "client-\(id.rawValue).key"
        }
    }
}
