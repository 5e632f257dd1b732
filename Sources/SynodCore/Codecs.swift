// Binary encodings of the shared types, used by the stores and (later) the wire protocol.
// Each format starts with a version byte so a future layout can be told apart.

extension Entry {
    public static let encodingVersion: UInt8 = 1

    /// Encodes everything except the index (which lives in the key or message header).
    public func encodeValue(into w: inout ByteWriter) {
        w.u8(Entry.encodingVersion)
        w.u8(kind.rawValue)
        w.u64(term.rawValue)
        w.raw(payload)
    }

    /// Writes the encoded value (see `encodeValue`) into exactly `sizeBytes` bytes at `buffer`.
    public func encodeValue(to buffer: UnsafeMutableRawBufferPointer) {
        precondition(buffer.count == sizeBytes, "entry value buffer size mismatch")
        buffer[0] = Entry.encodingVersion
        buffer[1] = kind.rawValue
        withUnsafeBytes(of: term.rawValue.bigEndian) { t in
            buffer.baseAddress!.advanced(by: 2).copyMemory(from: t.baseAddress!, byteCount: 8)
        }
        if !payload.isEmpty {
            payload.withUnsafeBytes { p in
                buffer.baseAddress!.advanced(by: Entry.headerBytes).copyMemory(from: p.baseAddress!, byteCount: p.count)
            }
        }
    }

    /// Decodes a value written by `encodeValue`, for the entry at `index`.
    public static func decodeValue(index: LogIndex, bytes: UnsafeRawBufferPointer) throws(DecodeError) -> Entry {
        guard bytes.count >= headerBytes else { throw .truncated(what: "entry header", needed: headerBytes - bytes.count) }
        guard bytes[0] == encodingVersion else { throw .unknownValue(what: "entry version", value: UInt64(bytes[0])) }
        guard let kind = EntryKind(rawValue: bytes[1]) else { throw .unknownValue(what: "entry kind", value: UInt64(bytes[1])) }
        var term: UInt64 = 0
        for i in 2..<10 { term = (term << 8) | UInt64(bytes[i]) }
        let payloadCount = bytes.count - headerBytes
        guard payloadCount <= Limits.entryPayloadBytesMax else {
            throw .lengthTooLarge(what: "entry payload", length: payloadCount, limit: Limits.entryPayloadBytesMax)
        }
        return Entry(index: index, term: Term(term), kind: kind, payload: Array(bytes[headerBytes...]))
    }

    public static func decodeValue(index: LogIndex, bytes: [UInt8]) throws(DecodeError) -> Entry {
        let result = bytes.withUnsafeBytes { p in
            Result { () throws(DecodeError) -> Entry in try decodeValue(index: index, bytes: p) }
        }
        return try result.get()
    }
}

extension HardState {
    public func encode() -> [UInt8] {
        var w = ByteWriter(capacity: 25)
        w.u8(1)
        w.u64(term.rawValue)
        w.u64(vote.rawValue)
        w.u64(commit.rawValue)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> HardState {
        var r = ByteReader(bytes)
        let version = try r.u8("hard state version")
        guard version == 1 else { throw .unknownValue(what: "hard state version", value: UInt64(version)) }
        let hs = HardState(term: Term(try r.u64("term")), vote: NodeID(try r.u64("vote")), commit: LogIndex(try r.u64("commit")))
        try r.expectEnd()
        return hs
    }
}

extension Membership {
    public func encode(into w: inout ByteWriter) {
        w.u8(1)
        w.ids(voters)
        w.ids(outgoingVoters)
        w.ids(learners)
    }

    public func encode() -> [UInt8] {
        var w = ByteWriter()
        encode(into: &w)
        return w.bytes
    }

    public static func decode(from r: inout ByteReader) throws(DecodeError) -> Membership {
        let version = try r.u8("membership version")
        guard version == 1 else { throw .unknownValue(what: "membership version", value: UInt64(version)) }
        let v = try r.ids("voters", limit: Limits.membersMax)
        let o = try r.ids("outgoing voters", limit: Limits.membersMax)
        let l = try r.ids("learners", limit: Limits.membersMax)
        do { return try Membership(voters: v, outgoingVoters: o, learners: l) } catch {
            throw .invalid("membership: \(error)")
        }
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> Membership {
        var r = ByteReader(bytes)
        let m = try decode(from: &r)
        try r.expectEnd()
        return m
    }
}

extension Checkpoint {
    public func encode() -> [UInt8] {
        var w = ByteWriter(capacity: 64 + stateDigest.count + proof.count)
        w.u8(1)
        w.u64(position.index.rawValue)
        w.u64(position.term.rawValue)
        w.lengthPrefixed(stateDigest)
        membership.encode(into: &w)
        w.lengthPrefixed(proof)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> Checkpoint {
        var r = ByteReader(bytes)
        let version = try r.u8("checkpoint version")
        guard version == 1 else { throw .unknownValue(what: "checkpoint version", value: UInt64(version)) }
        let index = LogIndex(try r.u64("checkpoint index"))
        let term = Term(try r.u64("checkpoint term"))
        let digest = try r.lengthPrefixed("state digest", limit: Limits.stateDigestBytesMax)
        let membership = try Membership.decode(from: &r)
        let proof = try r.lengthPrefixed("checkpoint proof", limit: Limits.checkpointProofBytesMax)
        try r.expectEnd()
        return Checkpoint(position: LogPosition(index: index, term: term), stateDigest: digest, membership: membership, proof: proof)
    }
}
