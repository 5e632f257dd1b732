import SynodCore

/// The binary encoding of pBFT envelopes, for the network (the node's `.pbft` frames) and for
/// clients. Pure: bytes in, bytes out. Every count and length is checked against a named bound
/// and the remaining input before anything is allocated; any malformed input is a `DecodeError`,
/// never a trap (the fuzz tests in `PBFTCodecTests` hold it to that).
///
/// ```
/// u8 version (1) · principal from · principal to · u8 kind · body · lp mac
/// principal: u8 (1 replica, 2 client) · u64 id          lp: u32 length · bytes
/// ```
/// Bodies follow each message's fields in declaration order (see `encode(_:into:)`).
public enum PBFTCodec {
    public static let version: UInt8 = 1
    /// Most requests one pre-prepare may carry on the wire.
    public static let requestsPerBatchMax = 4096
    /// Most checkpoint messages in one proof (2f+1 of at most `replicasMax`).
    public static let proofMessagesMax = 256
    /// Most prepared certificates in one VIEW-CHANGE (one per sequence number of the window).
    public static let certificatesMax = 65_536
    /// Most view changes or pre-prepares in one NEW-VIEW.
    public static let newViewPartsMax = 65_536
    /// Most bytes of one reply's result.
    public static let resultBytesMax = 4 << 20

    /// The envelope's bytes.
    public static func encode(_ env: PBFTEnvelope) -> [UInt8] {
        var w = ByteWriter(capacity: 128)
        w.u8(version)
        principal(env.from, &w)
        principal(env.to, &w)
        encode(env.message, into: &w)
        w.lengthPrefixed(env.mac)
        return w.bytes
    }

    /// Decodes `encode`'s output; anything else is a typed error.
    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> PBFTEnvelope {
        var r = ByteReader(bytes)
        let v = try r.u8("pbft version")
        guard v == version else { throw .unknownValue(what: "pbft version", value: UInt64(v)) }
        let from = try principal(&r)
        let to = try principal(&r)
        let message = try decodeMessage(&r)
        let mac = try r.lengthPrefixed("mac", limit: PBFTLimits.authenticatorBytesMax)
        try r.expectEnd()
        return PBFTEnvelope(from: from, to: to, message: message, mac: mac)
    }

    // MARK: messages

    public static func encode(_ m: PBFTMessage, into w: inout ByteWriter) {
        switch m {
        case let .request(x): w.u8(1); request(x, &w)
        case let .prePrepare(x): w.u8(2); prePrepare(x, &w)
        case let .prepare(x): w.u8(3); prepare(x, &w)
        case let .commit(x):
            w.u8(4); w.u64(x.view.rawValue); w.u64(x.sequence.rawValue); w.lengthPrefixed(x.digest.bytes); w.u64(x.replica.rawValue)
        case let .checkpoint(x): w.u8(5); checkpoint(x, &w)
        case let .viewChange(x): w.u8(6); viewChange(x, &w)
        case let .newView(x):
            w.u8(7); w.u64(x.view.rawValue)
            w.u32(UInt32(x.viewChanges.count)); for v in x.viewChanges { viewChange(v, &w) }
            w.u32(UInt32(x.prePrepares.count)); for p in x.prePrepares { prePrepare(p, &w) }
            w.u64(x.primary.rawValue); w.lengthPrefixed(x.signature)
        case let .reply(x):
            w.u8(8); w.u64(x.view.rawValue); w.u64(x.timestamp); w.u64(x.client.rawValue); w.u64(x.replica.rawValue)
            w.u8(x.readOnly ? 1 : 0); w.lengthPrefixed(x.result)
        case let .fetchState(x): w.u8(9); w.u64(x.sequence.rawValue); w.u64(x.replica.rawValue)
        case let .stateTransfer(x): w.u8(10); w.u64(x.sequence.rawValue); w.lengthPrefixed(x.state); w.u64(x.replica.rawValue)
        case let .status(x):
            w.u8(11); w.u64(x.view.rawValue); w.u8(x.viewActive ? 1 : 0); w.u64(x.lowWatermark.rawValue)
            w.u64(x.lastExecuted.rawValue); w.u64(x.replica.rawValue)
        }
    }

