import Foundation
import NIOCore

/// When the next core tick is due, on the system's uptime clock. Shared by the Raft and the BFT
/// node loops: both tick their core as wall time requires, catching up at most `burstMax` ticks
/// at once.
struct TickClock {
    let interval: Double
    private(set) var next: Double
    /// Most ticks delivered by one pass; a loop further behind (a long fsync) skips the rest
    /// rather than firing a burst of timeouts.
    static let burstMax = 10

    init(millis: Int, now: Double) {
        interval = Double(millis) / 1000
        next = now + interval
    }

    /// How many ticks are due at `now` (at most `burstMax`); moves the clock past them.
    mutating func due(at now: Double) -> Int {
        var n = 0
        while now >= next && n < Self.burstMax {
            next += interval
            n += 1
        }
        if now >= next { next = now + interval }
        return n
    }
}

/// Set once by a node loop when it has stopped; `wait` blocks until then. Lets `shutdown` finish
/// the loop's current pass before closing sockets and event loops.
final class StopLatch: @unchecked Sendable {
    private let condition = NSCondition()
    private var stopped = false

    func signal() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    func wait() {
        condition.lock()
        while !stopped { condition.wait() }
        condition.unlock()
    }
}

extension Inbox {
    /// Runs `pass` on `eventLoop` after each batch of events and at least every tick; returns the
    /// repeated tick task (cancelled when the loop stops).
    func drive(_ eventLoop: any EventLoop, tickMillis: Int, pass: @escaping @Sendable () -> Void) -> RepeatedTask {
        attach(eventLoop, pass: pass)
        return eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(Int64(tickMillis)), delay: .milliseconds(Int64(tickMillis))) { _ in pass() }
    }
}
