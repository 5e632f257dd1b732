// synod-lmdb-bench: log append and range-read throughput of SynodLMDB beside raw LMDB puts of
// the same records, measured in the same run (alternating, median of rounds). Not a test:
// nothing here asserts a time. Results are recorded in docs/BENCHMARKS.md.
import CLMDB
import Foundation
import SynodCore
import SynodLMDB

struct Options {
    var rounds = 3
    var payloadBytes = 100
    var scale = 1.0
    var directory = NSTemporaryDirectory() + "synod-lmdb-bench-\(getpid())"

    init(_ args: [String]) {
        var i = 1
        func value() -> String {
            i += 1
            guard i < args.count else { fail("missing value for \(args[i - 1])") }
            return args[i]
        }
        while i < args.count {
            switch args[i] {
            case "--rounds": rounds = Int(value()) ?? { fail("--rounds takes a number") }()
            case "--scale": scale = Double(value()) ?? { fail("--scale takes a number") }()
            case "--dir": directory = value()
            case "-h", "--help":
                print("usage: synod-lmdb-bench [--rounds N] [--scale F] [--dir PATH]")
                exit(0)
            default: fail("unknown argument \(args[i]); try --help")
            }
            i += 1
        }
        guard (1...50).contains(rounds), scale > 0, scale <= 100 else { fail("--rounds must be 1...50 and --scale in (0, 100]") }
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    exit(2)
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

func check(_ rc: Int32, _ what: String) {
    if rc != 0 { fail("\(what): \(String(cString: mdb_strerror(rc)))") }
}

/// Raw LMDB: one synced write transaction per batch, `mdb_put` per record, through the C API.
func rawAppend(dir: String, batches: [[Entry]]) -> (seconds: Double, scanPerSecond: Double) {
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var env: OpaquePointer?
    check(mdb_env_create(&env), "mdb_env_create")
    defer { mdb_env_close(env) }
    check(mdb_env_set_mapsize(env, 4 << 30), "mapsize")
    check(mdb_env_set_maxdbs(env, 4), "maxdbs")
    check(mdb_env_open(env, dir, UInt32(MDB_NOTLS) | UInt32(MDB_NORDAHEAD), 0o644), "open")
    var dbi: MDB_dbi = 0
    var txn: OpaquePointer?
    check(mdb_txn_begin(env, nil, 0, &txn), "begin")
    check(mdb_dbi_open(txn, "raw", UInt32(MDB_CREATE), &dbi), "dbi")
    check(mdb_txn_commit(txn), "commit")
    // Pre-encode the same records the store writes: 8-byte big-endian key, encoded entry value.
    let records: [[([UInt8], [UInt8])]] = batches.map { batch in
        batch.map { e in
            var w = ByteWriter()
            e.encodeValue(into: &w)
            return (IndexKey.encode(e.index.rawValue), w.bytes)
        }
    }
    let start = now()
    for batch in records {
        check(mdb_txn_begin(env, nil, 0, &txn), "begin")
        for (key, value) in batch {
            key.withUnsafeBytes { k in
                value.withUnsafeBytes { v in
                    var kv = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
                    var vv = MDB_val(mv_size: v.count, mv_data: UnsafeMutableRawPointer(mutating: v.baseAddress))
                    check(mdb_put(txn, dbi, &kv, &vv, 0), "put")
                }
            }
        }
        check(mdb_txn_commit(txn), "commit")
    }
    let seconds = now() - start
    // Raw cursor scan, decoding nothing (the floor for range reads).
    let scanStart = now()
    var count = 0
    check(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn), "begin read")
    var cursor: OpaquePointer?
    check(mdb_cursor_open(txn, dbi, &cursor), "cursor")
    var k = MDB_val(), v = MDB_val()
    var rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST)
    var sink = 0
    while rc == 0 {
        count += 1
        sink &+= v.mv_size
        rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)
    }
    mdb_cursor_close(cursor)
    mdb_txn_abort(txn)
    let scan = Double(count) / (now() - scanStart)
    precondition(sink > 0)
    return (seconds, scan)
}

/// SynodLMDB: `LogStore.append` per batch (one synced transaction each), then range reads.
func storeAppend(dir: String, batches: [[Entry]]) -> (seconds: Double, readPerSecond: Double) {
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var options = LMDBOptions()
    options.mapSizeBytes = 4 << 30
    do {
        let store = try LMDBStore(directory: dir, options: options)
        let start = now()
        for batch in batches { try store.append(batch) }
        let seconds = now() - start
        let last = try store.lastIndex()
        let readStart = now()
        var index = LogIndex(1)
        var count = 0
        while index <= last {
            let got = try store.entries(from: index, upTo: min(last.next, index.advanced(by: 1000)), maxBytes: 4 << 20)
            count += got.count
            index = got.last!.index.next
        }
        return (seconds, Double(count) / (now() - readStart))
    } catch {
        fail("store: \(error)")
    }
}

let options = Options(CommandLine.arguments)
let payload = [UInt8](repeating: 0xAB, count: options.payloadBytes)
let plan: [(batch: Int, total: Int)] = [(1, 3000), (64, 64 * 400), (1024, 1024 * 200)].map {
    ($0.0, max($0.0, Int(Double($0.1) * options.scale) / $0.0 * $0.0))
}

var load = "unknown"
if let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) { load = String(text.split(separator: " ").prefix(3).joined(separator: " ")) }
print("synod-lmdb-bench: \(options.payloadBytes)-byte payloads, sync on, \(options.rounds) rounds (median), load before: \(load)")
print("batch    entries   raw LMDB puts/s   SynodLMDB appends/s   ratio   store reads/s   raw scan/s")
for (batchSize, total) in plan {
    let batches = stride(from: 1, through: total, by: batchSize).map { first in
        (first..<(first + batchSize)).map { Entry(index: LogIndex(UInt64($0)), term: Term(1), payload: payload) }
    }
    var raw: [Double] = [], store: [Double] = [], reads: [Double] = [], scans: [Double] = []
    for round in 0..<options.rounds {
        // Alternate which goes first so neither always gets the warmer cache.
        let rawFirst = round % 2 == 0
        if rawFirst { let r = rawAppend(dir: options.directory + "-raw", batches: batches); raw.append(Double(total) / r.seconds); scans.append(r.scanPerSecond) }
        let s = storeAppend(dir: options.directory + "-store", batches: batches)
        store.append(Double(total) / s.seconds)
        reads.append(s.readPerSecond)
        if !rawFirst { let r = rawAppend(dir: options.directory + "-raw", batches: batches); raw.append(Double(total) / r.seconds); scans.append(r.scanPerSecond) }
    }
    let ratio = median(store) / median(raw)
    print(String(format: "%5d %10d %17.0f %21.0f %7.2f %15.0f %12.0f", batchSize, total, median(raw), median(store), ratio, median(reads), median(scans)))
}
if let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) { load = String(text.split(separator: " ").prefix(3).joined(separator: " ")) }
print("load after: \(load)")
