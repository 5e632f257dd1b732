import Foundation
import SynodCore
import SynodRaft
import SynodTransport
import SynodWire

/// Work handed to the node thread. Everything that touches the core goes through here.
enum NodeEvent {
    case raft(Message)
    case request(ClientRequest, ClientConnection)
    case peerClientAddress(NodeID, String)
    case connectionClosed(ClientConnection)
    /// A background snapshot build finished (see `NodeLoop.maybeSnapshot`).
    case snapshotBuilt(Result<(index: LogIndex, data: [UInt8]), any Error>)
    case stop
}

/// A bounded multi-producer queue drained by the node thread, which waits on it until the next
/// tick is due. Producers are NIO event loops; they never block (a full inbox drops peer
/// messages, which Raft retransmits, and refuses client requests with `busy`).
final class Inbox: @unchecked Sendable {
    private let condition = NSCondition()
    private var events: [NodeEvent] = []
    /// Upper bound on queued events.
    static let eventsMax = 200_000

    /// Queues `event`; false when the inbox is full.
    @discardableResult
    func put(_ event: NodeEvent) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard events.count < Self.eventsMax else { return false }
        events.append(event)
        if events.count == 1 { condition.signal() }
        return true
    }

    /// Queues `event` even when the inbox is full: for the node's own completions, which are
    /// few and must not be lost.
    func putAlways(_ event: NodeEvent) {
        condition.lock()
        defer { condition.unlock() }
        events.append(event)
        if events.count == 1 { condition.signal() }
    }

    /// Takes everything queued, waiting until `deadline` if nothing is.
    func take(until deadline: Date) -> [NodeEvent] {
        condition.lock()
        defer { condition.unlock() }
        if events.isEmpty { _ = condition.wait(until: deadline) }
        let out = events
        events.removeAll(keepingCapacity: true)
        return out
    }
}
