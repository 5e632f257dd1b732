import Foundation
import SynodCore

/// Files that are named only once they are whole and on disk.
public enum DurableFile {
    /// Replaces (or creates) `path` with `bytes`: written to `path.part`, fsynced, renamed over
    /// `path`, and the directory fsynced. A crash or a full disk leaves the old file or the new
    /// one under `path`, never a part (at worst a stale `.part`, overwritten next time).
    /// Used by BFT replicas' promise record and `synod snapshot save`.
    public static func replace(_ path: String, with bytes: [UInt8], mode: mode_t = 0o644) throws(StoreError) {
        let part = path + ".part"
        let fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw failure("open", part) }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, bytes.count - written) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { let e = failure("write", part); close(fd); unlink(part); throw e }
            written += n
        }
        guard fsync(fd) == 0 else { let e = failure("fsync", part); close(fd); unlink(part); throw e }
        close(fd)
        guard rename(part, path) == 0 else { let e = failure("rename", part); unlink(part); throw e }
        let directory = (path as NSString).deletingLastPathComponent
        try syncDirectory(directory.isEmpty ? "." : directory)
    }

    /// Makes a rename or a new file in `directory` durable; an error is thrown, not ignored.
    public static func syncDirectory(_ directory: String) throws(StoreError) {
        let dfd = open(directory, O_RDONLY | O_CLOEXEC)
        guard dfd >= 0 else { throw failure("open", directory) }
        defer { close(dfd) }
        guard fsync(dfd) == 0 else { throw failure("fsync", directory) }
    }

    static func failure(_ operation: String, _ path: String) -> StoreError {
        .system(operation: operation, path: path, errno: errno, message: String(cString: strerror(errno)))
    }
}
