#if canImport(Glibc)
import Glibc
#endif

/// Finds free TCP ports on 127.0.0.1 by trying to bind them (tests, benchmarks, `synod dev`).
/// A port found free may be taken by someone else before it is used: callers retry on failure.
public enum LoopbackPorts {
    /// A base port with `count` consecutive free ports after it, outside the kernel's ephemeral
    /// range (`/proc/sys/net/ipv4/ip_local_port_range`), in 10000...65535.
    ///
    /// Outside, because a port in the ephemeral range can be taken while its member is stopped:
    /// any outgoing connection may get it as a source port (see `Dial` for the case where the
    /// dial to the stopped member itself does), and the member then cannot bind it on restart.
    public static func freeBase(count: Int) -> Int {
        var rng = SystemRandomNumberGenerator()
        let ranges = candidateBases(count: count, ephemeral: ephemeralRange())
        for _ in 0..<200 {
            guard let range = ranges.randomElement(using: &rng) else { break }
            let base = Int.random(in: range, using: &rng)
            if (0..<count).allSatisfy({ isFree(base + $0) }) { return base }
        }
        return 20_000
    }

    /// The ranges a base may come from: below and above `ephemeral`, within 10000...65535, each
    /// kept only when it holds at least 1,000 bases.
    public static func candidateBases(count: Int, ephemeral: ClosedRange<Int>) -> [ClosedRange<Int>] {
        let spans = [(10_000, ephemeral.lowerBound - count), (ephemeral.upperBound + 1, 65_536 - count)]
        let usable = spans.filter { $0.1 - $0.0 >= 1_000 }.map { $0.0...$0.1 }
        return usable.isEmpty ? [10_000...(65_536 - count)] : usable
    }

    /// The kernel's ephemeral port range; Linux's default when the file cannot be read.
    public static func ephemeralRange() -> ClosedRange<Int> {
        let fallback = 32_768...60_999
        let fd = open("/proc/sys/net/ipv4/ip_local_port_range", O_RDONLY)
        guard fd >= 0 else { return fallback }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 64)
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return fallback }
        let fields = String(decoding: bytes[0..<n], as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
        guard fields.count == 2, let low = Int(fields[0]), let high = Int(fields[1]), 1 <= low, low <= high, high <= 65_535 else { return fallback }
        return low...high
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
