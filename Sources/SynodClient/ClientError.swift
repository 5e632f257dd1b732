#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import SynodCore
import SynodStateMachine
import SynodWire

/// Why a client call failed. Each case says whether retrying can help.
public enum ClientError: Error, Hashable, Sendable, CustomStringConvertible {
    /// No endpoint answered within the deadline (all down, or wrong addresses).
    case unreachable(endpoints: String, lastError: String)
    /// The cluster answered but has no leader (no quorum) within the deadline.
    case noLeader
    /// A write's outcome is unknown after retries (it may or may not have been applied).
    case unknownOutcome(String)
    /// The node refused the request: bad arguments or a limit (retrying unchanged will not help).
    case rejected(status: ClientStatus, message: String)
    /// The state machine applied the command and answered with an error (e.g. compare failed, lease missing).
    case kv(KVError)
    /// The node's answer did not decode (version mismatch or a bug).
    case badResponse(String)
    /// The connection closed while the request was in flight.
    case connectionLost
    /// The cluster refused the client's user name or password (`ClientConfiguration.credentials`).
    case authenticationFailed(String)

    /// Whether trying again (elsewhere, later) can help: not for a refusal, a state-machine
    /// answer or wrong credentials.
    public var isRetryable: Bool {
        switch self {
        case .rejected, .kv, .authenticationFailed: return false
        default: return true
        }
    }

    public var description: String {
        switch self {
        case let .unreachable(endpoints, last): return "cannot reach the cluster at \(endpoints) (\(last)); is it running? check --endpoints"
        case .noLeader: return "the cluster has no leader (no quorum of nodes up?); retry when enough nodes are running"
        case let .unknownOutcome(why): return "outcome unknown: \(why)"
        case let .rejected(status, message): return "request refused (\(status)): \(message)"
        case let .kv(e): return "\(e)"
        case let .badResponse(why): return "bad response from the node: \(why)"
        case .connectionLost: return "connection lost"
        case let .authenticationFailed(why): return why
        }
    }
}

/// A short account of why a connection failed — "Connection refused (127.0.0.1:7001)" rather
/// than NIO's nested error dump. Other errors are described as they are.
public func describeConnectionFailure(_ error: any Error) -> String {
    if let e = error as? NIOConnectionError, let first = e.connectionErrors.first {
        return "\(describeConnectionFailure(first.error)) (\(e.host):\(e.port))"
    }
    if let e = error as? IOError { return String(cString: strerror(e.errnoCode)) }
    return "\(error)"
}
