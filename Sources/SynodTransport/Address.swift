import SynodCore

/// A `host:port` pair, parsed with a clear error.
public struct HostPort: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port`; the port must be 1...65535.
    public init(parsing text: String) throws(AddressError) {
        guard let colon = text.lastIndex(of: ":") else { throw .missingPort(text) }
        let host = String(text[..<colon])
        guard !host.isEmpty else { throw .missingHost(text) }
        guard let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else { throw .badPort(text) }
        self.init(host: host, port: port)
    }

    public var description: String { "\(host):\(port)" }

    /// Whether the host means "every interface" (0.0.0.0, ::): fine to listen on, but no use
    /// to another machine as an address to reach this one.
    public var isWildcard: Bool { ["0.0.0.0", "::", "[::]", "*"].contains(host) }

    /// Parses `1=127.0.0.1:7101,2=127.0.0.1:7102`, sorted by id, refusing duplicates and id 0.
    public static func parsePeers(_ text: String) throws(AddressError) -> [(NodeID, HostPort)] {
        var out: [(NodeID, HostPort)] = []
        for part in text.split(separator: ",") {
            let pieces = part.split(separator: "=", maxSplits: 1)
            guard pieces.count == 2, let raw = UInt64(pieces[0]), raw > 0 else { throw .badPeer(String(part)) }
            let id = NodeID(raw)
            guard !out.contains(where: { $0.0 == id }) else { throw .duplicatePeer(String(part)) }
            out.append((id, try HostPort(parsing: String(pieces[1]))))
        }
        guard !out.isEmpty else { throw .badPeer(text) }
        return out.sorted { $0.0 < $1.0 }
    }
}

/// Why an address did not parse.
public enum AddressError: Error, Hashable, Sendable, CustomStringConvertible {
    case missingPort(String), missingHost(String), badPort(String), badPeer(String), duplicatePeer(String)
    public var description: String {
        switch self {
        case let .missingPort(t): return "'\(t)' has no port; write host:port, e.g. 127.0.0.1:7001"
        case let .missingHost(t): return "'\(t)' has no host; write host:port, e.g. 127.0.0.1:7001"
        case let .badPort(t): return "'\(t)' has no valid port (1-65535)"
        case let .badPeer(t): return "'\(t)' is not a peer; write ID=host:port with ID >= 1, e.g. 1=127.0.0.1:7101"
        case let .duplicatePeer(t): return "peer '\(t)' is listed twice"
        }
    }
}
