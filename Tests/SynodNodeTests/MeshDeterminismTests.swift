import Foundation
import SynodTestSupport
import Testing

/// Mesh decisions must not depend on hash order. Swift seeds its hashing per process, so two
/// processes running the same random mesh workload must print the same digest.
@Suite("Mesh decisions across processes")
struct MeshDeterminismTests {
    func digest(_ environment: [String: String] = [:]) throws -> String {
        let (status, out, err) = try runSynod(["sim", "--mode", "mesh", "--seeds", "20", "--steps", "200"], environment: environment)
        #expect(status == 0, "\(err)")
        #expect(out.contains("20 runs, 0 violations"), "\(out)")
        return String(out.split(separator: " ").last ?? "")
    }

    @Test("the same seeds give the same digest in every process")
    func sameDigest() throws {
        let digests = try (0..<3).map { _ in try digest() }
        #expect(Set(digests).count == 1, "\(digests)")
    }

    @Test("the digest catches an injected bug: hash order picks which pending task is auctioned first")
    func injectedHashOrderCaught() throws {
        let digests = try (0..<4).map { _ in try digest(["SYNOD_TESTING_MESH_HASH_ORDER": "1"]) }
        #expect(Set(digests).count > 1, "four processes with the bug agreed: \(digests)")
    }
}
