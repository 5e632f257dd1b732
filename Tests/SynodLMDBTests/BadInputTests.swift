import CLMDB
import Foundation
@testable import SynodLMDB
import SynodCore
import Testing

/// Opening something that is not a healthy Synod store gives a typed error, never a crash.
@Suite("Opening bad stores")
struct BadInputTests {
    @Test("a path that is a file")
    func pathIsAFile() throws {
        let file = scratchDirectory("file")
        _ = FileManager.default.createFile(atPath: file, contents: Data("hello".utf8))
        defer { removeDirectory(file) }
        #expect(throws: StoreError.notADirectory(path: file)) { try LMDBStore(directory: file) }
    }

    @Test("a directory whose data.mdb is garbage")
    func garbageFile() throws {
        let dir = scratchDirectory("garbage")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { removeDirectory(dir) }
        var rng = SeededRandom(seed: 9)
        let junk = (0..<65536).map { _ in UInt8.random(in: 0...255, using: &rng) }
        _ = FileManager.default.createFile(atPath: dir + "/data.mdb", contents: Data(junk))
        #expect { try LMDBStore(directory: dir) } throws: { e in
            guard case .notASynodStore = e as? StoreError else { return false }
            return true
        }
    }

    @Test("a truncated data.mdb")
    func truncatedFile() throws {
        let dir = scratchDirectory("trunc")
        defer { removeDirectory(dir) }
        do {
            let s = try LMDBStore(directory: dir)
            try s.append(entries(1...100))
        }
        let fh = try #require(FileHandle(forWritingAtPath: dir + "/data.mdb"))
        try fh.truncate(atOffset: 100)
        try fh.close()
        #expect(throws: StoreError.self) { try LMDBStore(directory: dir) }
    }

    @Test("an LMDB database written by other software")
    func foreignDatabase() throws {
        let dir = scratchDirectory("foreign")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { removeDirectory(dir) }
        do {
            let env = try LMDBEnvironment(directory: dir, options: LMDBOptions())
            try env.write { txn in
                let main = try env.openDatabase(nil, create: false, in: txn)
                try txn.put(main, Array("users".utf8), Array("alice".utf8))
            }
        }
        #expect { try LMDBStore(directory: dir) } throws: { e in
            guard case let .notASynodStore(_, reason) = e as? StoreError else { return false }
            return reason.contains("meta")
        }
    }

    @Test("inspecting a directory with no store does not create one")
    func noStore() throws {
        let dir = scratchDirectory("empty")
        defer { removeDirectory(dir) }
        #expect(throws: StoreError.noStore(path: dir)) { try LMDBStore(directory: dir, create: false) }
        #expect(!FileManager.default.fileExists(atPath: dir + "/data.mdb"))
    }

    @Test("a read-only directory")
    func readOnlyDirectory() throws {
        let dir = scratchDirectory("ro")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { chmod(dir, 0o755); removeDirectory(dir) }
        chmod(dir, 0o555)
        #expect(throws: StoreError.readOnly(path: dir)) { try LMDBStore(directory: dir) }
    }

    @Test("a store written by an incompatible format version")
    func incompatibleFormat() throws {
        let dir = scratchDirectory("format")
        defer { removeDirectory(dir) }
        do {
            let s = try LMDBStore(directory: dir)
            try s.environment.write { txn in try txn.put(s.meta, LMDBStore.MetaKey.format, Codec.u32(99)) }
        }
        #expect(throws: StoreError.incompatibleFormat(path: dir, found: 99, supported: LMDBStore.formatVersion)) {
            try LMDBStore(directory: dir)
        }
    }

    @Test("damaged metadata values decode to typed errors")
    func damagedMeta() throws {
        let dir = scratchDirectory("meta")
        defer { removeDirectory(dir) }
        let s = try LMDBStore(directory: dir)
        try s.append(entries(1...3))
        try s.environment.write { txn in
            try txn.put(s.meta, LMDBStore.MetaKey.hardState, [1, 2, 3])
            try txn.put(s.meta, LMDBStore.MetaKey.membership, [1, 0xFF, 0xFF, 0xFF, 0xFF])
            try txn.put(s.log, IndexKey.encode(2), [9, 9])
        }
        #expect { try s.hardState() } throws: { e in
            guard case .corrupt = e as? StoreError else { return false }
            return true
        }
        #expect(throws: StoreError.self) { try s.membership() }
        #expect(throws: StoreError.self) { try s.entries(from: LogIndex(1), upTo: LogIndex(4), maxBytes: .max) }
    }

    @Test("every error message names the path and what to do")
    func messages() {
        #expect(StoreError.readOnly(path: "/d").description.contains("/d"))
        #expect(StoreError.notADirectory(path: "/f").description.contains("directory"))
        #expect(StoreError.incompatibleFormat(path: "/d", found: 2, supported: 1).description.contains("format 2"))
    }
}

@Suite("Map growth")
struct MapGrowthTests {
    @Test("writes far larger than the initial map succeed by growing it")
    func growsOnMapFull() throws {
        let dir = scratchDirectory("grow")
        defer { removeDirectory(dir) }
        var options = LMDBOptions()
        options.mapSizeBytes = 1 << 20
        let s = try LMDBStore(directory: dir, tables: [kvTable], options: options)
        var next: UInt64 = 1
        for _ in 0..<20 {
            try s.append(entries(next...(next + 499), bytes: 400))
            next += 500
        }
        // One transaction bigger than the whole initial map.
        try s.append(entries(next...(next + 9999), bytes: 1000))
        try s.apply(through: LogIndex(1)) { w in for i in 0..<2000 { try w.put(kvTable, Array("k\(i)".utf8), Array(repeating: 1, count: 2000)) } }
        #expect(try s.lastIndex() == LogIndex(next + 9999))
        #expect(s.environment.mapGrowthCount > 0)
        #expect(s.environment.mapSizeBytes > 1 << 20)
        #expect(try s.entries(from: LogIndex(1), upTo: LogIndex(next + 10000), maxBytes: .max).count == Int(next + 9999))
    }

    @Test("growth stops at mapSizeBytesMax with a typed error")
    func boundedGrowth() throws {
        let dir = scratchDirectory("bounded")
        defer { removeDirectory(dir) }
        var options = LMDBOptions()
        options.mapSizeBytes = 1 << 20
        options.mapSizeBytesMax = 2 << 20
        let s = try LMDBStore(directory: dir, options: options)
        #expect { try s.append(entries(1...10000, bytes: 1000)) } throws: { e in
            guard case let .engine(_, code, _) = e as? StoreError else { return false }
            return code == MDB_MAP_FULL
        }
        #expect(try s.lastIndex() == .zero)
    }
}
