/// Typed errors from every store implementation (LMDB and in-memory alike).
public enum StoreError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The requested index is at or below the compacted prefix.
    case compacted(requested: LogIndex, firstAvailable: LogIndex)
    /// The requested index is past the end of the log.
    case unavailable(requested: LogIndex, lastIndex: LogIndex)
    /// An append did not continue the log: it started at `got`, the log expects `expected`.
    case nonContiguous(expected: LogIndex, got: LogIndex)
    /// A caller passed something the store cannot accept (explained in the text).
    case invalidArgument(String)
    /// Bytes read from the store did not decode: the file is damaged or was written by other software.
    case corrupt(String)
    /// The data path exists but is not a directory.
    case notADirectory(path: String)
    /// The data directory (or the file system) does not allow writing.
    case readOnly(path: String)
    /// The store was written by a format version this build does not read.
    case incompatibleFormat(path: String, found: UInt32, supported: UInt32)
    /// The path holds a database that is not a Synod store (or is not a database at all).
    case notASynodStore(path: String, reason: String)
    /// `path` holds no store and the caller asked not to create one.
    case noStore(path: String)
    /// The operating system refused an operation (`errno` and its text).
    case system(operation: String, path: String, errno: Int32, message: String)
    /// The storage engine reported an error (LMDB's code and `mdb_strerror` text).
    case engine(operation: String, code: Int32, message: String)

    public var description: String {
        switch self {
        case let .compacted(requested, first):
            return "log index \(requested.rawValue) was compacted; the first available index is \(first.rawValue)"
        case let .unavailable(requested, last):
            return "log index \(requested.rawValue) is past the last index \(last.rawValue)"
        case let .nonContiguous(expected, got):
            return "append must continue the log at index \(expected.rawValue), got \(got.rawValue)"
        case let .invalidArgument(why): return "invalid argument: \(why)"
        case let .corrupt(why): return "store is corrupt: \(why)"
        case let .notADirectory(path):
            return "\(path) is a file, not a directory; pass the directory that holds (or will hold) the store"
        case let .readOnly(path):
            return "\(path) is read-only; make it writable (chmod u+w) or choose another --data directory"
        case let .incompatibleFormat(path, found, supported):
            return "\(path) was written by store format \(found); this build reads format \(supported). Use a matching synod version or a new --data directory"
        case let .notASynodStore(path, reason):
            return "\(path) does not hold a Synod store (\(reason)); choose an empty directory or a Synod data directory"
        case let .noStore(path):
            return "\(path) holds no Synod store (no data.mdb); check the --data path, or start a node there to create one"
        case let .system(operation, path, errno, message):
            return "\(operation) \(path) failed: \(message) (errno \(errno))"
        case let .engine(operation, code, message):
            return "LMDB \(operation) failed: \(message) (code \(code))"
        }
    }
}
