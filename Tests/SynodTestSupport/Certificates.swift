import Foundation
import SynodTransport

/// PEM files for TLS tests: `DevCertificates` (a CA, a node certificate naming 127.0.0.1 and
/// localhost, used for both client and peer ports, and a client certificate), plus a node
/// certificate naming only localhost (`namedCert`: valid for that name, not for 127.0.0.1).
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
        let dev = try DevCertificates(in: directory)
        (ca, nodeCert, nodeKey, clientCert, clientKey) = (dev.ca, dev.nodeCert, dev.nodeKey, dev.clientCert, dev.clientKey)
        (namedCert, namedKey) = try dev.issue("named", subjectAltName: "DNS:localhost")
    }
}
