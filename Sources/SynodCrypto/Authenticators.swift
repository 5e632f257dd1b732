import Crypto
import SynodCore
import SynodPBFT

/// The keys one principal holds: its Ed25519 signing key, every principal's public key, and the
/// HMAC-SHA256 keys it shares pairwise with every other principal (paper §4.1: a MAC key per pair).
public struct PBFTKeys: Sendable {
    public var signingKey: Curve25519.Signing.PrivateKey
    public var publicKeys: [Principal: Curve25519.Signing.PublicKey]
    public var macKeys: [Principal: SymmetricKey]

    public init(signingKey: Curve25519.Signing.PrivateKey, publicKeys: [Principal: Curve25519.Signing.PublicKey],
                macKeys: [Principal: SymmetricKey]) {
        self.signingKey = signingKey
        self.publicKeys = publicKeys
        self.macKeys = macKeys
    }
}

/// The production authenticator: SHA-256 digests, Ed25519 signatures (swift-crypto) for messages
/// that travel inside certificates, HMAC-SHA256 with pairwise keys for the rest.
public struct Ed25519HMACAuthenticator: PBFTCryptoProvider {
    public let principal: Principal
    private let signingKey: Curve25519.Signing.PrivateKey
    private let publicKeys: [Principal: Curve25519.Signing.PublicKey]
    /// One keyed HMAC per peer, copied for each use instead of re-keyed.
    private let keyedMACs: [Principal: HMAC<SHA256>]

    public init(principal: Principal, keys: PBFTKeys) {
        self.principal = principal
        signingKey = keys.signingKey
        publicKeys = keys.publicKeys
        keyedMACs = keys.macKeys.mapValues { HMAC<SHA256>(key: $0) }
    }

    public func digest(_ bytes: [UInt8]) -> SynodPBFT.Digest { SynodPBFT.Digest(Array(SHA256.hash(data: bytes))) }

    public func sign(_ bytes: [UInt8]) -> [UInt8] {
        // Ed25519 signing cannot fail for a valid key; an error here is a broken library.
        Array(try! signingKey.signature(for: bytes))
    }

    public func verifySignature(_ signature: [UInt8], of bytes: [UInt8], by signer: Principal) -> Bool {
        guard signature.count == 64, let key = publicKeys[signer] else { return false }
        return key.isValidSignature(signature, for: bytes)
    }

    public func mac(_ bytes: [UInt8], to receiver: Principal) -> [UInt8] {
        guard var h = keyedMACs[receiver] else { return [] }
        h.update(data: bytes)
        return Array(h.finalize())
    }

    public func verifyMAC(_ mac: [UInt8], of bytes: [UInt8], from sender: Principal) -> Bool {
        guard mac.count == SHA256.byteCount, var h = keyedMACs[sender] else { return false }
        h.update(data: bytes)
        // Constant-time comparison via swift-crypto's MAC equality.
        return h.finalize() == mac
    }
}

/// Deterministic keys for the simulator and tests: every key is derived from a seed, so a run is
/// reproducible. Never use for a real cluster.
public enum DeterministicKeys {
    static func tag(_ p: Principal) -> [UInt8] {
        var w = ByteWriter()
        switch p {
        case let .replica(id): w.u8(1); w.u64(id.rawValue)
        case let .client(id): w.u8(2); w.u64(id.rawValue)
        }
        return w.bytes
    }

    static func derive(_ label: String, seed: UInt64, _ parts: [[UInt8]]) -> [UInt8] {
        var w = ByteWriter()
        w.raw(Array(label.utf8))
        w.u64(seed)
        for p in parts { w.lengthPrefixed(p) }
        return Array(SHA256.hash(data: w.bytes))
    }

    /// The signing key of `p` for `seed`.
    public static func signingKey(_ p: Principal, seed: UInt64) -> Curve25519.Signing.PrivateKey {
        try! Curve25519.Signing.PrivateKey(rawRepresentation: derive("synod-sim-ed25519", seed: seed, [tag(p)]))
    }

    /// The MAC key `a` and `b` share (symmetric in a, b).
    public static func macKey(_ a: Principal, _ b: Principal, seed: UInt64) -> SymmetricKey {
        let (lo, hi) = a < b ? (a, b) : (b, a)
        return SymmetricKey(data: derive("synod-sim-hmac", seed: seed, [tag(lo), tag(hi)]))
    }

    /// Keys for every principal of a deployment of `replicas` and `clients`.
    public static func authenticators(seed: UInt64, replicas: [NodeID], clients: [ClientID]) -> [Principal: Ed25519HMACAuthenticator] {
        let all = replicas.map(Principal.replica) + clients.map(Principal.client)
        var signing: [Principal: Curve25519.Signing.PrivateKey] = [:]
        for p in all { signing[p] = signingKey(p, seed: seed) }
        let publicKeys = signing.mapValues(\.publicKey)
        var out: [Principal: Ed25519HMACAuthenticator] = [:]
        for p in all {
            var macs: [Principal: SymmetricKey] = [:]
            // Clients share keys with replicas only; replicas with everyone.
            for q in all where q != p && (p.replicaID != nil || q.replicaID != nil) { macs[q] = macKey(p, q, seed: seed) }
            out[p] = Ed25519HMACAuthenticator(principal: p, keys: PBFTKeys(signingKey: signing[p]!, publicKeys: publicKeys, macKeys: macs))
        }
        return out
    }
}
