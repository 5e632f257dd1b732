import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A connected TCP socket to 127.0.0.1:`port` with a receive timeout (tests only), or nil.
func connectLoopback(port: Int, timeoutSeconds: Int) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard connected == 0 else {
        close(fd)
        return nil
    }
    return fd
}

/// Sends all of `bytes`; false on failure.
func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var sent = 0
    while sent < bytes.count {
        let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { return false }
        sent += n
    }
    return true
}

/// Opens a connection to 127.0.0.1:`port`, sends `bytes` (maybe nothing, or part of a request),
/// then sends nothing more and waits: the seconds until the server closed the connection, or
/// nil if it was still open after `timeoutSeconds` (tests only). Anything the server sends
/// before closing is ignored.
public func secondsUntilClosed(port: Int, sending bytes: [UInt8] = [], timeoutSeconds: Int) -> Double? {
    guard let fd = connectLoopback(port: port, timeoutSeconds: 1) else { return nil }
    defer { close(fd) }
    let start = Date()
    guard bytes.isEmpty || sendAll(fd, bytes) else { return nil }
    var chunk = [UInt8](repeating: 0, count: 4_096)
    while Date().timeIntervalSince(start) < Double(timeoutSeconds) {
        let n = recv(fd, &chunk, chunk.count, 0)
        if n == 0 { return Date().timeIntervalSince(start) }
        if n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR { return Date().timeIntervalSince(start) }
    }
    return nil
}

/// A raw connection to 127.0.0.1:`port` (tests only): send any bytes (several pipelined
/// requests, say), then read until some text has arrived.
public final class RawTCPConnection {
    private let fd: Int32
    private var received: [UInt8] = []

    public init?(port: Int) {
        guard let fd = connectLoopback(port: port, timeoutSeconds: 1) else { return nil }
        self.fd = fd
    }

    public func send(_ text: String) -> Bool { sendAll(fd, Array(text.utf8)) }

    /// Whether `text` has arrived (counting what came before) within `timeoutSeconds`; false if
    /// the server closed the connection first or the time ran out.
    public func waitFor(_ text: String, timeoutSeconds: Int) -> Bool {
        let start = Date()
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while Date().timeIntervalSince(start) < Double(timeoutSeconds) {
            if String(decoding: received, as: UTF8.self).contains(text) { return true }
            let n = recv(fd, &chunk, chunk.count, 0)
            if n == 0 { return false }
            if n > 0 { received += chunk[0..<n] }
        }
        return String(decoding: received, as: UTF8.self).contains(text)
    }

    deinit { close(fd) }
}

/// A blocking HTTP/1.0 GET of `path` on 127.0.0.1:`port` (tests only): the status code and the
/// body, or nil if nothing answered within `timeoutSeconds`.
public func httpGet(port: Int, path: String, timeoutSeconds: Int = 5) -> (status: Int, body: String)? {
    httpRequest(port: port, method: "GET", path: path, timeoutSeconds: timeoutSeconds)
}

/// A blocking HTTP/1.0 request (the server closes the connection after its answer) with `body`
/// (tests only): the status code and the body, or nil if nothing answered within `timeoutSeconds`.
public func httpRequest(port: Int, method: String, path: String, body: [UInt8] = [], timeoutSeconds: Int = 5) -> (status: Int, body: String)? {
    guard let fd = connectLoopback(port: port, timeoutSeconds: timeoutSeconds) else { return nil }
    defer { close(fd) }
    let head = "\(method) \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n"
    guard sendAll(fd, Array(head.utf8) + body) else { return nil }
    var response: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while response.count < 16 << 20 {
        let n = recv(fd, &chunk, chunk.count, 0)
        if n <= 0 { break }
        response += chunk[0..<n]
    }
    let text = String(decoding: response, as: UTF8.self)
    guard let statusLine = text.split(separator: "\r\n", maxSplits: 1).first,
          let code = statusLine.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return nil }
    let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
    return (code, body)
}

/// A streaming HTTP/1.0 answer read line by line (tests only): a POST whose answer keeps
/// coming, such as a watch.
public final class HTTPLineStream {
    private let fd: Int32
    private var isOpen = true
    private var buffer: [UInt8] = []
    private var headerSeen = false
    /// The status code, once the head arrived.
    public private(set) var status: Int?

    public init?(port: Int, path: String, body: [UInt8], timeoutSeconds: Int = 5) {
        guard let fd = connectLoopback(port: port, timeoutSeconds: timeoutSeconds) else { return nil }
        self.fd = fd
        let head = "POST \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n"
        guard sendAll(fd, Array(head.utf8) + body) else {
            _ = Glibc.close(fd)
            return nil
        }
    }

    /// The next line of the body (without its newline), or nil once the answer ended or
    /// nothing came within the timeout.
    public func nextLine() -> String? {
        while true {
            if !headerSeen, let end = find([13, 10, 13, 10]) {
                let head = String(decoding: buffer[..<end], as: UTF8.self)
                status = head.split(separator: " ").dropFirst().first.flatMap { Int($0) }
                buffer.removeFirst(end + 4)
                headerSeen = true
            }
            if headerSeen, let newline = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeFirst(newline + 1)
                return line
            }
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { return nil }
            buffer += chunk[0..<n]
        }
    }

    private func find(_ pattern: [UInt8]) -> Int? {
        guard buffer.count >= pattern.count else { return nil }
        for i in 0...(buffer.count - pattern.count) where buffer[i..<(i + pattern.count)].elementsEqual(pattern) { return i }
        return nil
    }

    /// Closes the connection (the server must notice and stop the stream).
    public func close() {
        guard isOpen else { return }
        isOpen = false
        _ = Glibc.close(fd)
    }

    deinit { close() }
}
