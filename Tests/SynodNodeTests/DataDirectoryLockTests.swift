import Foundation
import SynodClient
import SynodTestSupport
import SynodTransport
import Testing

extension RealProcessTests {
/// One process per member directory (`DataDirectoryLock`). Before it, a second `synod serve`
/// on a running node's directory started and both acted as the same member (checked by hand on
/// the tenth session's build: both processes ran, the second logged "node started").
@Suite("Data directory lock")
struct DataDirectoryLockTests {
    /// Runs `synod` with `arguments`, killing it after `seconds` if it has not exited: a second
    /// serve that is not refused would otherwise run forever. Returns (exit status or nil when
    /// it had to be killed, stderr).
    static func runBounded(_ arguments: [String], seconds: Double) throws -> (Int32?, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: synodExecutable())
        p.arguments = arguments
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        try p.run()
        let deadline = Date().addingTimeInterval(seconds)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        let killed = p.isRunning
        if killed { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (killed ? nil : p.terminationStatus, text)
    }

    @Test("a second synod serve on a running node's directory is refused, naming the holder; a killed node leaves it free")
    func secondServeRefused() async throws {
        let cluster = try Cluster(size: 1)
        let client = cluster.client()
        defer { Task { await client.close() } }
        try await client.put(b("k"), b("v1"))
        let holder = cluster.processes[1]!.processIdentifier
        let ports = LoopbackPorts.freeBase(count: 2)
        let (status, stderr) = try Self.runBounded(["serve", "--id", "1", "--data", cluster.dataDirectory(1),
                                                    "--peers", "1=127.0.0.1:\(ports)", "--listen-client", "127.0.0.1:\(ports + 1)"], seconds: 10)
        #expect(status != nil && status != 0, "the second serve was not refused: \(stderr)")
        #expect(stderr.contains("is in use by another synod process (pid \(holder))"), "stderr: \(stderr)")
        // The first node is untouched and still serves.
        try await client.put(b("k"), b("v2"))
        // SIGKILL: the lock dies with its process; the same directory starts again and holds the data.
        cluster.kill(1)
        try cluster.start(1)
        let after = cluster.client()
        defer { Task { await after.close() } }
        #expect(try await after.get(b("k")).map { s($0.value) } == "v2")
    }
}
}
