import NIOCore
import SynodCore

/// Every frame on a Synod TCP connection, peer or client:
///
/// ```
/// u32 length (big-endian) of everything after it
/// u8  protocol version (`WireProtocol.version`)
/// u8  frame type (`FrameType`)
/// ... payload (length - 2 bytes)
/// ```
///
/// The length is checked against `frameBytesMax` before anything is allocated.
public enum WireProtocol {
    /// The only version this build speaks. A peer speaking another is disconnected with a log line.
    public static let version: UInt8 = 1
    /// Largest frame on a peer link: room for a full append batch or snapshot chunk.
    public static let peerFrameBytesMax = 16 << 20
    /// Largest frame from or to a client: one request or response.
    public static let clientFrameBytesMax = 4 << 20
    /// Bytes before the payload: length, version, type.
    public static let headerBytes = 6
}

/// What a frame carries. Raw values are part of the protocol: never reuse one.
public enum FrameType: UInt8, Sendable, Hashable {
    /// Peer link, first frame from the dialling side: who we are (`PeerHello`: node id, cluster id,
    /// client address, protocol version).
    case peerHello = 1
    /// Peer link: one Raft message.
    case raft = 2
    /// Peer link, or client link in BFT mode: one pBFT envelope (`PBFTCodec`).
    case pbft = 3
    /// Client → node: one request.
    case clientRequest = 10
    /// Node → client: one response (or one watch event batch).
    case clientResponse = 11
}

/// Why bytes from the network were refused. The connection that sent them is closed.
public enum WireError: Error, Hashable, Sendable, CustomStringConvertible {
    case frameTooLarge(length: Int, limit: Int)
    case frameTooSmall(length: Int)
    case unsupportedVersion(UInt8)
    case unknownFrameType(UInt8)
    case unexpectedFrame(FrameType)
    case malformed(DecodeError)

    public var description: String {
        switch self {
        case let .frameTooLarge(length, limit): return "frame of \(length) bytes exceeds the limit of \(limit)"
        case let .frameTooSmall(length): return "frame of \(length) bytes is shorter than its header"
        case let .unsupportedVersion(v): return "protocol version \(v) is not supported (this build speaks \(WireProtocol.version))"
        case let .unknownFrameType(t): return "unknown frame type \(t)"
        case let .unexpectedFrame(t): return "frame \(t) is not expected on this connection"
        case let .malformed(e): return "malformed frame: \(e)"
        }
    }
}

/// A decoded frame: its type and payload bytes.
public struct Frame: Sendable {
    public var type: FrameType
    public var payload: ByteBuffer
    public init(type: FrameType, payload: ByteBuffer) {
        self.type = type
        self.payload = payload
    }
}

/// Splits a byte stream into frames, refusing oversized, undersized, unknown or wrong-version
/// frames before allocating their payloads.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = Frame
    public let frameBytesMax: Int

    public init(frameBytesMax: Int) { self.frameBytesMax = frameBytesMax }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try Self.next(from: &buffer, frameBytesMax: frameBytesMax) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }

    /// Takes one whole frame off the front of `buffer`, or nil when more bytes are needed.
    public static func next(from buffer: inout ByteBuffer, frameBytesMax: Int) throws(WireError) -> Frame? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        let n = Int(length)
        guard n >= 2 else { throw .frameTooSmall(length: n) }
        guard n <= frameBytesMax else { throw .frameTooLarge(length: n, limit: frameBytesMax) }
        guard buffer.readableBytes >= 4 + n else { return nil }
        let version = buffer.getInteger(at: buffer.readerIndex + 4, as: UInt8.self)!
        guard version == WireProtocol.version else { throw .unsupportedVersion(version) }
        let rawType = buffer.getInteger(at: buffer.readerIndex + 5, as: UInt8.self)!
        guard let type = FrameType(rawValue: rawType) else { throw .unknownFrameType(rawType) }
        buffer.moveReaderIndex(forwardBy: WireProtocol.headerBytes)
        let payload = buffer.readSlice(length: n - 2)!
        return Frame(type: type, payload: payload)
    }
}

extension ByteBuffer {
    /// Writes a whole frame whose payload is produced by `body`, back-filling the length.
    @inlinable
    public mutating func writeFrame(_ type: FrameType, _ body: (inout ByteBuffer) -> Void) {
        let start = writerIndex
        writeInteger(UInt32(0))
        writeInteger(WireProtocol.version)
        writeInteger(type.rawValue)
        body(&self)
        setInteger(UInt32(writerIndex - start - 4), at: start)
    }
}

extension ByteBufferAllocator {
    /// One buffer holding a frame of `type` per payload, in order (BFT envelopes on any link).
    public func frames(_ type: FrameType, _ payloads: [[UInt8]]) -> ByteBuffer {
        var buffer = buffer(capacity: payloads.reduce(0) { $0 + $1.count + WireProtocol.headerBytes })
        for p in payloads { buffer.writeFrame(type) { $0.writeBytes(p) } }
        return buffer
    }
}
