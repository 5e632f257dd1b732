import SynodCore

/// Hostile inputs for decoder tests, from a seeded generator (a failure replays).
public enum Fuzzing {
    /// `count` random byte strings of 0...`lengthMax` bytes.
    public static func randomInputs(count: Int, lengthMax: Int, _ rng: inout SeededRandom, _ body: ([UInt8]) -> Void) {
        for _ in 0..<count {
            let n = rng.int(in: 0...lengthMax)
            body((0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) })
        }
    }

    /// `count` mutations of the valid `samples`: each a random sample with 1–4 edits (a byte
    /// replaced, a tail cut off, a byte inserted, a byte set to 0xFF).
    public static func mutations(of samples: [[UInt8]], count: Int, _ rng: inout SeededRandom, _ body: ([UInt8]) -> Void) {
        for _ in 0..<count {
            var b = samples[rng.int(in: 0...(samples.count - 1))]
            for _ in 0...rng.int(in: 0...3) {
                switch rng.int(in: 0...3) {
                case 0 where !b.isEmpty: b[rng.int(in: 0...(b.count - 1))] = UInt8.random(in: 0...255, using: &rng)
                case 1 where !b.isEmpty: b.removeLast(rng.int(in: 1...b.count))
                case 2: b.insert(UInt8.random(in: 0...255, using: &rng), at: rng.int(in: 0...b.count))
                default: if !b.isEmpty { b[rng.int(in: 0...(b.count - 1))] = 0xFF }
                }
            }
            body(b)
        }
    }
}
