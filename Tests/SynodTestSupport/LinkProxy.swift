import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A TCP relay on 127.0.0.1 for one peer link: node A dials node B through it, so the test can
/// partition the link without a firewall. A blocked direction holds its bytes and stops reading,
/// so the sender's socket buffers fill — what a partition does to a TCP stream (nothing is lost;
/// it arrives once healed, as retransmissions would). `stop()` closes everything.
///
/// Blocking threads, two per relayed connection: a test's handful of links needs no more.
public final class LinkProxy: @unchecked Sendable {
    public let listenPort: Int
    public let targetPort: Int
    private let lock = NSLock()
    private var blocked = (forward: false, backward: false)
    private var open: Set<Int32> = []
    private var stopped = false
    private var accepted = 0
    private let listener: Int32

    /// Connections relayed so far (a node re-dialling after a reset counts again).
    public var connectionsRelayed: Int { lock.lock(); defer { lock.unlock() }; return accepted }

    /// Listens on `listenPort` and relays every connection to `targetPort`.
    public init(listenPort: Int, targetPort: Int) throws {
        self.listenPort = listenPort
        self.targetPort = targetPort
        listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw ProxyError.socket(errno) }
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = Self.loopback(port: listenPort)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(listener, 16) == 0 else {
            let e = errno
            close(listener)
            throw ProxyError.bind(port: listenPort, errno: e)
        }
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    deinit { stop() }

    /// Blocks or heals each direction: `forward` is from the dialling node to the target,
    /// `backward` the replies on the same connections.
    public func setBlocked(forward: Bool, backward: Bool) {
        lock.lock()
        blocked = (forward, backward)
        lock.unlock()
    }

    /// Resets every connection relayed so far (both sides see it close, as after a RST or a
    /// crashed middlebox); the listener stays, so the nodes can dial again at once.
    public func resetConnections() {
        lock.lock()
        let fds = Array(open)
        lock.unlock()
        for fd in fds { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    /// Closes the listener and every relayed connection (blocked threads wake, exit and close
    /// their descriptors).
    public func stop() {
        lock.lock()
        let wasStopped = stopped
        stopped = true
        let fds = Array(open)
        lock.unlock()
        guard !wasStopped else { return }
        for fd in fds { shutdown(fd, Int32(SHUT_RDWR)) }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }

    private func isBlocked(forward: Bool) -> Bool {
        lock.lock(); defer { lock.unlock() }
        return forward ? blocked.forward : blocked.backward
    }

    private func acceptLoop() {
        while !isStopped {
            let client = accept(listener, nil, nil)
            guard client >= 0 else {
                if errno == EINTR { continue }
                return
            }
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = Self.loopback(port: targetPort)
            let connected = server >= 0 && withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            } == 0
            lock.lock()
            let keep = connected && !stopped
            if keep { open.insert(client); open.insert(server); accepted += 1 }
            lock.unlock()
            guard keep else {
                close(client)
                if server >= 0 { close(server) }
                continue
            }
            let pair = Pair(client, server)
            Thread.detachNewThread { [self] in pump(from: client, to: server, forward: true, pair: pair) }
            Thread.detachNewThread { [self] in pump(from: server, to: client, forward: false, pair: pair) }
        }
    }

    /// The two descriptors of one relayed connection, closed by whichever pump ends last (so
    /// no descriptor number is reused while the other pump may still touch it).
    private final class Pair: @unchecked Sendable {
        let fds: (Int32, Int32)
        var running = 2
        init(_ a: Int32, _ b: Int32) { fds = (a, b) }
    }

    /// Copies one direction until either side closes; then shuts both down, and the last of the
    /// pair's two pumps closes them.
    private func pump(from source: Int32, to destination: Int32, forward: Bool, pair: Pair) {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        relay: while true {
            let n = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            // Partitioned: hold these bytes (and read no more) until healed.
            while isBlocked(forward: forward) {
                if isStopped { break relay }
                usleep(2_000)
            }
            var sent = 0
            while sent < n {
                let m = buffer.withUnsafeBytes { send(destination, $0.baseAddress! + sent, n - sent, Int32(MSG_NOSIGNAL)) }
                if m < 0 && errno == EINTR { continue }
                guard m > 0 else { break relay }
                sent += m
            }
        }
        // The other direction's pump may be blocked in read: shutdown wakes it.
        shutdown(source, Int32(SHUT_RDWR))
        shutdown(destination, Int32(SHUT_RDWR))
        lock.lock()
        pair.running -= 1
        let last = pair.running == 0
        if last { open.remove(pair.fds.0); open.remove(pair.fds.1) }
        lock.unlock()
        if last { close(pair.fds.0); close(pair.fds.1) }
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = in_port_t(UInt16(port).bigEndian)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        return a
    }

    public enum ProxyError: Error {
        case socket(Int32)
        case bind(port: Int, errno: Int32)
    }
}
