/// FNV-1a, 64-bit: a small, well-known hash for trace digests (no Foundation needed).
public struct FNV1a64: Sendable, Hashable {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
    static let prime: UInt64 = 0x0000_0100_0000_01B3

    public init() {}

    public mutating func add(byte: UInt8) {
        value ^= UInt64(byte)
        value = value &* FNV1a64.prime
    }

    public mutating func add(_ s: String) { for b in s.utf8 { add(byte: b) } }

    public mutating func add(word v: UInt64) {
        var x = v
        for _ in 0..<8 { add(byte: UInt8(truncatingIfNeeded: x)); x >>= 8 }
    }

    /// Sixteen lowercase hex digits.
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for shift in stride(from: 60, through: 0, by: -4) { out.append(digits[Int((value >> UInt64(shift)) & 0xF)]) }
        return String(decoding: out, as: UTF8.self)
    }
}