    public static func decodeMessage(_ r: inout ByteReader) throws(DecodeError) -> PBFTMessage {
        let kind = try r.u8("pbft message kind")
        switch kind {
        case 1: return .request(try request(&r))
        case 2: return .prePrepare(try prePrepare(&r))
        case 3: return .prepare(try prepare(&r))
        case 4:
            return .commit(Commit(view: View(try r.u64("view")), sequence: SequenceNumber(try r.u64("sequence")),
                                  digest: try digest(&r), replica: NodeID(try r.u64("replica"))))
        case 5: return .checkpoint(try checkpoint(&r))
        case 6: return .viewChange(try viewChange(&r))
        case 7:
            let view = View(try r.u64("view"))
            let vcs = try list(&r, "view changes", max: newViewPartsMax) { (r: inout ByteReader) throws(DecodeError) in try viewChange(&r) }
            let pps = try list(&r, "pre-prepares", max: newViewPartsMax) { (r: inout ByteReader) throws(DecodeError) in try prePrepare(&r) }
            var m = NewView(view: view, viewChanges: vcs, prePrepares: pps, primary: NodeID(try r.u64("primary")))
            m.signature = try signature(&r)
            return .newView(m)
        case 8:
            let view = View(try r.u64("view"))
            let ts = try r.u64("timestamp")
            let client = ClientID(try r.u64("client"))
            let replica = NodeID(try r.u64("replica"))
            let ro = try flag(&r, "read-only")
            let result = try r.lengthPrefixed("result", limit: resultBytesMax)
            return .reply(Reply(view: view, timestamp: ts, client: client, replica: replica, result: result, readOnly: ro))
        case 9: return .fetchState(FetchState(sequence: SequenceNumber(try r.u64("sequence")), replica: NodeID(try r.u64("replica"))))
        case 10:
            let seq = SequenceNumber(try r.u64("sequence"))
            let state = try r.lengthPrefixed("state", limit: PBFTLimits.stateBytesMax)
            return .stateTransfer(StateTransfer(sequence: seq, state: state, replica: NodeID(try r.u64("replica"))))
        case 11:
            return .status(Status(view: View(try r.u64("view")), viewActive: try flag(&r, "view active"),
                                  lowWatermark: SequenceNumber(try r.u64("low watermark")),
                                  lastExecuted: SequenceNumber(try r.u64("last executed")), replica: NodeID(try r.u64("replica"))))
        default:
            throw .unknownValue(what: "pbft message kind", value: UInt64(kind))
        }
    }

    // MARK: parts

    /// A principal: u8 kind (1 replica, 2 client), u64 id. Also the key files' encoding.
    public static func principal(_ p: Principal, _ w: inout ByteWriter) {
        switch p {
        case let .replica(id): w.u8(1); w.u64(id.rawValue)
        case let .client(id): w.u8(2); w.u64(id.rawValue)
        }
    }

    public static func principal(_ r: inout ByteReader) throws(DecodeError) -> Principal {
        let tag = try r.u8("principal kind")
        let id = try r.u64("principal id")
        switch tag {
        case 1: return .replica(NodeID(id))
        case 2: return .client(ClientID(id))
        default: throw .unknownValue(what: "principal kind", value: UInt64(tag))
        }
    }

    static func request(_ x: Request, _ w: inout ByteWriter) {
        w.u64(x.client.rawValue); w.u64(x.timestamp); w.u8(x.readOnly ? 1 : 0)
        w.lengthPrefixed(x.operation); w.lengthPrefixed(x.signature)
    }

    static func request(_ r: inout ByteReader) throws(DecodeError) -> Request {
        let client = ClientID(try r.u64("client"))
        let ts = try r.u64("timestamp")
        let ro = try flag(&r, "read-only")
        let op = try r.lengthPrefixed("operation", limit: PBFTLimits.operationBytesMax)
        return Request(client: client, timestamp: ts, operation: op, readOnly: ro, signature: try signature(&r))
    }

    static func prePrepare(_ x: PrePrepare, _ w: inout ByteWriter) {
        w.u64(x.view.rawValue); w.u64(x.sequence.rawValue); w.lengthPrefixed(x.digest.bytes)
        w.u32(UInt32(x.requests.count)); for q in x.requests { request(q, &w) }
        w.u64(x.primary.rawValue); w.lengthPrefixed(x.signature)
    }

