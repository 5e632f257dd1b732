import SynodCore

/// What a BFT-mode request's operation carries (inside a signed pBFT `Request`), and what the
/// replicas' agreed result means. Shared by `synod serve --mode bft` and `SynodBFTClient`.
///
/// ```
/// u8 1 · CommandEnvelope bytes   a write (put, delete, txn, ...), executed in order
/// u8 2 · KVQuery bytes           a read: in order, or by the read-only optimization
/// ```
/// The result of either is a `Response` encoding (`Response.encode()`), identical on every
/// correct replica, which is what lets a client compare f+1 of them byte for byte.
public enum BFTOperation: Hashable, Sendable {
    case write([UInt8])
    case read([UInt8])

    public func encode() -> [UInt8] {
        var w = ByteWriter()
        switch self {
        case let .write(b): w.u8(1); w.raw(b)
        case let .read(b): w.u8(2); w.raw(b)
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> BFTOperation {
        guard let tag = bytes.first else { throw .truncated(what: "bft operation", needed: 1) }
        let body = Array(bytes.dropFirst())
        switch tag {
        case 1: return .write(body)
        case 2: return .read(body)
        default: throw .unknownValue(what: "bft operation", value: UInt64(tag))
        }
    }
}
