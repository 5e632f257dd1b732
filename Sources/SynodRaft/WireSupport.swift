import SynodCore

// A public constructor the wire codec (SynodWire) needs to rebuild messages it decoded
// (the memberwise initialiser is internal to this module).
extension SnapshotChunkMessage {
    public static func decoded(position: LogPosition, membership: Membership, offset: Int, data: [UInt8], isLast: Bool) -> SnapshotChunkMessage {
        SnapshotChunkMessage(position: position, membership: membership, offset: offset, data: data, isLast: isLast)
    }
}
