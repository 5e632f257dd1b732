import NIOCore
import SynodCore
import SynodStateMachine

/// Read consistency a client asks for.
public enum Consistency: UInt8, Sendable, Hashable, CaseIterable {
    /// Confirmed by the leader through ReadIndex (a heartbeat round): never stale.
    case linearizable = 0
    /// Answered from the local replica's applied state: fast, possibly stale.
    case serializable = 1
}

/// What a client asks. State-machine commands and queries travel as opaque bytes encoded by
/// `SynodStateMachine`, so this layer does not change when commands are added.
public enum ClientRequestBody: Sendable, Hashable {
    /// A write: an encoded `CommandEnvelope`, proposed to the log.
    case write([UInt8])
    /// A read: an encoded query, served at the requested consistency.
    case read(Consistency, [UInt8])
    /// The answering node's status.
    case status
    /// Keep a lease alive (leader only; not a log entry).
    case leaseKeepAlive(id: Int64)
    /// Start a watch: an encoded watch request; events stream back under the same request id.
    case watch([UInt8])
    /// Stop the watch started by request `id`.
    case cancelWatch(id: UInt64)
    /// A membership request: an encoded `MemberRequest`.
    case member([UInt8])
    /// Stream a consistent snapshot of the state: a header, then `.snapshotChunk` responses.
    case snapshot
    /// A hash of the KV history at or below a revision (0: the node's current one): `KVHash`.
    case hashKV(revision: Int64)
    /// `status` with the storage fields (`NodeStatus.storage`). Nodes before it answer
    /// `badRequest`; a client then asks `status`.
    case statusDetail
    /// Compact this node's storage file while it runs (`synod defrag`, etcd's defragment): the
    /// answer is `DefragResult`. Nodes before it answer `badRequest`.
    case defragment
    /// Ask for a progress notification on the watch started by request `id` on this connection
    /// (etcd's `RequestProgress`): the node answers `ok` (or `badRequest` if there is no such
    /// watch), then sends that watch `watchProgress` as soon as it has caught up — at once for a
    /// watch that keeps up. Nodes before it answer `badRequest`.
    case requestWatchProgress(id: UInt64)
    /// Authenticates this connection as `user` (etcd's Authenticate): answered `ok` (body: the
    /// user name) once the node, at a read index, found the password right, else
    /// `authenticationFailed`. Later requests on the connection run as that user.
    case authenticate(user: String, password: [UInt8])

    var tag: UInt8 {
        switch self {
        case .write: return 1
        case .read: return 2
        case .status: return 3
        case .leaseKeepAlive: return 4
        case .watch: return 5
        case .cancelWatch: return 6
        case .member: return 7
        case .snapshot: return 8
        case .hashKV: return 9
        case .statusDetail: return 10
        case .defragment: return 11
        case .requestWatchProgress: return 12
        case .authenticate: return 13
        }
    }
}

/// One client request, multiplexed on a connection by `id` (chosen by the client, unique per connection).
public struct ClientRequest: Sendable, Hashable {
    public var id: UInt64
    public var body: ClientRequestBody
    public init(id: UInt64, body: ClientRequestBody) {
        self.id = id
        self.body = body
    }

