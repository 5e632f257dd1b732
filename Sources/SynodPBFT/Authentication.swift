import SynodCore

/// How the core authenticates: digests, signatures and pairwise MACs. Implementations live
/// outside the pure core (SynodCrypto: SHA-256, Ed25519, HMAC-SHA256).
///
/// How to implement it: every method must be deterministic and side-effect free (the core may
/// call it any number of times, in any order); `verify*` must return false, never trap, for any
/// bytes, including truncated or over-long signatures; `digest` must be collision resistant.
public protocol PBFTCryptoProvider: Sendable {
    /// Who this provider signs and MACs as.
    var principal: Principal { get }
    /// A collision-resistant digest, at most `Digest.bytesMax` bytes.
    func digest(_ bytes: [UInt8]) -> Digest
    /// A signature by `principal` that any third party can verify.
    func sign(_ bytes: [UInt8]) -> [UInt8]
    /// True iff `signature` is `signer`'s signature of `bytes`.
    func verifySignature(_ signature: [UInt8], of bytes: [UInt8], by signer: Principal) -> Bool
    /// A MAC of `bytes` under the key this principal shares with `receiver`.
    func mac(_ bytes: [UInt8], to receiver: Principal) -> [UInt8]
    /// True iff `mac` is the MAC of `bytes` under the key this principal shares with `sender`.
    func verifyMAC(_ mac: [UInt8], of bytes: [UInt8], from sender: Principal) -> Bool
}

extension PBFTCryptoProvider {
    /// The digest of one request: covers its signed content, not its signature.
    public func requestDigest(_ r: Request) -> Digest { digest(r.signedBytes) }

    /// The digest a pre-prepare names: over the digests of its requests in order. An empty batch
    /// (a null request) has a digest of its own, distinct from every real batch.
    public func batchDigest(_ requests: [Request]) -> Digest {
        var w = ByteWriter(capacity: 8 + requests.count * 32)
        w.u8(0xB7)
        w.u32(UInt32(requests.count))
        for r in requests { w.lengthPrefixed(requestDigest(r).bytes) }
        return digest(w.bytes)
    }
}

/// Remembers signatures already verified, so a certificate seen twice costs one verification.
/// Keys hold the full signed bytes, so a valid signature never vouches for other bytes. Bounded;
/// it only saves work, it never changes an answer.
struct VerifiedCache {
    struct Key: Hashable {
        var signer: Principal
        var signature: [UInt8]
        var bytes: [UInt8]
    }

    static let entriesMax = 4096
    private var known = Set<Key>()

    mutating func verify(_ crypto: any PBFTCryptoProvider, _ signature: [UInt8], of bytes: [UInt8], by signer: Principal) -> Bool {
        guard signature.count <= PBFTLimits.authenticatorBytesMax else { return false }
        let key = Key(signer: signer, signature: signature, bytes: bytes)
        if known.contains(key) { return true }
        guard crypto.verifySignature(signature, of: bytes, by: signer) else { return false }
        if known.count >= VerifiedCache.entriesMax { known.removeAll(keepingCapacity: true) }
        known.insert(key)
        return true
    }
}
