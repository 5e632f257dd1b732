import Foundation
import NIOCore
import SynodCore
import SynodRaft
import SynodTransport
import SynodWire

/// Work handed to the node loop. Everything that touches the core goes through here.
enum NodeEvent {
    case raft(Message)
    case request(ClientRequest, ClientConnection)
    /// A peer's hello: its client address and peer protocol version.
    case peerHello(PeerHello)
    case connectionClosed(ClientConnection)
    /// A background snapshot build finished (see `NodeLoop.maybeSnapshot`).
    case snapshotBuilt(Result<(index: LogIndex, data: [UInt8]), any Error>)
    /// BFT mode: one encoded pBFT envelope from a peer's link, or from a client connection.
    case pbftPeer([UInt8], NodeID)
    case pbftClient([UInt8], ClientConnection)
    case stop
}

/// A bounded multi-producer queue drained by the node's passes on its event loop. Producers are
/// NIO handlers (on that same loop, mostly) and the snapshot builder; they never block (a full
/// inbox drops peer messages, which Raft retransmits, and refuses client requests with `busy`).
///
/// The first event after a pass schedules the next pass with `execute`: from the loop's own
/// thread that only appends to its task queue, so every event the loop reads in one wake-up is
/// handled by one pass, with no thread hand-off and no timer.
final class Inbox: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [NodeEvent] = []
    private var passScheduled = false
    private var wakeAt: Double?
    private var loop: (any EventLoop)?
    private var pass: (@Sendable () -> Void)?
    /// Upper bound on queued events.
    static let eventsMax = 200_000

    /// Connects the inbox to the loop that drains it and the pass that does.
    func attach(_ loop: any EventLoop, pass: @escaping @Sendable () -> Void) {
        lock.lock()
        self.loop = loop
        self.pass = pass
        let pending = !events.isEmpty
        lock.unlock()
        if pending { schedule() }
    }

    /// Queues `event`; false when the inbox is full.
    @discardableResult
    func put(_ event: NodeEvent) -> Bool { append(event, bounded: true) }

    /// Queues `event` even when the inbox is full: for the node's own completions, which are
    /// few and must not be lost.
    func putAlways(_ event: NodeEvent) { _ = append(event, bounded: false) }

    private func append(_ event: NodeEvent, bounded: Bool) -> Bool {
        lock.lock()
        guard !bounded || events.count < Self.eventsMax else {
            lock.unlock()
            return false
        }
        events.append(event)
        lock.unlock()
        schedule()
        return true
    }

    /// Takes everything queued (called by the pass, on the loop).
    func takeAll() -> [NodeEvent] {
        lock.lock()
        defer { lock.unlock() }
        passScheduled = false
        let out = events
        events.removeAll(keepingCapacity: true)
        return out
    }

    /// Makes sure a pass runs no later than `uptime` (system uptime, seconds).
    func wake(at uptime: Double) {
        lock.lock()
        if let w = wakeAt, w <= uptime {
            lock.unlock()
            return
        }
        wakeAt = uptime
        let loop = self.loop
        lock.unlock()
        guard let loop else { return }
        let delay = max(0, uptime - ProcessInfo.processInfo.systemUptime)
        loop.scheduleTask(in: .microseconds(Int64(delay * 1_000_000))) { [self] in
            lock.lock()
            if wakeAt == uptime { wakeAt = nil }
            lock.unlock()
            schedule()
        }
    }

    private func schedule() {
        lock.lock()
        guard !passScheduled, let loop, let pass else {
            lock.unlock()
            return
        }
        passScheduled = true
        lock.unlock()
        loop.execute { pass() }
    }
}
