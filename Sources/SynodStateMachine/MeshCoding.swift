import SynodCore

// Encodings of the mesh records (stored as KV values under `MeshKeys.prefix`), commands (inside
// a log entry's `CommandEnvelope`) and results (inside a client response). Every length and count
// is bounded before anything is allocated; bad bytes are a typed `DecodeError`.

extension ByteWriter {
    mutating func names(_ v: [String]) {
        count(v.count)
        for s in v { lengthPrefixed(Array(s.utf8)) }
    }

    mutating func optionalName(_ v: String?) {
        bool(v != nil)
        if let v { lengthPrefixed(Array(v.utf8)) }
    }

    mutating func permille(_ v: Int) { u32(UInt32(clamping: v)) }
}

extension ByteReader {
    /// A name in a record (within `MeshLimits.nameBytesMax`).
    mutating func name(_ what: String) throws(DecodeError) -> String {
        String(decoding: try lengthPrefixed(what, limit: MeshLimits.nameBytesMax), as: UTF8.self)
    }

    /// A name in a proposal: bounded loosely here and checked in full by `MeshValidation`, so an
    /// over-long name is an `invalidRequest` answer that says so, not a malformed command.
    mutating func proposedName(_ what: String) throws(DecodeError) -> String {
        String(decoding: try lengthPrefixed(what, limit: MeshLimits.proposalNameBytesMax), as: UTF8.self)
    }

    mutating func proposedNames(_ what: String) throws(DecodeError) -> [String] {
        let n = try count(what, limit: MeshLimits.proposalNamesMax, minBytesEach: 4)
        var out: [String] = []
        for _ in 0..<n { out.append(try proposedName(what)) }
        return out
    }

    /// A fraction in a proposal, range-checked by `MeshValidation`.
    mutating func proposedPermille(_ what: String) throws(DecodeError) -> Int { Int(try u32(what)) }

    mutating func names(_ what: String, limit: Int) throws(DecodeError) -> [String] {
        let n = try count(what, limit: limit, minBytesEach: 4)
        var out: [String] = []
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(try name(what)) }
        return out
    }

    mutating func optionalName(_ what: String) throws(DecodeError) -> String? {
        try bool(what) ? try name(what) : nil
    }

    mutating func permille(_ what: String) throws(DecodeError) -> Int {
        let v = try u32(what)
        guard v <= UInt32(MeshRules.one) else { throw .unknownValue(what: what, value: UInt64(v)) }
        return Int(v)
    }
}

extension MeshAgent {
    static let encodingVersion: UInt8 = 1

    public func encode() -> [UInt8] {
        var w = ByteWriter()
        w.u8(Self.encodingVersion)
        w.lengthPrefixed(Array(name.utf8))
        w.names(capabilities)
        w.permille(resources)
        w.permille(baseLoad)
        w.permille(performance)
        w.bool(failed)
        w.names(suspectedBy)
        w.u64(beats)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> MeshAgent {
        var r = ByteReader(bytes)
        try r.version("mesh agent version", expected: encodingVersion)
        let agent = MeshAgent(name: try r.name("agent name"), capabilities: try r.names("capabilities", limit: MeshLimits.capabilitiesMax),
                              resources: try r.permille("resources"), baseLoad: try r.permille("load"), performance: try r.permille("performance"),
                              failed: try r.bool("failed"), suspectedBy: try r.names("suspected by", limit: MeshLimits.agentsMax), beats: try r.u64("beats"))
        try r.expectEnd()
        return agent
    }
}

extension MeshTask {
    static let encodingVersion: UInt8 = 1

