import Foundation
import SynodCore
import SynodLMDB

/// Which implementation a conformance test runs against.
enum StoreKind: String, CaseIterable, CustomStringConvertible, Sendable {
    case memory, lmdb
    var description: String { rawValue }
}

let kvTable = StateTable("kv")
let leaseTable = StateTable("leases")

/// A fresh scratch directory under /tmp, removed by `cleanup`.
func scratchDirectory(_ label: String = "t") -> String {
    let dir = NSTemporaryDirectory() + "synod-test-\(label)-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
    return dir
}

func removeDirectory(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}

/// One store under test; `close` removes any files it made.
final class StoreUnderTest {
    let kind: StoreKind
    let directory: String?
    private(set) var store: (any LogStore & CheckpointStore & StateStore)?

    init(_ kind: StoreKind, tables: [StateTable] = [kvTable, leaseTable], options: LMDBOptions = LMDBOptions()) throws {
        self.kind = kind
        switch kind {
        case .memory:
            directory = nil
            store = MemoryStore(tables: tables)
        case .lmdb:
            let dir = scratchDirectory("conf")
            directory = dir
            store = try LMDBStore(directory: dir, tables: tables, options: options)
        }
    }

    var s: any LogStore & CheckpointStore & StateStore { store! }

    deinit {
        store = nil
        if let directory { removeDirectory(directory) }
    }
}

func entry(_ i: UInt64, term: UInt64 = 1, bytes: Int = 16) -> Entry {
    Entry(index: LogIndex(i), term: Term(term), payload: (0..<bytes).map { UInt8(truncatingIfNeeded: Int(i) &+ $0) })
}

func entries(_ range: ClosedRange<UInt64>, term: UInt64 = 1, bytes: Int = 16) -> [Entry] {
    range.map { entry($0, term: term, bytes: bytes) }
}
