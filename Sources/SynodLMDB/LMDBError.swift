import CLMDB
import SynodCore

/// An LMDB return code with `mdb_strerror`'s text and the operation that produced it.
public struct LMDBError: Error, Hashable, Sendable, CustomStringConvertible {
    public let code: Int32
    public let operation: String
    public let message: String

    public init(code: Int32, operation: String) {
        self.code = code
        self.operation = operation
        self.message = String(cString: mdb_strerror(code))
    }

    public var isMapFull: Bool { code == MDB_MAP_FULL }
    public var isMapResized: Bool { code == MDB_MAP_RESIZED }
    public var isNotFound: Bool { code == MDB_NOTFOUND }

    public var description: String { "\(operation): \(message) (\(code))" }

    /// Checks an LMDB return code.
    @inline(__always)
    static func check(_ rc: Int32, _ operation: @autoclosure () -> String) throws(LMDBError) {
        if rc != 0 { throw LMDBError(code: rc, operation: operation()) }
    }
}

extension StoreError {
    /// Maps an LMDB error to the store's typed error: corruption codes become `.corrupt`, the rest
    /// `.engine` with LMDB's own text.
    public init(_ e: LMDBError) {
        switch e.code {
        case MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_INVALID, MDB_BAD_DBI, MDB_INCOMPATIBLE:
            self = .corrupt("\(e.operation): \(e.message)")
        default:
            self = .engine(operation: e.operation, code: e.code, message: e.message)
        }
    }
}

extension StoreError {
    /// True when this wraps LMDB's MDB_MAP_FULL (the environment grows the map and retries).
    var isMapFull: Bool {
        if case let .engine(_, code, _) = self { return code == MDB_MAP_FULL }
        return false
    }
}
