import SynodCore

/// A membership request (`.member` body).
public struct MemberRequest: Sendable, Hashable {
    public enum Operation: UInt8, Sendable, Hashable {
        case list = 1, addLearner, addVoter, promote, remove
        /// Hand leadership to `node` (etcd's `move-leader`); answered once it leads.
        case moveLeader
        /// Give member `node` a new peer address (etcd's `member update`); answered once the
        /// address is committed. Nodes before it answer `badRequest`.
        case update
    }
    public var operation: Operation
    public var node: NodeID
    /// The member's peer address (`host:port`), for add and update operations.
    public var peerAddress: String

    public init(operation: Operation, node: NodeID = .none, peerAddress: String = "") {
        self.operation = operation
        self.node = node
        self.peerAddress = peerAddress
    }

    public func encode() -> [UInt8] {
        var w = ByteWriter()
        w.u8(operation.rawValue)
        w.u64(node.rawValue)
        w.lengthPrefixed(Array(peerAddress.utf8))
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> MemberRequest {
        var r = ByteReader(bytes)
        let raw = try r.u8("member operation")
        guard let op = Operation(rawValue: raw) else { throw .unknownValue(what: "member operation", value: UInt64(raw)) }
        let node = NodeID(try r.u64("member id"))
        let address = String(decoding: try r.lengthPrefixed("peer address", limit: 256), as: UTF8.self)
        try r.expectEnd()
        return MemberRequest(operation: op, node: node, peerAddress: address)
    }
}

/// One member as `synod member list` shows it.
public struct MemberInfo: Sendable, Hashable {
    public var id: NodeID
    /// voter, learner, or outgoing (a voter being removed by a joint change in progress).
    public var role: String
    public var peerAddress: String
    public var clientAddress: String

    public init(id: NodeID, role: String, peerAddress: String, clientAddress: String) {
        self.id = id
        self.role = role
        self.peerAddress = peerAddress
        self.clientAddress = clientAddress
    }

    public static func encode(_ list: [MemberInfo]) -> [UInt8] {
        var w = ByteWriter()
        w.u32(UInt32(list.count))
        for m in list {
            w.u64(m.id.rawValue)
            for s in [m.role, m.peerAddress, m.clientAddress] { w.lengthPrefixed(Array(s.utf8)) }
        }
        return w.bytes
    }

    public static func decodeList(_ bytes: [UInt8]) throws(DecodeError) -> [MemberInfo] {
        var r = ByteReader(bytes)
        let n = Int(try r.u32("member count"))
        guard n <= Limits.membersMax * 2 else { throw .lengthTooLarge(what: "members", length: n, limit: Limits.membersMax * 2) }
        var out: [MemberInfo] = []
        for _ in 0..<n {
            let id = NodeID(try r.u64("member id"))
            var strings: [String] = []
            for what in ["role", "peer address", "client address"] { strings.append(String(decoding: try r.lengthPrefixed(what, limit: 256), as: UTF8.self)) }
            out.append(MemberInfo(id: id, role: strings[0], peerAddress: strings[1], clientAddress: strings[2]))
        }
        try r.expectEnd()
        return out
    }
}

/// Where member peer addresses are replicated: a reserved KV prefix, so every node (and a future
/// leader) learns the address of a member added at run time from the log itself.
public enum MemberDirectory {
    public static let prefix: [UInt8] = Array("__synod/members/".utf8)
    public static func key(_ id: NodeID) -> [UInt8] { prefix + Array(String(id.rawValue).utf8) }
    public static func parse(key: [UInt8]) -> NodeID? {
        guard key.starts(with: prefix), let v = UInt64(String(decoding: key.dropFirst(prefix.count), as: UTF8.self)), v > 0 else { return nil }
        return NodeID(v)
    }
}
