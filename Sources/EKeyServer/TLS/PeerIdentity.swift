import Crypto
public import NIOSSL
import SwiftASN1
public import X509

/// Who is on the other end of a mutually authenticated TLS connection.
///
/// Computed once per connection when the handshake completes (``PeerIdentityHandler``),
/// from the leaf certificate the TLS stack already validated against `client_ca`.
public struct PeerIdentity: Sendable, Hashable {
    /// The caller: the SPIFFE ID of the URI SAN (`spiffe://trust-domain/path`), else `x509:<subject CN>`.
    public let identity: String
    /// SHA-256 of the leaf certificate's DER: what an mTLS-bound token's `cnf.x5t#S256` names.
    public let certificateSHA256: [UInt8]

    /// Creates an identity from a validated leaf certificate.
    public init(certificate: NIOSSLCertificate) throws {
        let der = try certificate.toDERBytes()
        self.init(der: der, parsed: try Certificate(derEncoded: der))
    }

    /// Creates an identity from a validated leaf certificate already parsed (as gRPC's
    /// transport hands it over), without parsing it again.
    public init(certificate: Certificate) throws {
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        self.init(der: serializer.serializedBytes, parsed: certificate)
    }

    private init(der: [UInt8], parsed: Certificate) {
        self.certificateSHA256 = Array(SHA256.hash(data: der))
        if let spiffe = Self.spiffeID(of: parsed) {
            self.identity = spiffe
        } else {
            let commonName = parsed.subject.flatMap { $0 }.first { $0.type == .RDNAttributeType.commonName }
            self.identity = "x509:" + (commonName.map { String(describing: $0.value) } ?? "")
        }
    }

    /// Creates an identity known only by what a trusted proxy vouches for: the certificate's
    /// SHA-256 (Envoy's XFCC `Hash=`), named `identity`.
    public init(identity: String, certificateSHA256: [UInt8]) {
        self.identity = identity
        self.certificateSHA256 = certificateSHA256
    }

    /// The first `spiffe://` URI in the subject alternative names, if any.
    private static func spiffeID(of certificate: Certificate) -> String? {
        guard let names = try? certificate.extensions.subjectAlternativeNames else { return nil }
        for name in names {
            if case .uniformResourceIdentifier(let uri) = name, uri.hasPrefix("spiffe://") {
                return uri
            }
        }
        return nil
    }
}