    public static let bodyBytesMax = WireProtocol.clientFrameBytesMax - 64
    /// Longest user name or password `authenticate` carries.
    public static let credentialBytesMax = 1024

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeFrame(.clientRequest) { b in
            b.writeInteger(id)
            b.writeInteger(body.tag)
            switch body {
            case let .write(bytes), let .watch(bytes), let .member(bytes): b.writeBytesPrefixed(bytes)
            case let .read(c, bytes):
                b.writeInteger(c.rawValue)
                b.writeBytesPrefixed(bytes)
            case .status, .snapshot, .statusDetail, .defragment: break
            case let .leaseKeepAlive(lease): b.writeInteger(lease)
            case let .cancelWatch(watch), let .requestWatchProgress(watch): b.writeInteger(watch)
            case let .hashKV(revision): b.writeInteger(revision)
            case let .authenticate(user, password):
                b.writeStringPrefixed(user)
                b.writeBytesPrefixed(password)
            }
        }
    }

    public static func decode(_ buffer: inout ByteBuffer) throws(DecodeError) -> ClientRequest {
        let id: UInt64 = try buffer.read("request id")
        let tag: UInt8 = try buffer.read("request kind")
        let body: ClientRequestBody
        switch tag {
        case 1: body = .write(try buffer.readBytesBounded("write", limit: bodyBytesMax))
        case 2:
            let raw: UInt8 = try buffer.read("consistency")
            guard let c = Consistency(rawValue: raw) else { throw .unknownValue(what: "consistency", value: UInt64(raw)) }
            body = .read(c, try buffer.readBytesBounded("query", limit: bodyBytesMax))
        case 3: body = .status
        case 4: body = .leaseKeepAlive(id: try buffer.read("lease id"))
        case 5: body = .watch(try buffer.readBytesBounded("watch", limit: bodyBytesMax))
        case 6: body = .cancelWatch(id: try buffer.read("watch id"))
        case 7: body = .member(try buffer.readBytesBounded("member change", limit: bodyBytesMax))
        case 8: body = .snapshot
        case 9: body = .hashKV(revision: try buffer.read("hash revision"))
        case 10: body = .statusDetail
        case 11: body = .defragment
        case 12: body = .requestWatchProgress(id: try buffer.read("watch id"))
        case 13:
            body = .authenticate(user: try buffer.readString("user", limit: Self.credentialBytesMax),
                                 password: try buffer.readBytesBounded("password", limit: Self.credentialBytesMax))
        default: throw .unknownValue(what: "request kind", value: UInt64(tag))
        }
        try buffer.expectEnd()
        return ClientRequest(id: id, body: body)
    }
}

/// Outcome of a request. Raw values are part of the protocol.
public enum ClientStatus: UInt8, Sendable, Hashable, CaseIterable {
    case ok = 0
    /// This node is not the leader; `leader` / `leaderAddress` say who is, when known.
    case notLeader = 1
    /// No leader is known right now (election in progress, or no quorum). Retry.
    case noLeader = 2
    /// Too many requests in flight. Retry after a pause.
    case busy = 3
    /// The request was malformed or refused; `message` says why. Do not retry unchanged.
    case badRequest = 4
    /// The outcome is unknown: the write may or may not have been applied (retry with the same session).
    case unknownOutcome = 5
    /// The node is shutting down.
    case shuttingDown = 6
    /// An internal error (storage failure); `message` says what.
    case internalError = 7
    /// A watch event batch (streams under the watch's request id).
    case watchEvents = 8
    /// The watch ended (cancelled, or its start revision was compacted: see `message`).
    case watchEnded = 9
    /// One chunk of a streamed snapshot (body: u32 sequence, u8 last, records).
    case snapshotChunk = 10
    /// A watch's progress notification (streams under the watch's request id; sent only to a
    /// watch that asked, `WatchRequest.progressNotify`): body u64 revision R — every event of
    /// the watch's range with revision <= R has been sent on this stream.
    case watchProgress = 11
    /// The connection's user may not do this (auth is enabled: not authenticated, a stale
    /// credential, or a missing permission); `message` says which. Do not retry unchanged.
    case permissionDenied = 12
    /// `authenticate` failed: no such user, or the wrong password.
    case authenticationFailed = 13
}

/// One response frame.
public struct ClientResponse: Sendable, Hashable {
    public var id: UInt64
    public var status: ClientStatus
    public var leader: NodeID
    public var leaderAddress: String
    public var message: String
    public var body: [UInt8]

    public init(id: UInt64, status: ClientStatus, leader: NodeID = .none, leaderAddress: String = "", message: String = "", body: [UInt8] = []) {
        self.id = id
        self.status = status
        self.leader = leader
        self.leaderAddress = leaderAddress
        self.message = message
        self.body = body
    }

    public static let textBytesMax = 4096

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeFrame(.clientResponse) { b in
            b.writeInteger(id)
            b.writeInteger(status.rawValue)
            b.writeInteger(leader.rawValue)
            b.writeStringPrefixed(String(leaderAddress.prefix(256)))
            b.writeStringPrefixed(String(message.utf8.prefix(Self.textBytesMax)) ?? "")
            b.writeBytesPrefixed(body)
        }
    }

    public static func decode(_ buffer: inout ByteBuffer) throws(DecodeError) -> ClientResponse {
        let id: UInt64 = try buffer.read("response id")
        let raw: UInt8 = try buffer.read("status")
        guard let status = ClientStatus(rawValue: raw) else { throw .unknownValue(what: "status", value: UInt64(raw)) }
        let leader = NodeID(try buffer.read("leader"))
        let address = try buffer.readString("leader address", limit: 256)
        let message = try buffer.readString("message", limit: textBytesMax)
        let body = try buffer.readBytesBounded("body", limit: WireProtocol.clientFrameBytesMax)
        try buffer.expectEnd()
        return ClientResponse(id: id, status: status, leader: leader, leaderAddress: address, message: message, body: body)
    }
}

