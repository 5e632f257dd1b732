import Foundation
import SynodCore
import SynodPBFT

/// The one piece of a BFT replica's protocol state that outlives a restart: how far its votes
/// may have gone (the highest view and, plus one log window, the highest sequence number of any
/// PRE-PREPARE, PREPARE, COMMIT, VIEW-CHANGE or NEW-VIEW it sent). Raised and fsynced *before*
/// the messages that pass it are sent — rarely: once per log window of sequence numbers and once
/// per view — and read back at restart as the replica's `PBFTAmnesia`, so the restarted replica
/// cannot contradict a vote it forgot (docs/PBFT.md, "Recovery model").
///
/// File `BFT_PROMISES` in the data directory: "SYNODBFT" · u64 sequence · u64 view. The marker
/// file `BFT_REPLICA` says the directory belongs to a BFT replica (so a start never deletes a
/// directory it did not create).
enum BFTPromises {
    static let marker = "BFT_REPLICA"
    /// Locked (`DataDirectoryLock`) while a replica runs: a second replica started on the
    /// directory would empty the first one's working copy and vote with the same keys.
    static let lockFile = "BFT_LOCK"
    static let file = "BFT_PROMISES"
    static let magic = Array("SYNODBFT".utf8)

    /// Makes `directory` ready for a replica: creates it, or empties the working copy of a
    /// replica that ran there before (returning what it may have voted for). A directory holding
    /// anything else is refused, never emptied. The caller holds the directory's `lockFile`.
    static func prepareDirectory(_ directory: String) throws -> PBFTAmnesia? {
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let names = try fm.contentsOfDirectory(atPath: directory).filter { $0 != lockFile }
        if names.isEmpty {
            try write(sequence: .zero, view: .zero, in: directory)
            try Data().write(to: URL(fileURLWithPath: directory + "/" + marker))
            try DurableFile.syncDirectory(directory)
            return nil
        }
        guard names.contains(marker) else {
            throw ConfigurationError.invalid("\(directory) is not empty and not a BFT replica's directory; give an empty or new one")
        }
        for name in names where name == "data.mdb" || name == "lock.mdb" { try fm.removeItem(atPath: directory + "/" + name) }
        guard let (sequence, view) = read(in: directory) else {
            // Marker without a readable record: assume it may have voted on anything so far.
            return PBFTAmnesia(sequenceThrough: SequenceNumber(UInt64.max / 2), viewThrough: View(UInt64.max / 2))
        }
        return PBFTAmnesia(sequenceThrough: sequence, viewThrough: view)
    }

    static func read(in directory: String) -> (SequenceNumber, View)? {
        guard let data = FileManager.default.contents(atPath: directory + "/" + file) else { return nil }
        var r = ByteReader(Array(data))
        guard let m = try? r.raw(magic.count, "magic"), m == magic, let s = try? r.u64("sequence"), let v = try? r.u64("view"),
              (try? r.expectEnd()) != nil else { return nil }
        return (SequenceNumber(s), View(v))
    }

    /// Writes the record durably (`DurableFile.replace`): the caller sends votes only after this.
    static func write(sequence: SequenceNumber, view: View, in directory: String) throws {
        var w = ByteWriter(capacity: 24)
        w.raw(magic)
        w.u64(sequence.rawValue)
        w.u64(view.rawValue)
        try DurableFile.replace(directory + "/" + file, with: w.bytes, mode: 0o600)
    }
}
