#if canImport(Glibc)
import Glibc
#endif

/// Finds free TCP ports on 127.0.0.1 by trying to bind them (tests, benchmarks, `synod dev`).
/// A port found free may be taken by someone else before it is used: callers retry on failure.
public enum LoopbackPorts {
    /// A base port with `count` consecutive free ports after it, in 20000...60000.
    public static func freeBase(count: Int) -> Int {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let base = Int.random(in: 20_000...60_000, using: &rng)
            if (0..<count).allSatisfy({ isFree(base + $0) }) { return base }
        }
        return 47_000
    }

    /// True when 127.0.0.1:`port` can be bound right now.
    public static func isFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
