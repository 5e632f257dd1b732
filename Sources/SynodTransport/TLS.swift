import NIOCore
import NIOSSL

/// PEM files for one side of a TLS connection (etcd's `--cert-file`, `--key-file`,
/// `--trusted-ca-file`). Synod links are plain TCP unless these are given.
public struct TLSFiles: Sendable, Hashable {
    /// This side's certificate chain (PEM); a server must have one, a client only for mutual TLS.
    public var certificate: String?
    /// The private key of `certificate` (PEM).
    public var privateKey: String?
    /// CA certificates (PEM) the other side's certificate must chain to; nil: the system's roots.
    public var trustedCA: String?

    public init(certificate: String? = nil, privateKey: String? = nil, trustedCA: String? = nil) {
        self.certificate = certificate
        self.privateKey = privateKey
        self.trustedCA = trustedCA
    }

    /// A server-side context. With `requireClientCertificates` a client must present a
    /// certificate that chains to `trustedCA` (mutual TLS; no name check: clients have no name).
    /// Throws `TLSSetupError` for missing or unreadable files.
    public func serverContext(requireClientCertificates: Bool) throws -> NIOSSLContext {
        guard let certificate, let privateKey else { throw TLSSetupError.missing("a server needs a certificate and its private key") }
        var config = TLSConfiguration.makeServerConfiguration(certificateChain: try Self.chain(certificate), privateKey: try Self.key(privateKey))
        config.minimumTLSVersion = .tlsv12
        if requireClientCertificates {
            guard let trustedCA else { throw TLSSetupError.missing("requiring client certificates needs a trusted CA file") }
            config.certificateVerification = .noHostnameVerification
            config.trustRoots = .certificates(try Self.certificates(trustedCA))
        }
        return try Self.context(config)
    }

    /// A client-side context: the server's certificate must chain to `trustedCA` and name the
    /// host or IP address dialled (`NIOSSLClientHandler`'s server hostname); presents
    /// `certificate` when given (for servers that require client certificates).
    public func clientContext() throws -> NIOSSLContext {
        var config = TLSConfiguration.makeClientConfiguration()
        config.minimumTLSVersion = .tlsv12
        config.certificateVerification = .fullVerification
        if let trustedCA { config.trustRoots = .certificates(try Self.certificates(trustedCA)) }
        if let certificate {
            guard let privateKey else { throw TLSSetupError.missing("a client certificate needs its private key") }
            config.certificateChain = try Self.chain(certificate)
            config.privateKey = try Self.key(privateKey)
        }
        return try Self.context(config)
    }

    static func certificates(_ path: String) throws -> [NIOSSLCertificate] {
        do {
            let certs = try NIOSSLCertificate.fromPEMFile(path)
            guard !certs.isEmpty else { throw TLSSetupError.unreadable(path, "no certificate in it") }
            return certs
        } catch let e as TLSSetupError { throw e } catch { throw TLSSetupError.unreadable(path, "\(error)") }
    }

    static func chain(_ path: String) throws -> [NIOSSLCertificateSource] { try certificates(path).map { .certificate($0) } }

    static func key(_ path: String) throws -> NIOSSLPrivateKeySource {
        do { return .privateKey(try NIOSSLPrivateKey(file: path, format: .pem)) } catch { throw TLSSetupError.unreadable(path, "\(error)") }
    }

    static func context(_ config: TLSConfiguration) throws -> NIOSSLContext {
        do { return try NIOSSLContext(configuration: config) } catch { throw TLSSetupError.rejected("\(error)") }
    }
}

/// Why TLS could not be set up.
public enum TLSSetupError: Error, Hashable, Sendable, CustomStringConvertible {
    case missing(String)
    case unreadable(String, String)
    case rejected(String)
    public var description: String {
        switch self {
        case let .missing(what): return "TLS: \(what)"
        case let .unreadable(path, why): return "TLS: cannot read \(path): \(why)"
        case let .rejected(why): return "TLS: the certificates and key do not make a valid configuration: \(why)"
        }
    }
}

/// TLS for peer links: every member presents its certificate and requires the other's, both
/// chaining to the cluster's peer CA (mutual TLS, as etcd's `--peer-client-cert-auth`).
public struct PeerTLS: Sendable {
    public let server: NIOSSLContext
    public let client: NIOSSLContext
    public init(_ files: TLSFiles) throws {
        server = try files.serverContext(requireClientCertificates: true)
        client = try files.clientContext()
    }
}

extension ChannelPipeline.SynchronousOperations {
    /// Adds TLS as the first handler (next to the socket), if configured.
    func addServerTLS(_ context: NIOSSLContext?) throws {
        guard let context else { return }
        try addHandler(NIOSSLServerHandler(context: context))
    }

    /// Adds client-side TLS verifying the server as `host`, if configured: a name must be in
    /// the certificate's DNS names; for an IP address (which TLS cannot send as a server name)
    /// NIOSSL checks the connected address against the certificate's IP addresses instead.
    public func addClientTLS(_ context: NIOSSLContext?, host: String) throws {
        guard let context else { return }
        let isAddress = (try? SocketAddress(ipAddress: host, port: 0)) != nil
        try addHandler(NIOSSLClientHandler(context: context, serverHostname: isAddress ? nil : host))
    }
}
