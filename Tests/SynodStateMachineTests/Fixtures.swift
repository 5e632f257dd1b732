import Foundation
import SynodCore
import SynodLMDB
@testable import SynodStateMachine
import Testing

/// Which store a test runs against; every test runs against both.
enum StoreKind: String, CaseIterable, CustomStringConvertible, Sendable {
    case memory, lmdb
    var description: String { rawValue }
}

func b(_ s: String) -> [UInt8] { Array(s.utf8) }

/// A state machine over a fresh store, feeding it entries with consecutive indexes.
final class Harness {
    let kind: StoreKind
    let directory: String?
    private(set) var store: (any StateStore)!
    private(set) var sm: KVStateMachine!
    private(set) var nextIndex: UInt64 = 1

    init(_ kind: StoreKind, options: LMDBOptions = LMDBOptions()) throws {
        self.kind = kind
        switch kind {
        case .memory:
            directory = nil
            store = MemoryStore(tables: KVStateMachine.tables)
        case .lmdb:
            let dir = NSTemporaryDirectory() + "synod-sm-test-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
            directory = dir
            store = try LMDBStore(directory: dir, tables: KVStateMachine.tables, options: options)
        }
        sm = try KVStateMachine(store: store)
    }

    deinit {
        sm = nil
        store = nil
        if let directory { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// Drops the state machine (and, for LMDB, closes and reopens the store) as a restart would.
    func restart() throws {
        sm = nil
        if let directory {
            store = nil
            store = try LMDBStore(directory: directory, tables: KVStateMachine.tables)
        }
        sm = try KVStateMachine(store: store)
    }

    func entry(_ command: Command, session: ClientSession? = nil) -> Entry {
        defer { nextIndex += 1 }
        return Entry(index: LogIndex(nextIndex), term: Term(1), kind: .command,
                     payload: CommandEnvelope(session: session, command: command).encode())
    }

    @discardableResult
    func run(_ command: Command, session: ClientSession? = nil) throws -> AppliedEntry {
        let applied = try sm.apply([entry(command, session: session)])
        try #require(applied.count == 1)
        return applied[0]
    }

    @discardableResult
    func put(_ key: String, _ value: String, lease: LeaseID? = nil, prevKV: Bool = false) throws -> Response {
        try run(.put(key: b(key), value: b(value), lease: lease, prevKV: prevKV)).response!
    }

    func get(_ key: String) throws -> KeyValue? {
        guard case let .range(r) = try sm.range(RangeRequest(key: b(key))) else { Issue.record("not a range"); return nil }
        return r.kvs.first
    }

    func rangeResult(_ request: RangeRequest) throws -> RangeResult {
        let resp = try sm.range(request)
        guard case let .range(r) = resp else { throw Unexpected(resp) }
        return r
    }
}

struct Unexpected: Error, CustomStringConvertible {
    let response: Response?
    init(_ r: Response?) { response = r }
    var description: String { "unexpected response \(String(describing: response))" }
}

extension Response {
    var put: PutResult? { if case let .put(p) = self { return p }; return nil }
    var delete: DeleteResult? { if case let .delete(d) = self { return d }; return nil }
    var txn: TxnResult? { if case let .txn(t) = self { return t }; return nil }
}

/// Streams the store's snapshot into one byte string (for byte-identical comparisons).
func snapshotBytes(_ store: any StateStore) throws -> (bytes: [UInt8], chunks: [SnapshotChunk]) {
    var chunks: [SnapshotChunk] = []
    _ = try store.streamSnapshot(chunkBytesMax: 4096) { chunks.append($0) }
    return (chunks.flatMap(\.records), chunks)
}
