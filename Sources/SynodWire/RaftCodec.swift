import NIOCore
import SynodCore
import SynodRaft

/// Binary encoding of `SynodRaft.Message` inside a `.raft` frame. Every count and length is
/// bounded before allocation; any malformed input is a `DecodeError`.
public enum RaftCodec {
    /// Most entries one append message may carry on the wire.
    public static let entriesPerMessageMax = 65_536
    /// Most bytes of one snapshot chunk on the wire.
    public static let snapshotChunkBytesMax = 8 << 20

    public static func encode(_ m: Message, into buffer: inout ByteBuffer) {
        buffer.writeInteger(m.type.rawValue)
        buffer.writeInteger(m.from.rawValue)
        buffer.writeInteger(m.to.rawValue)
        buffer.writeInteger(m.term.rawValue)
        buffer.writeInteger(m.logTerm.rawValue)
        buffer.writeInteger(m.index.rawValue)
        buffer.writeInteger(m.commit.rawValue)
        buffer.writeInteger(UInt8(m.reject ? 1 : 0))
        buffer.writeInteger(m.rejectHint.rawValue)
        buffer.writeInteger(m.conflictTerm.rawValue)
        buffer.writeInteger(m.context)
        buffer.writeInteger(m.sentTick)
        buffer.writeInteger(UInt32(m.entries.count))
        for e in m.entries {
            buffer.writeInteger(e.index.rawValue)
            buffer.writeInteger(e.term.rawValue)
            buffer.writeInteger(e.kind.rawValue)
            buffer.writeBytesPrefixed(e.payload)
        }
        if let s = m.snapshot {
            buffer.writeInteger(UInt8(1))
            buffer.writeInteger(s.position.index.rawValue)
            buffer.writeInteger(s.position.term.rawValue)
            var w = ByteWriter()
            s.membership.encode(into: &w)
            buffer.writeBytesPrefixed(w.bytes)
            buffer.writeInteger(UInt64(s.offset))
            buffer.writeBytesPrefixed(s.data)
            buffer.writeInteger(UInt8(s.isLast ? 1 : 0))
        } else {
            buffer.writeInteger(UInt8(0))
        }
    }

    public static func decode(_ buffer: inout ByteBuffer) throws(DecodeError) -> Message {
        let rawType: UInt8 = try buffer.read("message type")
        guard let type = MessageType(rawValue: rawType) else { throw .unknownValue(what: "message type", value: UInt64(rawType)) }
        var m = Message(type: type, from: NodeID(try buffer.read("from")), to: NodeID(try buffer.read("to")), term: Term(try buffer.read("term")))
        m.logTerm = Term(try buffer.read("log term"))
        m.index = LogIndex(try buffer.read("index"))
        m.commit = LogIndex(try buffer.read("commit"))
        let reject: UInt8 = try buffer.read("reject")
        guard reject <= 1 else { throw .unknownValue(what: "reject flag", value: UInt64(reject)) }
        m.reject = reject == 1
        m.rejectHint = LogIndex(try buffer.read("reject hint"))
        m.conflictTerm = Term(try buffer.read("conflict term"))
        m.context = try buffer.read("context")
        m.sentTick = try buffer.read("sent tick")
        let count = Int(try buffer.read("entry count", as: UInt32.self))
        guard count <= entriesPerMessageMax else { throw .lengthTooLarge(what: "entries", length: count, limit: entriesPerMessageMax) }
        // Each entry needs at least 21 bytes: refuse a count the frame cannot hold before reserving.
        guard count * 21 <= buffer.readableBytes else { throw .truncated(what: "entries", needed: count * 21 - buffer.readableBytes) }
        m.entries.reserveCapacity(count)
        for _ in 0..<count {
            let index = LogIndex(try buffer.read("entry index"))
            let term = Term(try buffer.read("entry term"))
            let rawKind: UInt8 = try buffer.read("entry kind")
            guard let kind = EntryKind(rawValue: rawKind) else { throw .unknownValue(what: "entry kind", value: UInt64(rawKind)) }
            let payload = try buffer.readBytesBounded("entry payload", limit: Limits.entryPayloadBytesMax)
            m.entries.append(Entry(index: index, term: term, kind: kind, payload: payload))
        }
        let hasSnapshot: UInt8 = try buffer.read("snapshot flag")
        switch hasSnapshot {
        case 0: break
        case 1:
            let position = LogPosition(index: LogIndex(try buffer.read("snapshot index")), term: Term(try buffer.read("snapshot term")))
            let membership = try Membership.decode(try buffer.readBytesBounded("snapshot membership", limit: 64 * 1024))
            let offset: UInt64 = try buffer.read("snapshot offset")
            guard offset <= UInt64(Int.max / 2) else { throw .invalid("snapshot offset \(offset)") }
            let data = try buffer.readBytesBounded("snapshot data", limit: snapshotChunkBytesMax)
            let last: UInt8 = try buffer.read("snapshot last flag")
            m.snapshot = SnapshotChunkMessage.decoded(position: position, membership: membership, offset: Int(offset), data: data, isLast: last == 1)
        default:
            throw .unknownValue(what: "snapshot flag", value: UInt64(hasSnapshot))
        }
        try buffer.expectEnd()
        return m
    }
}
