import SynodCore

/// Static checks on a command, done before it writes anything, so a command either applies whole
/// or fails with no effect.
enum Validation {
    static func key(_ key: [UInt8]) throws(KVError) {
        if key.isEmpty { throw .emptyKey }
        if key.count > KVLimits.keyBytesMax { throw .keyTooLarge(bytes: key.count, limit: KVLimits.keyBytesMax) }
    }

    /// Range bounds may be empty (meaning "single key" or "to the end").
    static func bound(_ key: [UInt8]) throws(KVError) {
        if key.count > KVLimits.keyBytesMax { throw .keyTooLarge(bytes: key.count, limit: KVLimits.keyBytesMax) }
    }

    /// A key a plain put may write: not under `MeshKeys.prefix`, which mesh commands own.
    static func writableKey(_ key: [UInt8]) throws(KVError) {
        try self.key(key)
        if key.starts(with: MeshKeys.prefix) { throw .invalidRequest("keys under __synod/mesh/ are written by mesh commands only (synod mesh ...)") }
    }

    static func value(_ value: [UInt8]) throws(KVError) {
        if value.count > KVLimits.valueBytesMax { throw .valueTooLarge(bytes: value.count, limit: KVLimits.valueBytesMax) }
    }

    static func range(_ r: RangeRequest) throws(KVError) {
        try bound(r.key)
        try bound(r.rangeEnd)
        if r.key.isEmpty && r.rangeEnd != [0] { throw .emptyKey }
        if r.limit < 0 { throw .invalidRequest("negative range limit \(r.limit)") }
        // Every read passes here: no array, no allocation.
        if r.minModRevision < 0 || r.maxModRevision < 0 || r.minCreateRevision < 0 || r.maxCreateRevision < 0 {
            throw .invalidRequest("negative revision bound (min/max mod \(r.minModRevision)/\(r.maxModRevision), min/max create \(r.minCreateRevision)/\(r.maxCreateRevision))")
        }
    }

    static func op(_ op: TxnOp) throws(KVError) {
        switch op {
        case let .put(key, value, _, _): try writableKey(key); try self.value(value)
        case let .delete(key, _): try self.key(key)
        case let .deleteRange(from, to, _): try self.key(from); try bound(to)
        case let .range(r):
            try range(r)
            if let rev = r.revision, rev != 0 { throw .invalidRequest("a range inside a transaction reads the current revision") }
        }
    }

    static func txn(_ t: Txn) throws(KVError) {
        for n in [t.compares.count, t.success.count, t.failure.count] where n > KVLimits.txnOpsMax {
            throw .tooManyOps(count: n, limit: KVLimits.txnOpsMax)
        }
        for c in t.compares {
            try key(c.key)
            if case let .value(v) = c.target { try value(v) }
        }
        for o in t.success { try op(o) }
        for o in t.failure { try op(o) }
    }
}
