import Glibc
import Testing

/// The pure targets must not import I/O modules or read clocks or global randomness
/// (DESIGN.md §1). This reads their sources, so it fails the moment someone adds one.
@Suite("Purity of the deterministic targets")
struct PurityTests {
    static let pureTargets = ["SynodCore", "SynodRaft", "SynodSimulation", "SynodStateMachine", "SynodPBFT"]
    static let forbiddenImports = ["Foundation", "FoundationEssentials", "NIO", "NIOCore", "NIOPosix", "CLMDB", "SynodLMDB", "Glibc", "Musl", "Darwin", "Dispatch"]
    static let forbiddenCalls = ["Date()", "DispatchTime", "clock_gettime", "UUID()", "SystemRandomNumberGenerator", ".random()", "arc4random"]

    /// Source root, found from this file's path (#filePath) so it works from any working directory.
    static var sourcesRoot: String {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3) // Tests/SynodCoreTests/PurityTests.swift
        return parts.joined(separator: "/") + "/Sources"
    }

    @Test("no forbidden imports or calls", arguments: pureTargets)
    func pure(target: String) throws {
        let files = try SourceFiles.list(Self.sourcesRoot + "/" + target)
        #expect(!files.isEmpty || target != "SynodCore")
        for file in files {
            let text = try SourceFiles.read(file)
            for line in text.split(separator: "\n") {
                let trimmed = line.drop(while: { $0 == " " })
                if trimmed.hasPrefix("//") { continue }
                for module in Self.forbiddenImports {
                    #expect(!(trimmed.hasPrefix("import \(module)") && (trimmed.count == 7 + module.count || trimmed.dropFirst(7 + module.count).first == " ")),
                            "\(file) imports \(module)")
                }
                for call in Self.forbiddenCalls { #expect(!trimmed.contains(call), "\(file) uses \(call)") }
            }
        }
    }
}

/// Minimal file listing without Foundation (so this test target stays as pure as what it checks).
enum SourceFiles {
    static func list(_ dir: String) throws -> [String] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var out: [String] = []
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name.hasPrefix(".") { continue }
            let path = dir + "/" + name
            if name.hasSuffix(".swift") { out.append(path) } else if entry.pointee.d_type == 4 /* DT_DIR */ { out += try list(path) }
        }
        return out.sorted()
    }

    static func read(_ path: String) throws -> String {
        guard let f = fopen(path, "r") else { return "" }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buffer, 1, buffer.count, f)
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
