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
        public var certificatePEM: String { ((try? certificate.serializeAsPEM().pemString) ?? "") + "\n" }
        /// The private key, PKCS#8 PEM.
        public var privateKeyPEM: String { privateKey.pemRepresentation + "\n" }
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

    /// The 4 or 16 bytes of an IPv4 (dotted) or IPv6 (`::1`) address; nil for anything else.
    public static func ipAddressBytes(_ address: String) -> [UInt8]? {
        let octets = address.split(separator: ".", omittingEmptySubsequences: false).map { UInt8($0) }
        if octets.count == 4, octets.allSatisfy({ $0 != nil }) { return octets.compactMap { $0 } }
        guard address.contains(":") else { return nil }
        var groups = address.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        if let gap = groups.firstIndex(of: ""), address.contains("::") {
            let present = groups.filter { !$0.isEmpty }
            guard present.count <= 7 else { return nil }
            let head = groups[..<gap].filter { !$0.isEmpty }
            let tail = Array(present.dropFirst(head.count))
            groups = head + Array(repeating: "0", count: 8 - present.count) + tail
        }
        guard groups.count == 8 else { return nil }
        var bytes: [UInt8] = []
        for group in groups {
            guard group.count <= 4, let value = UInt16(group, radix: 16) else { return nil }
            bytes += [UInt8(value >> 8), UInt8(value & 0xff)]
        }
        return bytes
    }

    /// Issues a server certificate for `dnsNames` and `ipAddresses` (IPv4 or IPv6).
    public func issueServer(commonName: String, dnsNames: [String], ipAddresses: [String] = ["127.0.0.1"], spiffeID: String? = nil)
        throws -> Issued
    {
        var names: [GeneralName] = dnsNames.map { .dnsName($0) }
        for address in ipAddresses {
            guard let octets = Self.ipAddressBytes(address) else { continue }
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
