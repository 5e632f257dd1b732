#if canImport(Glibc)
import Glibc
#endif
import NIOSSL
import X509

/// Who may speak for a member on a peer link, under mutual TLS.
///
/// TLS alone proves only that the other side holds *some* certificate of the cluster's peer CA;
/// the member id it then claims in its hello is its own word. Invariant: a peer that says it is
/// member N presents a certificate naming N's peer address (its host, as `--peers` or the member
/// directory gives it) — exactly what this node requires of N's certificate when it dials N. So a
/// client certificate from a shared CA, or one member's certificate, cannot speak for another
/// member (etcd checks a peer's certificate against its remote address for the same reason).
/// Without TLS there is no identity to check (a documented, trusted-network-only mode).
public enum PeerIdentity {
    /// Nil when `certificate` names `host`: for an IP address, an IP subject alternative name
    /// with the same bytes; for a host name, a DNS name equal to it ignoring case, or a wildcard
    /// standing for its whole first label (`*.example.com`). Otherwise why not, for the log.
    public static func refusal(certificate: NIOSSLCertificate?, host: String) -> String? {
        guard let certificate else { return "no client certificate" }
        let names: SubjectAlternativeNames
        do {
            let parsed = try Certificate(derEncoded: try certificate.toDERBytes())
            guard let san = try parsed.extensions.subjectAlternativeNames else { return "the certificate has no subject alternative names" }
            names = san
        } catch {
            return "the certificate's names could not be read: \(error)"
        }
        if let address = ipBytes(host) {
            for case let .ipAddress(ip) in names where Array(ip.bytes) == address { return nil }
        } else {
            for case let .dnsName(name) in names where dnsMatches(name, host) { return nil }
        }
        return "the certificate does not name \(host)"
    }

    /// The 4 or 16 bytes of an IPv4 or IPv6 address, nil for a host name.
    static func ipBytes(_ host: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if inet_pton(AF_INET6, bare, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    /// RFC 6125 §6.4: equal ignoring case (and a final dot), or `*.rest` for exactly one first label.
    static func dnsMatches(_ pattern: String, _ host: String) -> Bool {
        func norm(_ s: String) -> String { (s.hasSuffix(".") ? String(s.dropLast()) : s).lowercased() }
        let (p, h) = (norm(pattern), norm(host))
        if p == h { return true }
        guard p.hasPrefix("*."), let dot = h.firstIndex(of: ".") else { return false }
        return h[h.startIndex..<dot].count > 0 && String(h[h.index(after: dot)...]) == String(p.dropFirst(2))
    }
}