/// First frame on a peer link, from the dialling node.
///
/// Forward compatible from version 2 on: fields are only ever appended, and a decoder ignores
/// whatever follows the fields it knows (within the frame's bounded length), so a newer node's
/// hello still reaches this build. (Builds before versions refuse any trailing field.) A hello
/// without `version` comes from a build before versions (1).
public struct PeerHello: Sendable, Hashable {
    public var from: NodeID
    public var clusterID: UInt64
    /// Where the sender serves clients (so leaders can be named to clients).
    public var clientAddress: String
    /// The peer protocol the sender speaks (`PeerHello.protocolVersion` for this build).
    public var version: UInt16
    /// The highest cluster version (of the replicated rules) the sender's build supports; 0 from
    /// a build before cluster versions (which sends no such field).
    public var clusterVersion: UInt16

    /// 1: Raft messages of types 1-11. 2: also `readIndex` / `readIndexResponse` (types 12, 13:
    /// followers serving linearizable reads).
    public static let protocolVersion: UInt16 = 2
    /// The first version that carries follower read-index requests.
    public static let followerReadsVersion: UInt16 = 2

    public init(from: NodeID, clusterID: UInt64, clientAddress: String, version: UInt16 = PeerHello.protocolVersion, clusterVersion: UInt16 = 0) {
        self.from = from
        self.clusterID = clusterID
        self.clientAddress = clientAddress
        self.version = version
        self.clusterVersion = clusterVersion
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeFrame(.peerHello) { b in
            b.writeInteger(from.rawValue)
            b.writeInteger(clusterID)
            b.writeStringPrefixed(clientAddress)
            b.writeInteger(version)
            b.writeInteger(clusterVersion)
        }
    }

    public static func decode(_ buffer: inout ByteBuffer) throws(DecodeError) -> PeerHello {
        let from = NodeID(try buffer.read("hello from"))
        let clusterID: UInt64 = try buffer.read("cluster id")
        let address = try buffer.readString("client address", limit: 256)
        let version: UInt16 = buffer.readableBytes == 0 ? 1 : try buffer.read("protocol version")
        guard version >= 1 else { throw .invalid("peer protocol version 0") }
        let clusterVersion: UInt16 = buffer.readableBytes < 2 ? 0 : try buffer.read("cluster version")
        // Fields a newer build appended: not ours to read.
        buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
        return PeerHello(from: from, clusterID: clusterID, clientAddress: address, version: version, clusterVersion: clusterVersion)
    }
}

/// A node's status as `synod status` shows it.
public struct NodeStatus: Sendable, Hashable {
    public var id: NodeID
    public var clientAddress: String
    public var role: String
    public var term: UInt64
    public var leader: NodeID
    public var commit: UInt64
    public var applied: UInt64
    public var lastIndex: UInt64
    public var revision: Int64
    public var voters: [NodeID]
    public var learners: [NodeID]
    /// Storage fields, answered to `statusDetail` only (older clients refuse trailing bytes).
    public var storage: StorageStatus?

    /// A node's storage as `synod status` shows it.
    public struct StorageStatus: Sendable, Hashable {
        /// Bytes of the pages the state tables use (measured every half second).
        public var stateBytes: Int64
        /// The space quota (0: none).
        public var quotaBytes: Int64
        /// The raised alarms, ascending.
        public var alarms: [AlarmKind]
        public init(stateBytes: Int64, quotaBytes: Int64, alarms: [AlarmKind]) {
            self.stateBytes = stateBytes
            self.quotaBytes = quotaBytes
            self.alarms = alarms
        }
    }

    public init(id: NodeID, clientAddress: String, role: String, term: UInt64, leader: NodeID, commit: UInt64, applied: UInt64,
                lastIndex: UInt64, revision: Int64, voters: [NodeID], learners: [NodeID]) {
        self.id = id
        self.clientAddress = clientAddress
        self.role = role
        self.term = term
        self.leader = leader
        self.commit = commit
        self.applied = applied
        self.lastIndex = lastIndex
        self.revision = revision
        self.voters = voters
        self.learners = learners
    }

