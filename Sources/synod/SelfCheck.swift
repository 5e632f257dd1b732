import Foundation
import SynodCore
import SynodLMDB

/// The storage self-check behind `synod storage selfcheck` and `make run`.
enum SelfCheck {
    static let kv = StateTable("kv")

    static func payload(_ i: UInt64) -> [UInt8] { (0..<100).map { UInt8(truncatingIfNeeded: i &* 31 &+ UInt64($0)) } }

    static func run(directory: String, entries total: Int) throws -> [String] {
        var lines: [String] = []
        let started = Date()
        do {
            let store = try LMDBStore(directory: directory, tables: [kv])
            var next: UInt64 = 1
            while next <= UInt64(total) {
                let end = min(next + 1023, UInt64(total))
                let batch = (next...end).map { Entry(index: LogIndex($0), term: Term(1), payload: payload($0)) }
                try store.write(LogWrite(entries: batch, hardState: HardState(term: Term(1), vote: NodeID(1), commit: LogIndex(end))))
                next = end + 1
            }
            let elapsed = Date().timeIntervalSince(started)
            lines.append("appended \(total) entries in batches of 1024 (synced): \(Int(Double(total) / elapsed)) entries/s")
            let read = try store.entries(from: LogIndex(1), upTo: LogIndex(UInt64(min(total, 1000)) + 1), maxBytes: 1 << 30)
            guard read.allSatisfy({ $0.payload == payload($0.index.rawValue) }) else { throw StoreError.corrupt("read-back mismatch") }
            try store.apply(through: LogIndex(UInt64(total))) { w in
                for i in 0..<100 { try w.put(kv, Array("key\(i)".utf8), payload(UInt64(i))) }
            }
            var chunks: [SnapshotChunk] = []
            let manifest = try store.streamSnapshot(chunkBytesMax: 1024) { chunks.append($0) }
            try store.saveCheckpoint(Checkpoint(position: LogPosition(index: LogIndex(UInt64(total)), term: Term(1)), stateDigest: [], membership: .empty))
            try store.deletePrefix(through: LogIndex(UInt64(total / 2)))
            lines.append("snapshot: \(manifest.recordCount) records in \(manifest.chunkCount) chunks; compacted through \(total / 2)")
        }
        let reopened = try LMDBStore(directory: directory, tables: [kv])
        let first = try reopened.firstIndex(), last = try reopened.lastIndex()
        guard first == LogIndex(UInt64(total / 2) + 1), last == LogIndex(UInt64(total)) else {
            throw StoreError.corrupt("after reopen: first \(first) last \(last)")
        }
        lines.append("reopened: log \(first.rawValue)...\(last.rawValue), applied \(try reopened.appliedIndex().rawValue), hard state \(try reopened.hardState())")
        return lines
    }
}
