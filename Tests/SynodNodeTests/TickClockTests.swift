@testable import SynodNode
import Testing

@Suite("The node loop's tick clock")
struct TickClockTests {
    @Test("on time it fires every due tick and misses none")
    func onTime() {
        var clock = TickClock(millis: 10, now: 100)
        #expect(clock.due(at: 100.005) == TickClock.Due(fire: 0, missed: 0))
        #expect(clock.due(at: 100.031) == TickClock.Due(fire: 3, missed: 0))
        #expect(clock.due(at: 100.039) == TickClock.Due(fire: 0, missed: 0))
    }

    @Test("after a stall it fires a burst and reports the rest as missed, keeping its phase")
    func afterStall() {
        var clock = TickClock(millis: 10, now: 100)
        // 1.5 s frozen: 150 ticks due, 10 fired, 140 missed.
        let due = clock.due(at: 101.505)
        #expect(due == TickClock.Due(fire: TickClock.burstMax, missed: 150 - TickClock.burstMax))
        // The phase is kept: the next tick is at 101.510, not 10 ms after the stalled pass.
        #expect(clock.due(at: 101.509) == TickClock.Due(fire: 0, missed: 0))
        #expect(clock.due(at: 101.511) == TickClock.Due(fire: 1, missed: 0))
    }
}
