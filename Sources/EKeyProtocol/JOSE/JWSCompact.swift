/// A JWS in compact serialisation (RFC 7515 §7.1), parsed strictly and verified against
/// an explicit key.
///
/// Parsing refuses: anything but three base64url parts, a header that is not a strict
/// JSON object (duplicate members included), an `alg` outside ``JWSAlgorithm``, any `crit`
/// or `b64` header, and a signature that is not 64 bytes. Verification refuses a key of
/// another algorithm than the header's `alg`.
public struct JWSCompact: Sendable {
    /// The protected header.
    public let header: [String: JSONValue]
    /// The header's `alg`.
    public let algorithm: JWSAlgorithm
    /// The decoded payload bytes, exactly as signed.
    public let payload: [UInt8]
    /// The raw signature.
    public let signature: [UInt8]
    /// `BASE64URL(header) '.' BASE64URL(payload)`: the bytes the signature covers.
    public let signingInput: [UInt8]

    /// Parses a compact JWS without verifying it.
    ///
    /// - Parameter maximumLength: tokens longer than this many bytes are refused before
    ///   any decoding.
    public init(parsing token: some StringProtocol, maximumLength: Int = 8192) throws(JWSError) {
        let bytes = Array(token.utf8)
        guard bytes.count <= maximumLength else {
            throw JWSError(.malformed, "the JWS is \(bytes.count) bytes, over the \(maximumLength)-byte limit")
        }
        guard let firstDot = bytes.firstIndex(of: UInt8(ascii: ".")),
            let secondDot = bytes[(firstDot + 1)...].firstIndex(of: UInt8(ascii: ".")),
            !bytes[(secondDot + 1)...].contains(UInt8(ascii: "."))
        else {
            throw JWSError(.malformed, "a compact JWS has exactly three dot-separated parts")
        }
        let headerPart = bytes[..<firstDot]
        let payloadPart = bytes[(firstDot + 1)..<secondDot]
        let signaturePart = bytes[(secondDot + 1)...]
        guard !headerPart.isEmpty, !signaturePart.isEmpty else {
            throw JWSError(.malformed, "the JWS header or signature part is empty")
        }
        let headerBytes: [UInt8]
        do {
            headerBytes = try Base64URL.decode(utf8: headerPart)
            payload = try Base64URL.decode(utf8: payloadPart)
            signature = try Base64URL.decode(utf8: signaturePart)
        } catch {
            throw JWSError(.malformed, "a JWS part is not strict base64url: \(error)")
        }
        do {
            header = try StrictJSONParser().parseObject(headerBytes)
        } catch {
            throw JWSError(.malformed, "the JWS header is not a valid JSON object: \(error)")
        }
        guard let algorithmName = header["alg"]?.stringValue else {
            throw JWSError(.malformed, "the JWS header has no \"alg\" string")
        }
        algorithm = try JWSAlgorithm(headerValue: algorithmName)
        if header["crit"] != nil {
            throw JWSError(.criticalHeader, "the JWS header lists \"crit\" extensions, which E-Key does not understand")
        }
        if header["b64"] != nil {
            throw JWSError(.criticalHeader, "the JWS header carries \"b64\" (RFC 7797), which E-Key does not accept")
        }
        guard signature.count == 64 else {
            throw JWSError(.invalidSignature, "a \(algorithm.rawValue) signature is 64 bytes, not \(signature.count)")
        }
        signingInput = Array(bytes[..<secondDot])
    }

    /// The header member `name` as a string, if it is one.
    public func headerString(_ name: String) -> String? {
        header[name]?.stringValue
    }

    /// Verifies the signature with `key`.
    ///
    /// - Throws: ``JWSError/Kind/algorithmKeyMismatch`` when the key is not of the header's
    ///   algorithm, ``JWSError/Kind/invalidSignature`` when the signature does not verify.
    public func verify(using key: PublicSigningKey) throws(JWSError) {
        guard key.algorithm == algorithm else {
            throw JWSError(
                .algorithmKeyMismatch,
                "the JWS says alg \(algorithm.rawValue) but the key verifies \(key.algorithm.rawValue)")
        }
        guard key.isValidSignature(signature, for: signingInput) else {
            throw JWSError(.invalidSignature, "the JWS signature does not verify")
        }
    }

    /// Signs `payload` under `header`; `alg` is set from the key.
    public static func sign(
        header: [String: JSONValue],
        payload: [UInt8],
        using key: PrivateSigningKey
    ) throws -> String {
        var protectedHeader = header
        protectedHeader["alg"] = .string(key.algorithm.rawValue)
        return try sign(protectedHeader: JSONValue.object(protectedHeader).serializedBytes(), payload: payload, using: key)
    }

    /// Signs `payload` under `protectedHeader`, the header's JSON bytes as given; the
    /// caller's header names `key`'s `alg`.
    public static func sign(protectedHeader: [UInt8], payload: [UInt8], using key: PrivateSigningKey) throws -> String {
        var compact: [UInt8] = []
        compact.reserveCapacity((protectedHeader.count + payload.count) * 4 / 3 + 96)
        Base64URL.encode(protectedHeader, appendingTo: &compact)
        compact.append(UInt8(ascii: "."))
        Base64URL.encode(payload, appendingTo: &compact)
        let signature = try key.signature(for: compact)
        compact.append(UInt8(ascii: "."))
        Base64URL.encode(signature, appendingTo: &compact)
        return String(decoding: compact, as: UTF8.self)
    }
}
