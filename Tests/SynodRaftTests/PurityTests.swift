import Foundation
import Testing

/// DESIGN.md §1: the core is pure. Guard it: no I/O modules, no clocks, no global randomness.
@Suite struct PurityTests {
    static var sourceDirectory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/SynodRaft")
    }

    static func sources() throws -> [(String, String)] {
        let dir = sourceDirectory
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".swift") }.sorted()
        return try names.map { ($0, try String(contentsOf: dir.appendingPathComponent($0), encoding: .utf8)) }
    }

    @Test func synodRaftImportsNoIOModules() throws {
        let files = try Self.sources()
        #expect(files.count >= 5)
        let forbidden = ["NIO", "NIOCore", "NIOPosix", "Foundation", "CLMDB", "Glibc", "Dispatch", "Darwin"]
        for (name, text) in files {
            for line in text.split(separator: "\n") {
                let t = line.trimmingCharacters(in: .whitespaces)
                guard t.hasPrefix("import ") else { continue }
                let module = t.dropFirst("import ".count).trimmingCharacters(in: .whitespaces)
                #expect(!forbidden.contains(module), "\(name) imports \(module)")
            }
        }
    }

    @Test func synodRaftUsesNoClocksOrGlobalRandomness() throws {
        let banned = ["Date()", "Date.now", "DispatchTime", "clock_gettime", "ContinuousClock", "SuspendingClock", "UUID(",
                      "SystemRandomNumberGenerator", ".random()", "random(in:)", "arc4random"]
        for (name, text) in try Self.sources() {
            for b in banned { #expect(!text.contains(b), "\(name) contains \(b)") }
            // Randomness only through the injected generator.
            for line in text.split(separator: "\n") where line.contains(".random(in:") {
                #expect(line.contains("using:"), "\(name): \(line)")
            }
        }
    }
}
