import Foundation
import SynodCore

/// An exclusive lock on a Raft node's data directory, held from before the store opens until
/// the node has stopped.
///
/// LMDB lets several processes open one environment, so without this a second `synod serve`
/// on the same directory — a supervisor restarting a node whose old process still runs, two
/// containers given one volume — started, and two processes acted as one member, each from its
/// own memory: two votes in one term, promises made twice. (etcd locks its WAL files for the
/// same reason.) BFT replicas hold the same kind of lock on `BFT_LOCK`.
///
/// `flock` on `synod.lock` in the directory: released when the descriptor closes, so a crashed
/// process never leaves it held. The holder's pid is written into the file for the error a
/// second process gets.
final class DataDirectoryLock: @unchecked Sendable {
    static let fileName = "synod.lock"

    /// Confined to whoever releases it (the node's shutdown, or deinit on a failed start).
    private var fd: Int32

    private init(fd: Int32) { self.fd = fd }

    /// Takes the lock (creating the directory if missing), or throws `DataDirectoryInUse`.
    /// BFT replicas lock `BFTPromises.lockFile` instead (the name their directories had).
    static func acquire(_ directory: String, fileName: String = DataDirectoryLock.fileName) throws -> DataDirectoryLock {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/" + fileName
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError.system(operation: "open", path: path, errno: errno, message: String(cString: strerror(errno))) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = Self.holderPID(fd)
            close(fd)
            throw DataDirectoryInUse(directory: directory, pid: holder)
        }
        let pid = Array("\(getpid())\n".utf8)
        if ftruncate(fd, 0) == 0 { _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) } }
        return DataDirectoryLock(fd: fd)
    }

    /// The pid the holder wrote, if readable (best effort: only for the message).
    private static func holderPID(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 16)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        return Int32(String(decoding: buffer[..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Releases the lock (idempotent).
    func release() {
        guard fd >= 0 else { return }
        close(fd)
        fd = -1
    }

    deinit { release() }
}

/// Another process holds a node's data directory (`DataDirectoryLock`).
public struct DataDirectoryInUse: Error, CustomStringConvertible, Sendable {
    public let directory: String
    /// The process holding it, as it wrote itself into the lock file.
    public let pid: Int32?
    public var description: String {
        "data directory \(directory) is in use by another synod process\(pid.map { " (pid \($0))" } ?? ""); stop it first, or give this node its own --data"
    }
}
