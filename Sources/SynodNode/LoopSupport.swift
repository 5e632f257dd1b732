import Foundation
import NIOCore

/// When the next core tick is due, on the system's uptime clock. Shared by the Raft and the BFT
/// node loops: both tick their core as wall time requires, catching up at most `burstMax` ticks
/// at once.
struct TickClock {
    let interval: Double
    private(set) var next: Double
    /// Most ticks delivered by one pass; a loop further behind (a long fsync, a paused
    /// process) skips the rest rather than firing a burst of timeouts. The skipped ticks are
    /// still counted (`Due.missed`): a Raft leader's lease must be measured against the time
    /// that really passed (`RaftCore.ticksMissed`).
    static let burstMax = 10

    /// What one pass owes the core: ticks to deliver, and ticks that passed but are skipped.
    struct Due: Equatable {
        var fire: Int
        var missed: Int
    }

    init(millis: Int, now: Double) {
        interval = Double(millis) / 1000
        next = now + interval
    }

    /// The ticks due at `now` (at most `burstMax` to fire, the rest missed); moves the clock
    /// past all of them, keeping its phase.
    mutating func due(at now: Double) -> Due {
        var fire = 0
        while now >= next && fire < Self.burstMax {
            next += interval
            fire += 1
        }
        var missed = 0
        if now >= next {
            missed = Int(((now - next) / interval).rounded(.down)) + 1
            next += interval * Double(missed)
        }
        return Due(fire: fire, missed: missed)
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
