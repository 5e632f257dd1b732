import Foundation

/// A throwaway certificate authority and certificates for a local cluster (`synod dev --tls`,
/// `synod-bench --tls`, tests), made with the `openssl` command: a CA, a node certificate naming
/// 127.0.0.1 and localhost (for client and peer ports alike) and a client certificate. Files
/// already in the directory are kept, so a dev cluster restarts with the certificates its
/// clients trust. Not for production: the keys are unencrypted and the CA lives beside them.
public struct DevCertificates: Sendable {
    public let directory: String
    public let ca: String
    public let nodeCert: String
    public let nodeKey: String
    public let clientCert: String
    public let clientKey: String

    /// Makes (or finds) them in `directory`; throws if `openssl` fails.
    public init(in directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.directory = directory
        (ca, nodeCert, nodeKey, clientCert, clientKey) = (directory + "/ca.pem", directory + "/node.pem", directory + "/node.key",
                                                          directory + "/client.pem", directory + "/client.key")
        if !FileManager.default.fileExists(atPath: ca) {
            try Self.openssl(["req", "-x509"] + Self.ecKey + ["-keyout", directory + "/ca.key", "-out", ca, "-days", "30", "-subj", "/CN=synod-dev-ca",
                                                              "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        }
        try issue("node", subjectAltName: "IP:127.0.0.1,DNS:localhost")
        try issue("client", subjectAltName: nil)
    }

    /// Signs `NAME.pem` / `NAME.key` in the directory (for serverAuth and clientAuth), naming
    /// `subjectAltName` (openssl syntax, e.g. `DNS:localhost`) if given; kept if it exists.
    @discardableResult
    public func issue(_ name: String, subjectAltName: String?) throws -> (certificate: String, key: String) {
        func path(_ suffix: String) -> String { "\(directory)/\(name).\(suffix)" }
        guard !FileManager.default.fileExists(atPath: path("pem")) else { return (path("pem"), path("key")) }
        try Self.openssl(["req"] + Self.ecKey + ["-keyout", path("key"), "-out", path("csr"), "-subj", "/CN=\(name)"])
        let extensions = (subjectAltName.map { "subjectAltName=\($0)\n" } ?? "")
            + "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n"
        try Data(extensions.utf8).write(to: URL(fileURLWithPath: path("ext")))
        try Self.openssl(["x509", "-req", "-in", path("csr"), "-CA", ca, "-CAkey", directory + "/ca.key", "-CAcreateserial",
                          "-out", path("pem"), "-days", "30", "-extfile", path("ext")])
        return (path("pem"), path("key"))
    }

    static let ecKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    /// Why making certificates failed.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    static func openssl(_ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        let err = Pipe()
        p.standardError = err
        do { try p.run() } catch { throw Failure(description: "cannot run /usr/bin/openssl (install the openssl package): \(error)") }
        let output = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw Failure(description: "openssl \(args.first ?? "") failed: " + String(decoding: output, as: UTF8.self))
        }
    }
}
