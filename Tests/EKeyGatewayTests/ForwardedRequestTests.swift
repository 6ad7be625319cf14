import Crypto
import EKeyProtocol
import EKeyServer
import Foundation
import HTTPTypes
import Testing

@testable import EKeyGateway

/// The certificate headers a trusted proxy sends, read without the network: decoding, the
/// memo of parsed certificates, and malformed values refused.
@Suite struct ForwardedRequestTests {
    static func certificateHeaders(_ value: String) -> HTTPFields {
        [HTTPField.Name("X-SSL-Client-Cert")!: value, HTTPField.Name("X-Original-Method")!: "POST", HTTPField.Name("X-Original-URI")!: "/payments"]
    }

    @Test func percentEscapesDecodeToBytesAndBrokenEscapesAreRefused() {
        #expect(ForwardedRequest.percentDecoded("a%20b%2Fc%25") == Array("a b/c%".utf8))
        #expect(ForwardedRequest.percentDecoded("%E2%98%83") == [0xE2, 0x98, 0x83])
        #expect(ForwardedRequest.percentDecoded("plain") == Array("plain".utf8))
        #expect(ForwardedRequest.percentDecoded("%") == nil)
        #expect(ForwardedRequest.percentDecoded("%4") == nil)
        #expect(ForwardedRequest.percentDecoded("%zz") == nil)
    }

    @Test func aCertificateHeaderIsParsedOnceAndGivesTheSameIdentityAfter() throws {
        let pki = try DevelopmentPKI()
        let issued = try pki.issueClient(commonName: "checkout", spiffeID: "spiffe://example.org/checkout-\(UUID().uuidString)")
        let escaped = issued.certificatePEM.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let expected = Array(SHA256.hash(data: issued.certificateDER))

        let first = try ForwardedRequest(headers: Self.certificateHeaders(escaped), method: "GET", target: "/", pathPrefix: nil)
        #expect(ForwardedRequest.parsedCertificates.value(for: escaped) != nil, "remembered after the first parse")
        let second = try ForwardedRequest(headers: Self.certificateHeaders(escaped), method: "GET", target: "/", pathPrefix: nil)
        #expect(first.certificate?.certificateSHA256 == expected)
        #expect(second.certificate == first.certificate)
        #expect(first.certificate?.identity.hasPrefix("spiffe://example.org/checkout-") == true)
    }

    @Test func malformedCertificateValuesAreRefusedAndNotRemembered() throws {
        let pki = try DevelopmentPKI()
        let pem = try pki.issueClient(commonName: "checkout", spiffeID: nil).certificatePEM
        let truncated = String(pem.prefix(pem.count / 2)).addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        for value in ["not-a-certificate", "%ZZ" + truncated, truncated, "-----BEGIN%20CERTIFICATE-----%0AAAAA%0A-----END%20CERTIFICATE-----"] {
            #expect(throws: Rejection.self, "\(value.prefix(40))") {
                try ForwardedRequest(headers: Self.certificateHeaders(value), method: "GET", target: "/", pathPrefix: nil)
            }
            #expect(ForwardedRequest.parsedCertificates.value(for: value) == nil)
        }
    }

    @Test func theMemoStaysWithinItsCapacity() {
        let memo = BoundedMemo<PeerIdentity>(capacity: 3)
        let identity = PeerIdentity(identity: "x509:a", certificateSHA256: Array(repeating: 1, count: 32))
        for index in 0..<10 {
            memo.remember(identity, for: "value-\(index)")
            #expect(memo.count <= 3)
        }
        #expect(memo.value(for: "value-9") == identity, "the latest value is kept")
    }
}
