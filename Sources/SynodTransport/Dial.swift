import NIOCore
import NIOPosix

/// Outbound TCP connections that refuse to connect a socket to itself.
///
/// A dial to a local port nothing listens on can succeed against itself: when the kernel picks
/// that same port as the dialling socket's ephemeral source port, TCP's simultaneous open joins
/// the socket to itself. A peer or client that keeps redialling a stopped member on 127.0.0.1
/// will eventually do so (ports in the ephemeral range are picked at random), and then it holds
/// the member's port, so the member cannot bind it when it restarts. Go's `net.Dial` guards
/// against the same thing; so does this, for every dial in Synod.
public enum Dial {
    /// Connects `bootstrap` to `host:port`; a channel joined to itself is reset and reported as
    /// `DialError.selfConnected`, so callers treat it as one more failed attempt.
    ///
    /// Reset, not closed: an orderly close leaves the port in TIME_WAIT for a minute, and a
    /// TIME_WAIT socket that did not set SO_REUSEADDR still blocks the member's listener.
    /// SO_LINGER with a zero timeout makes close send a reset and free the port at once.
    public static func connect(_ bootstrap: ClientBootstrap, host: String, port: Int) -> EventLoopFuture<any Channel> {
        bootstrap.connect(host: host, port: port).flatMap { channel in
            guard isConnectedToItself(channel) else { return channel.eventLoop.makeSucceededFuture(channel) }
            let reset = (channel as? any SocketOptionProvider)?.setSoLinger(linger(l_onoff: 1, l_linger: 0)) ?? channel.eventLoop.makeSucceededVoidFuture()
            return reset.flatMap { channel.close() }.flatMapThrowing { throw DialError.selfConnected(host: host, port: port) }
        }
    }

    /// True when the channel's two ends are one socket address (a self-connected socket).
    public static func isConnectedToItself(_ channel: any Channel) -> Bool {
        guard let local = channel.localAddress, let remote = channel.remoteAddress else { return false }
        return local == remote
    }
}

/// Why a dial failed on Synod's side rather than the network's.
public enum DialError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The socket connected to itself (source and destination were the same address).
    case selfConnected(host: String, port: Int)
    public var description: String {
        switch self {
        case let .selfConnected(host, port): return "connecting to \(host):\(port) joined the socket to itself (nothing listens there)"
        }
    }
}