    static func prePrepare(_ r: inout ByteReader) throws(DecodeError) -> PrePrepare {
        let view = View(try r.u64("view"))
        let seq = SequenceNumber(try r.u64("sequence"))
        let d = try digest(&r)
        let requests = try list(&r, "requests", max: requestsPerBatchMax) { (r: inout ByteReader) throws(DecodeError) in try request(&r) }
        var m = PrePrepare(view: view, sequence: seq, digest: d, requests: requests, primary: NodeID(try r.u64("primary")))
        m.signature = try signature(&r)
        return m
    }

    static func prepare(_ x: Prepare, _ w: inout ByteWriter) {
        w.u64(x.view.rawValue); w.u64(x.sequence.rawValue); w.lengthPrefixed(x.digest.bytes); w.u64(x.replica.rawValue)
        w.lengthPrefixed(x.signature)
    }

    static func prepare(_ r: inout ByteReader) throws(DecodeError) -> Prepare {
        var m = Prepare(view: View(try r.u64("view")), sequence: SequenceNumber(try r.u64("sequence")),
                        digest: try digest(&r), replica: NodeID(try r.u64("replica")))
        m.signature = try signature(&r)
        return m
    }

    static func checkpoint(_ x: CheckpointMessage, _ w: inout ByteWriter) {
        w.u64(x.sequence.rawValue); w.lengthPrefixed(x.stateDigest.bytes); w.u64(x.replica.rawValue); w.lengthPrefixed(x.signature)
    }

    static func checkpoint(_ r: inout ByteReader) throws(DecodeError) -> CheckpointMessage {
        var m = CheckpointMessage(sequence: SequenceNumber(try r.u64("sequence")), stateDigest: try digest(&r), replica: NodeID(try r.u64("replica")))
        m.signature = try signature(&r)
        return m
    }

    static func viewChange(_ x: ViewChange, _ w: inout ByteWriter) {
        w.u64(x.newView.rawValue); w.u64(x.stableSequence.rawValue)
        w.u32(UInt32(x.checkpointProof.count)); for c in x.checkpointProof { checkpoint(c, &w) }
        w.u32(UInt32(x.prepared.count))
        for p in x.prepared {
            prePrepare(p.prePrepare, &w)
            w.u32(UInt32(p.prepares.count)); for q in p.prepares { prepare(q, &w) }
        }
        w.u64(x.replica.rawValue); w.lengthPrefixed(x.signature)
    }

    static func viewChange(_ r: inout ByteReader) throws(DecodeError) -> ViewChange {
        let newView = View(try r.u64("new view"))
        let stable = SequenceNumber(try r.u64("stable sequence"))
        let proof = try list(&r, "checkpoint proof", max: proofMessagesMax) { (r: inout ByteReader) throws(DecodeError) in try checkpoint(&r) }
        let prepared = try list(&r, "prepared certificates", max: certificatesMax) { (r: inout ByteReader) throws(DecodeError) -> PreparedCertificate in
            let pp = try prePrepare(&r)
            let prepares = try list(&r, "prepares", max: proofMessagesMax) { (r: inout ByteReader) throws(DecodeError) in try prepare(&r) }
            return PreparedCertificate(prePrepare: pp, prepares: prepares)
        }
        var m = ViewChange(newView: newView, stableSequence: stable, checkpointProof: proof, prepared: prepared, replica: NodeID(try r.u64("replica")))
        m.signature = try signature(&r)
        return m
    }

    static func digest(_ r: inout ByteReader) throws(DecodeError) -> Digest {
        Digest(try r.lengthPrefixed("digest", limit: Digest.bytesMax))
    }

    static func signature(_ r: inout ByteReader) throws(DecodeError) -> [UInt8] {
        try r.lengthPrefixed("signature", limit: PBFTLimits.authenticatorBytesMax)
    }

    static func flag(_ r: inout ByteReader, _ what: String) throws(DecodeError) -> Bool {
        let b = try r.u8(what)
        guard b <= 1 else { throw .unknownValue(what: what, value: UInt64(b)) }
        return b == 1
    }

    /// A u32 count, bounded by `max`, then that many elements. Elements are decoded one by one
    /// (nothing is reserved from the count), so a lying count fails at the first missing byte.
    static func list<T>(_ r: inout ByteReader, _ what: String, max: Int,
                        _ element: (inout ByteReader) throws(DecodeError) -> T) throws(DecodeError) -> [T] {
        let count = Int(try r.u32("\(what) count"))
        guard count <= max else { throw .lengthTooLarge(what: what, length: count, limit: max) }
        var out: [T] = []
        for _ in 0..<count { out.append(try element(&r)) }
        return out
    }
}
