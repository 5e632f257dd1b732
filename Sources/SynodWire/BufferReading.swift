import NIOCore
import SynodCore

/// Bounded reads from a ByteBuffer that throw `DecodeError` instead of trapping.
extension ByteBuffer {
    @inlinable
    mutating func read<T: FixedWidthInteger>(_ what: String, as: T.Type = T.self) throws(DecodeError) -> T {
        guard let v = readInteger(as: T.self) else { throw .truncated(what: what, needed: MemoryLayout<T>.size - readableBytes) }
        return v
    }

    mutating func readBytesBounded(_ what: String, limit: Int) throws(DecodeError) -> [UInt8] {
        let n = Int(try read(what, as: UInt32.self))
        guard n <= limit else { throw .lengthTooLarge(what: what, length: n, limit: limit) }
        guard let bytes = readBytes(length: n) else { throw .truncated(what: what, needed: n - readableBytes) }
        return bytes
    }

    mutating func writeBytesPrefixed(_ bytes: [UInt8]) {
        writeInteger(UInt32(bytes.count))
        writeBytes(bytes)
    }

    mutating func readString(_ what: String, limit: Int) throws(DecodeError) -> String {
        String(decoding: try readBytesBounded(what, limit: limit), as: UTF8.self)
    }

    mutating func writeStringPrefixed(_ s: String) { writeBytesPrefixed(Array(s.utf8)) }

    func expectEnd() throws(DecodeError) {
        if readableBytes != 0 { throw .trailingBytes(count: readableBytes) }
    }
}
