import Foundation

/// PEM files for TLS tests, made with the `openssl` command: a CA, a node certificate naming
/// 127.0.0.1 and localhost (used for both client and peer ports), a client certificate, and a
/// node certificate naming only localhost (`namedCert`: valid for that name, not for 127.0.0.1).
public struct TestCertificates: Sendable {
    public let ca: String
    public let nodeCert: String
    public let nodeKey: String
    public let clientCert: String
    public let clientKey: String
    public let namedCert: String
    public let namedKey: String

    /// Makes them in `directory`; throws if `openssl` fails.
    public init(in directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        func path(_ name: String) -> String { "\(directory)/\(name)" }
        func openssl(_ args: [String]) throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            p.arguments = args
            p.standardOutput = FileHandle.nullDevice
            let err = Pipe()
            p.standardError = err
            try p.run()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else {
                throw NSError(domain: "openssl", code: Int(p.terminationStatus),
                              userInfo: [NSLocalizedDescriptionKey: String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)])
            }
        }
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try openssl(["req", "-x509"] + ec + ["-keyout", path("ca.key"), "-out", path("ca.pem"), "-days", "2", "-subj", "/CN=synod-test-ca",
                                             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        for (name, san) in [("node", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"), ("client", ""), ("named", "subjectAltName=DNS:localhost\n")] {
            try openssl(["req"] + ec + ["-keyout", path("\(name).key"), "-out", path("\(name).csr"), "-subj", "/CN=\(name)"])
            try Data((san + "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n").utf8).write(to: URL(fileURLWithPath: path("\(name).ext")))
            try openssl(["x509", "-req", "-in", path("\(name).csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"), "-CAcreateserial",
                         "-out", path("\(name).pem"), "-days", "2", "-extfile", path("\(name).ext")])
        }
        (ca, nodeCert, nodeKey, clientCert, clientKey) = (path("ca.pem"), path("node.pem"), path("node.key"), path("client.pem"), path("client.key"))
        (namedCert, namedKey) = (path("named.pem"), path("named.key"))
    }
}
