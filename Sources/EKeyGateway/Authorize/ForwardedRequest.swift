import EKeyProtocol
import EKeyServer
import Foundation
import HTTPTypes
import NIOSSL

/// What a trusted proxy's authorization request says about the request it holds: the
/// original method and target, and the client certificate it terminated (docs/authorize.md).
///
/// Read only for callers in `trusted_clients`. Anything ambiguous is refused with 400
/// `invalid_request` rather than guessed: a header sent twice, a method without its URI,
/// two conventions naming different requests, two certificate headers naming different
/// certificates, an XFCC header listing several certificates.
struct ForwardedRequest: Sendable {
    /// The original request's method.
    var method: String
    /// The original request target (`/path?query`), checked later by the path step.
    var target: String
    /// The original client's certificate, as the proxy vouches for it.
    var certificate: PeerIdentity?

    static let forwardedMethod = HTTPField.Name("X-Forwarded-Method")!
    static let forwardedURI = HTTPField.Name("X-Forwarded-Uri")!
    static let originalMethod = HTTPField.Name("X-Original-Method")!
    static let originalURI = HTTPField.Name("X-Original-URI")!
    static let forwardedClientCert = HTTPField.Name("X-Forwarded-Client-Cert")!
    static let sslClientCert = HTTPField.Name("X-SSL-Client-Cert")!

    /// Reads the original request from `headers`: `X-Forwarded-Method` + `X-Forwarded-Uri`,
    /// else `X-Original-Method` + `X-Original-URI`, else `method` and `target` less `pathPrefix`.
    init(headers: HTTPFields, method: String, target: String, pathPrefix: String?) throws(Rejection) {
        let traefik = try Self.pair(headers, Self.forwardedMethod, Self.forwardedURI, hint: "Traefik ForwardAuth sends both")
        let nginx = try Self.pair(
            headers, Self.originalMethod, Self.originalURI,
            hint: "nginx: proxy_set_header X-Original-Method $request_method; proxy_set_header X-Original-URI $request_uri")
        switch (traefik, nginx) {
        case (let named?, let other?):
            guard named == other else {
                throw Self.refusal("X-Forwarded-Method/-Uri and X-Original-Method/-URI name different requests; send one convention")
            }
            self.method = named.0
            self.target = named.1
        case (let named?, nil), (nil, let named?):
            self.method = named.0
            self.target = named.1
        case (nil, nil):
            self.method = method
            self.target = try Self.strip(pathPrefix, from: target)
        }
        try Self.checkMethod(self.method)
        self.certificate = try Self.certificate(headers)
    }

    /// The original request as Envoy's gRPC `Check` names it: `method` and `path` from the
    /// CheckRequest's `attributes.request.http` (the forwarded-request headers play no part),
    /// the client certificate from `sourceCertificate` (URL-encoded PEM,
    /// `attributes.source.certificate` with `include_peer_certificate`) and the certificate
    /// headers among `headers`, which must all name the same certificate.
    init(checkMethod method: String, path: String, headers: HTTPFields, sourceCertificate: String) throws(Rejection) {
        guard !path.isEmpty else {
            throw Self.refusal("the CheckRequest names no original request: attributes.request.http has no path")
        }
        try Self.checkMethod(method)
        self.method = method
        self.target = path
        let source = sourceCertificate.isEmpty ? nil : try Self.fromEscapedPEM(sourceCertificate, header: "attributes.source.certificate")
        self.certificate = try Self.certificate(headers, alongside: source)
    }

    private static func checkMethod(_ method: String) throws(Rejection) {
        guard !method.isEmpty, method.utf8.count <= 32, method.utf8.allSatisfy(Self.isTokenByte) else {
            throw Self.refusal("the original method is not an HTTP method token")
        }
    }

    /// A method header and its URI header: both or neither, each at most once.
    private static func pair(_ headers: HTTPFields, _ methodName: HTTPField.Name, _ uriName: HTTPField.Name, hint: String) throws(Rejection)
        -> (String, String)?
    {
        let method = try single(headers, methodName)
        let uri = try single(headers, uriName)
        switch (method, uri) {
        case (nil, nil): return nil
        case (let method?, let uri?): return (method, uri)
        default:
            throw refusal("\(methodName) and \(uriName) go together and only one was sent (\(hint))")
        }
    }

    /// The value of a header that may appear at most once; an empty value counts as absent.
    private static func single(_ headers: HTTPFields, _ name: HTTPField.Name) throws(Rejection) -> String? {
        let values = headers[values: name].filter { !$0.isEmpty }
        guard values.count <= 1 else { throw refusal("\(name) was sent \(values.count) times; send it once") }
        return values.first
    }

    /// The listener's own target less `prefix` on a segment boundary (Envoy ext_authz HTTP
    /// sends `path_prefix` + the original path).
    private static func strip(_ prefix: String?, from target: String) throws(Rejection) -> String {
        guard let prefix else { return target }
        guard target.hasPrefix(prefix + "/") else {
            throw refusal(
                "the request names no original request: no X-Forwarded-Uri or X-Original-URI, and its path does not start with gateway.authorize.path_prefix \(prefix)/")
        }
        return String(target.dropFirst(prefix.count))
    }

