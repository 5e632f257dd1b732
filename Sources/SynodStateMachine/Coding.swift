import SynodCore

// Small helpers on ByteWriter/ByteReader for the state machine's encodings. Every count and length
// is checked against a named limit before anything is allocated.

extension ByteWriter {
    mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    mutating func bool(_ v: Bool) { u8(v ? 1 : 0) }
    mutating func u16(_ v: UInt16) { u8(UInt8(v >> 8)); u8(UInt8(v & 0xff)) }
    mutating func count(_ n: Int) { u32(UInt32(n)) }
    mutating func text(_ s: String) { lengthPrefixed(Array(s.utf8.prefix(KVLimits.messageBytesMax))) }
}

extension ByteReader {
    mutating func i64(_ what: String) throws(DecodeError) -> Int64 { Int64(bitPattern: try u64(what)) }
    mutating func u16(_ what: String) throws(DecodeError) -> UInt16 { UInt16(try u8(what)) << 8 | UInt16(try u8(what)) }

    mutating func bool(_ what: String) throws(DecodeError) -> Bool {
        switch try u8(what) {
        case 0: return false
        case 1: return true
        case let v: throw .unknownValue(what: what, value: UInt64(v))
        }
    }

    /// A count, checked against `limit` and against the bytes left (each item takes at least
    /// `minBytesEach`), so a forged count cannot make us reserve memory.
    mutating func count(_ what: String, limit: Int, minBytesEach: Int = 1) throws(DecodeError) -> Int {
        let n = Int(try u32(what))
        if n > limit { throw .lengthTooLarge(what: what, length: n, limit: limit) }
        if n * minBytesEach > remaining { throw .truncated(what: what, needed: n * minBytesEach - remaining) }
        return n
    }

    mutating func text(_ what: String) throws(DecodeError) -> String {
        String(decoding: try lengthPrefixed(what, limit: KVLimits.messageBytesMax), as: UTF8.self)
    }

    mutating func version(_ what: String, expected: UInt8) throws(DecodeError) {
        let v = try u8(what)
        guard v == expected else { throw .unknownValue(what: what, value: UInt64(v)) }
    }
}