    public func encode() -> [UInt8] {
        var b = ByteBuffer()
        b.writeInteger(id.rawValue)
        b.writeStringPrefixed(clientAddress)
        b.writeStringPrefixed(role)
        b.writeInteger(term)
        b.writeInteger(leader.rawValue)
        b.writeInteger(commit)
        b.writeInteger(applied)
        b.writeInteger(lastIndex)
        b.writeInteger(revision)
        for list in [voters, learners] {
            b.writeInteger(UInt32(list.count))
            for v in list { b.writeInteger(v.rawValue) }
        }
        if let storage {
            b.writeInteger(UInt8(1))
            b.writeInteger(storage.stateBytes)
            b.writeInteger(storage.quotaBytes)
            b.writeInteger(UInt8(storage.alarms.count))
            for a in storage.alarms { b.writeInteger(a.rawValue) }
        }
        return Array(b.readableBytesView)
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> NodeStatus {
        var b = ByteBuffer(bytes: bytes)
        let id = NodeID(try b.read("id"))
        let address = try b.readString("address", limit: 256)
        let role = try b.readString("role", limit: 64)
        let term: UInt64 = try b.read("term")
        let leader = NodeID(try b.read("leader"))
        let commit: UInt64 = try b.read("commit")
        let applied: UInt64 = try b.read("applied")
        let last: UInt64 = try b.read("last index")
        let revision: Int64 = try b.read("revision")
        var lists: [[NodeID]] = []
        for what in ["voters", "learners"] {
            let n = Int(try b.read(what, as: UInt32.self))
            guard n <= Limits.membersMax else { throw .lengthTooLarge(what: what, length: n, limit: Limits.membersMax) }
            var list: [NodeID] = []
            for _ in 0..<n { list.append(NodeID(try b.read(what))) }
            lists.append(list)
        }
        var storage: StorageStatus?
        if b.readableBytes > 0 {
            let version: UInt8 = try b.read("status storage version")
            guard version == 1 else { throw .unknownValue(what: "status storage version", value: UInt64(version)) }
            let used: Int64 = try b.read("state bytes")
            let quota: Int64 = try b.read("quota bytes")
            let n = Int(try b.read("alarm count", as: UInt8.self))
            guard n <= AlarmKind.allCases.count else { throw .lengthTooLarge(what: "alarms", length: n, limit: AlarmKind.allCases.count) }
            var alarms: [AlarmKind] = []
            for _ in 0..<n {
                let raw: UInt8 = try b.read("alarm")
                guard let kind = AlarmKind(rawValue: raw) else { throw .unknownValue(what: "alarm", value: UInt64(raw)) }
                alarms.append(kind)
            }
            storage = StorageStatus(stateBytes: used, quotaBytes: quota, alarms: alarms)
        }
        try b.expectEnd()
        var status = NodeStatus(id: id, clientAddress: address, role: role, term: term, leader: leader, commit: commit, applied: applied,
                                lastIndex: last, revision: revision, voters: lists[0], learners: lists[1])
        status.storage = storage
        return status
    }
}

/// What `defragment` did: the node's `data.mdb` size before and after, and how long the node
/// was blocked.
public struct DefragResult: Sendable, Hashable {
    public var bytesBefore: Int64
    public var bytesAfter: Int64
    public var millis: Int64
    public init(bytesBefore: Int64, bytesAfter: Int64, millis: Int64) {
        (self.bytesBefore, self.bytesAfter, self.millis) = (bytesBefore, bytesAfter, millis)
    }

    public func encode() -> [UInt8] {
        var w = ByteWriter()
        w.u64(UInt64(bitPattern: bytesBefore))
        w.u64(UInt64(bitPattern: bytesAfter))
        w.u64(UInt64(bitPattern: millis))
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> DefragResult {
        var r = ByteReader(bytes)
        let result = DefragResult(bytesBefore: Int64(bitPattern: try r.u64("defrag bytes before")),
                                  bytesAfter: Int64(bitPattern: try r.u64("defrag bytes after")),
                                  millis: Int64(bitPattern: try r.u64("defrag millis")))
        try r.expectEnd()
        return result
    }
}
