import Crypto
import SynodCore
import SynodPBFT

/// Measures the authenticator's primitive rates on this machine (docs/PBFT.md records them).
/// Not a test: rates depend on the machine and the build configuration.
public enum CryptoBenchmark {
    public struct Rate: Sendable {
        public var name: String
        public var operations: Int
        public var seconds: Double
        public var perSecond: Double { Double(operations) / seconds }
    }

    /// Runs each primitive for about `secondsEach` seconds on one core.
    public static func run(secondsEach: Double = 1.0) -> [Rate] {
        let ids = (1...4).map { NodeID(UInt64($0)) }
        let auth = DeterministicKeys.authenticators(seed: 1, replicas: ids, clients: [])
        let a = auth[.replica(ids[0])]!, b = auth[.replica(ids[1])]!
        let small = [UInt8](repeating: 0xA5, count: 64)
        let large = [UInt8](repeating: 0x5A, count: 4096)
        let sig = a.sign(small)
        let mac = a.mac(small, to: .replica(ids[1]))
        var sink = 0
        var rates: [Rate] = []
        func measure(_ name: String, _ body: () -> Int) {
            let clock = ContinuousClock()
            var ops = 0
            let start = clock.now
            var elapsed = Duration.zero
            while elapsed < .milliseconds(Int(secondsEach * 1000)) {
                for _ in 0..<64 { sink &+= body() }
                ops += 64
                elapsed = clock.now - start
            }
            let s = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            rates.append(Rate(name: name, operations: ops, seconds: s))
        }
        measure("Ed25519 sign, 64 B") { a.sign(small).count }
        measure("Ed25519 verify, 64 B") { b.verifySignature(sig, of: small, by: .replica(ids[0])) ? 1 : 0 }
        measure("HMAC-SHA256 (keyed copy), 64 B") { a.mac(small, to: .replica(ids[1])).count }
        measure("HMAC-SHA256 verify, 64 B") { b.verifyMAC(mac, of: small, from: .replica(ids[0])) ? 1 : 0 }
        measure("HMAC-SHA256 re-keyed each time, 64 B") {
            var h = HMAC<SHA256>(key: SymmetricKey(data: small.prefix(32)))
            h.update(data: small)
            return Array(h.finalize()).count
        }
        measure("HMAC-SHA256 (keyed copy), 4 KiB") { a.mac(large, to: .replica(ids[1])).count }
        measure("SHA-256, 4 KiB") { a.digest(large).bytes.count }
        if sink == 42 { print("") } // keep the work observable
        return rates
    }
}
