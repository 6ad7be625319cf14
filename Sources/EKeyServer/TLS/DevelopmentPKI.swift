public import Crypto
public import Foundation
import SwiftASN1
public import X509

/// A small certificate authority for development and tests: one P-256 CA that issues
/// server certificates (DNS and IP SANs) and client certificates (a SPIFFE ID in the URI
/// SAN, or only a common name). `ekey pki init` writes its output to `.ekey/pki/`.
public struct DevelopmentPKI: Sendable {
    /// A certificate with its private key, both as PEM.
    public struct Issued: Sendable {
        public let certificate: Certificate
        public let privateKey: P256.Signing.PrivateKey

        /// The certificate, PEM.
        public var certificatePEM: String { (try? certificate.serializeAsPEM().pemString) ?? "" }
        /// The private key, PKCS#8 PEM.
        public var privateKeyPEM: String { privateKey.pemRepresentation }
        /// The certificate's DER bytes.
        public var certificateDER: [UInt8] {
            var serializer = DER.Serializer()
            try? serializer.serialize(certificate)
            return serializer.serializedBytes
        }
    }

    /// The CA.
    public let authority: Issued
    private let validity: ClosedRange<Date>

    /// Creates a CA valid over `validity` (default: from an hour ago for 30 days).
    public init(name: String = "E-Key development CA", validity: ClosedRange<Date>? = nil) throws {
        let validity = validity ?? Date(timeIntervalSinceNow: -3600)...Date(timeIntervalSinceNow: 30 * 86400)
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName { CommonName(name) }
        let certificate = try Certificate(
            version: .v3,
            serialNumber: .init(),
            publicKey: .init(key.publicKey),
            notValidBefore: validity.lowerBound,
            notValidAfter: validity.upperBound,
            issuer: subject,
            subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: .init(key.publicKey))
            },
            issuerPrivateKey: .init(key))
        self.authority = Issued(certificate: certificate, privateKey: key)
        self.validity = validity
    }

    /// Issues a server certificate for `dnsNames` and `ipAddresses` (dotted IPv4).
    public func issueServer(commonName: String, dnsNames: [String], ipAddresses: [String] = ["127.0.0.1"], spiffeID: String? = nil)
        throws -> Issued
    {
        var names: [GeneralName] = dnsNames.map { .dnsName($0) }
        for address in ipAddresses {
            let octets = address.split(separator: ".").compactMap { UInt8($0) }
            guard octets.count == 4 else { continue }
            names.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(octets))))
        }
        if let spiffeID { names.append(.uniformResourceIdentifier(spiffeID)) }
        return try issue(commonName: commonName, names: names, usages: [.serverAuth, .clientAuth])
    }

    /// Issues a client certificate; `spiffeID` goes into the URI SAN when given.
    public func issueClient(commonName: String, spiffeID: String?) throws -> Issued {
        try issue(commonName: commonName, names: spiffeID.map { [.uniformResourceIdentifier($0)] } ?? [], usages: [.clientAuth])
    }

    private func issue(commonName: String, names: [GeneralName], usages: [ExtendedKeyUsage.Usage]) throws -> Issued {
        let key = P256.Signing.PrivateKey()
        let certificate = try Certificate(
            version: .v3,
            serialNumber: .init(),
            publicKey: .init(key.publicKey),
            notValidBefore: validity.lowerBound,
            notValidAfter: validity.upperBound,
            issuer: authority.certificate.subject,
            subject: try DistinguishedName { CommonName(commonName) },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage(usages)
                if !names.isEmpty { SubjectAlternativeNames(names) }
                AuthorityKeyIdentifier(keyIdentifier: try? authority.certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
            },
            issuerPrivateKey: .init(authority.privateKey))
        return Issued(certificate: certificate, privateKey: key)
    }
}
