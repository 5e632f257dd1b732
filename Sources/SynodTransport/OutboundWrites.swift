import NIOCore

/// Encoded writes gathered during a pass and handed to NIO: written at once when the pass runs on
/// the channels' event loop (the node's own), else with one hop per event loop — each hop from a
/// foreign thread costs an eventfd write and a wake-up, so a pass that answers many connections
/// and feeds several peers pays it once, not per channel.
///
/// Invariant: writes to one channel leave in the order they were added.
public struct OutboundWrites {
    private var byLoop: [ObjectIdentifier: (loop: any EventLoop, writes: [(any Channel, ByteBuffer)])] = [:]
    /// Loops in the order first used, so flushing is deterministic.
    private var order: [ObjectIdentifier] = []

    public init() {}

    public var isEmpty: Bool { order.isEmpty }

    /// Queues `buffer` for `channel` (written and flushed when `flush()` runs).
    public mutating func add(_ buffer: ByteBuffer, to channel: any Channel) {
        let key = ObjectIdentifier(channel.eventLoop)
        if byLoop[key] == nil {
            byLoop[key] = (channel.eventLoop, [])
            order.append(key)
        }
        byLoop[key]!.writes.append((channel, buffer))
    }

    /// Hands everything queued to the event loops (one `execute` per loop) and empties the batch.
    public mutating func flush() {
        for key in order {
            let (loop, writes) = byLoop[key]!
            if loop.inEventLoop {
                // Already on the loop (the node's pass): write now. Deferring with `execute`
                // would hold a leader's appends until after its own fsync.
                Self.write(writes)
            } else {
                loop.execute { Self.write(writes) }
            }
        }
        byLoop.removeAll(keepingCapacity: true)
        order.removeAll(keepingCapacity: true)
    }

    /// Writes every buffer, then flushes each channel once (on the channels' loop).
    private static func write(_ writes: [(any Channel, ByteBuffer)]) {
        for (channel, buffer) in writes { channel.write(buffer, promise: nil) }
        for (channel, _) in writes { channel.flush() }
    }
}