    /// The client certificate from `X-Forwarded-Client-Cert` (`Hash=`, `Cert=`) or
    /// `X-SSL-Client-Cert` (URL-encoded PEM), and `alongside` (the gRPC `Check`'s
    /// `attributes.source.certificate`); when several are given they must agree.
    private static func certificate(_ headers: HTTPFields, alongside: PeerIdentity? = nil) throws(Rejection) -> PeerIdentity? {
        var found: [PeerIdentity] = alongside.map { [$0] } ?? []
        if let xfcc = try single(headers, forwardedClientCert) {
            found += try fromXFCC(xfcc)
        }
        if let escaped = try single(headers, sslClientCert) {
            found.append(try fromEscapedPEM(escaped, header: "X-SSL-Client-Cert"))
        }
        guard let first = found.first else { return nil }
        guard found.allSatisfy({ $0.certificateSHA256 == first.certificateSHA256 }) else {
            throw refusal("the client certificate headers name different certificates")
        }
        return found.first { !$0.identity.isEmpty } ?? first
    }

    /// The certificates of one XFCC element (its `Hash` and `Cert`); several elements (a
    /// chain of proxies) are refused: the edge proxy should replace the header (`SANITIZE_SET`).
    private static func fromXFCC(_ value: String) throws(Rejection) -> [PeerIdentity] {
        let elements = splitUnquoted(value, on: ",")
        guard elements.count == 1 else {
            throw refusal(
                "X-Forwarded-Client-Cert lists \(elements.count) certificates; the edge proxy must send only the client's (Envoy forward_client_cert_details: SANITIZE_SET)")
        }
        var identities: [PeerIdentity] = []
        for pair in splitUnquoted(elements[0], on: ";") {
            guard let equals = pair.firstIndex(of: "=") else {
                throw refusal("X-Forwarded-Client-Cert has an element without '=' (expected Key=value pairs separated by ';')")
            }
            let key = pair[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            let value = unquote(pair[pair.index(after: equals)...].trimmingCharacters(in: .whitespaces))
            switch key {
            case "hash":
                guard let digest = hexBytes(value), digest.count == 32 else {
                    throw refusal("X-Forwarded-Client-Cert Hash is not 64 hex digits (the SHA-256 of the certificate's DER)")
                }
                identities.append(PeerIdentity(identity: "", certificateSHA256: digest))
            case "cert":
                identities.append(try fromEscapedPEM(value, header: "X-Forwarded-Client-Cert Cert"))
            default:
                continue
            }
        }
        guard !identities.isEmpty else {
            throw refusal("X-Forwarded-Client-Cert carries neither Hash nor Cert")
        }
        return identities
    }

    /// A URL-encoded PEM certificate (its first one: the leaf), parsed once per distinct value.
    private static func fromEscapedPEM(_ value: String, header: String) throws(Rejection) -> PeerIdentity {
        if let known = parsedCertificates.value(for: value) { return known }
        guard let pem = percentDecoded(value), containsPEMHeader(pem),
            let certificate = try? NIOSSLCertificate.fromPEMBytes(pem).first,
            let identity = try? PeerIdentity(certificate: certificate)
        else {
            throw refusal("\(header) is not a URL-encoded PEM certificate")
        }
        parsedCertificates.remember(identity, for: value)
        return identity
    }

    /// The identities of the certificate header values seen last: a proxy sends the same
    /// client certificate with each of that client's calls, and decoding and parsing a PEM
    /// costs more than the rest of the checks together.
    static let parsedCertificates = BoundedMemo<PeerIdentity>(capacity: 1024)

    /// `text` with its `%XX` escapes decoded, as bytes; `nil` when an escape is malformed.
    static func percentDecoded(_ text: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    private static func containsPEMHeader(_ bytes: [UInt8]) -> Bool {
        let marker = Array("-----BEGIN CERTIFICATE-----".utf8)
        guard bytes.count >= marker.count else { return false }
        return (0...(bytes.count - marker.count)).contains { bytes[$0..<($0 + marker.count)].elementsEqual(marker) }
    }

    /// `text` split on `separator` outside double quotes (XFCC quotes values holding `,;=`).
    private static func splitUnquoted(_ text: String, on separator: Character) -> [String] {
        var parts: [String] = []
        var current = ""
        var quoted = false
        var escaped = false
        for character in text {
            if escaped {
                escaped = false
            } else if character == "\\" && quoted {
                escaped = true
            } else if character == "\"" {
                quoted.toggle()
            } else if character == separator && !quoted {
                parts.append(current)
                current = ""
                continue
            }
            current.append(character)
        }
        parts.append(current)
        return parts
    }

    private static func unquote(_ value: String) -> String {
        guard value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") else { return value }
        return String(value.dropFirst().dropLast()).replacingOccurrences(of: "\\\"", with: "\"")
    }

    private static func hexBytes(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let high = hexValue(digits[index]), let low = hexValue(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// RFC 9110 `tchar`.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
        }
    }

    private static func refusal(_ reason: String) -> Rejection {
        Rejection(EKeyError(.invalidRequest, reason), scheme: nil, outcome: .invalidRequest)
    }
}