    public func encode() -> [UInt8] {
        var w = ByteWriter()
        w.u8(Self.encodingVersion)
        w.lengthPrefixed(Array(id.utf8))
        w.names(requires)
        w.permille(cost)
        w.u64(sequence)
        w.optionalName(agent)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> MeshTask {
        var r = ByteReader(bytes)
        try r.version("mesh task version", expected: encodingVersion)
        let task = MeshTask(id: try r.name("task id"), requires: try r.names("requires", limit: MeshLimits.capabilitiesMax),
                            cost: try r.permille("cost"), sequence: try r.u64("sequence"), agent: try r.optionalName("task agent"))
        try r.expectEnd()
        return task
    }
}

enum MeshCommandTag: UInt8 {
    case join = 1, report, suspect, leave, submit, complete, steal, rebalance
}

extension MeshCommand {
    func encode(into w: inout ByteWriter) {
        switch self {
        case let .join(agent, capabilities, resources):
            w.u8(MeshCommandTag.join.rawValue); w.lengthPrefixed(Array(agent.utf8)); w.names(capabilities); w.permille(resources)
        case let .report(agent, load, resources):
            w.u8(MeshCommandTag.report.rawValue); w.lengthPrefixed(Array(agent.utf8)); w.permille(load)
            w.bool(resources != nil)
            if let resources { w.permille(resources) }
        case let .suspect(agent, observer):
            w.u8(MeshCommandTag.suspect.rawValue); w.lengthPrefixed(Array(agent.utf8)); w.lengthPrefixed(Array(observer.utf8))
        case let .leave(agent):
            w.u8(MeshCommandTag.leave.rawValue); w.lengthPrefixed(Array(agent.utf8))
        case let .submit(task, requires, cost):
            w.u8(MeshCommandTag.submit.rawValue); w.lengthPrefixed(Array(task.utf8)); w.names(requires); w.permille(cost)
        case let .complete(task, agent):
            w.u8(MeshCommandTag.complete.rawValue); w.lengthPrefixed(Array(task.utf8)); w.lengthPrefixed(Array(agent.utf8))
        case let .steal(agent):
            w.u8(MeshCommandTag.steal.rawValue); w.lengthPrefixed(Array(agent.utf8))
        case .rebalance:
            w.u8(MeshCommandTag.rebalance.rawValue)
        }
    }

    static func decode(from r: inout ByteReader) throws(DecodeError) -> MeshCommand {
        let raw = try r.u8("mesh command tag")
        guard let tag = MeshCommandTag(rawValue: raw) else { throw .unknownValue(what: "mesh command tag", value: UInt64(raw)) }
        switch tag {
        case .join:
            return .join(agent: try r.proposedName("agent"), capabilities: try r.proposedNames("capabilities"), resources: try r.proposedPermille("resources"))
        case .report:
            let agent = try r.proposedName("agent")
            let load = try r.proposedPermille("load")
            return .report(agent: agent, load: load, resources: try r.bool("has resources") ? try r.proposedPermille("resources") : nil)
        case .suspect: return .suspect(agent: try r.proposedName("agent"), observer: try r.proposedName("observer"))
        case .leave: return .leave(agent: try r.proposedName("agent"))
        case .submit:
            return .submit(task: try r.proposedName("task"), requires: try r.proposedNames("requires"), cost: try r.proposedPermille("cost"))
        case .complete: return .complete(task: try r.proposedName("task"), agent: try r.proposedName("agent"))
        case .steal: return .steal(agent: try r.proposedName("agent"))
        case .rebalance: return .rebalance
        }
    }
}

extension MeshResult {
    func encode(into w: inout ByteWriter) {
        w.i64(revision)
        w.i64(version)
        w.count(moves.count)
        for m in moves {
            w.lengthPrefixed(Array(m.task.utf8))
            w.optionalName(m.from)
            w.optionalName(m.to)
        }
        w.names(failed)
    }

    static func decode(from r: inout ByteReader) throws(DecodeError) -> MeshResult {
        let revision = try r.i64("revision")
        let version = try r.i64("mesh version")
        let n = try r.count("mesh moves", limit: 2 * MeshLimits.tasksMax, minBytesEach: 6)
        var moves: [MeshMove] = []
        for _ in 0..<n { moves.append(MeshMove(task: try r.name("moved task"), from: try r.optionalName("from"), to: try r.optionalName("to"))) }
        return MeshResult(revision: revision, version: version, moves: moves, failed: try r.names("failed agents", limit: MeshLimits.agentsMax))
    }
}
