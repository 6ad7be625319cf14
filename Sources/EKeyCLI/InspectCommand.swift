import ArgumentParser
import EKeyProtocol
import Foundation

/// `ekey inspect`: decode a token or a DPoP proof without any key.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Decode an E-Key token or a DPoP proof: header, claims, time left, binding, capability.",
        discussion: """
            Never needs a key and verifies no signature: it shows what the JWS says.
              ekey inspect eyJhbGciOi...      ekey inspect @token.jwt      ekey token ... | ekey inspect -
            """
    )

    @Argument(help: "The token or proof, @FILE, or - for stdin.")
    var jws: String

    @Flag(help: "Print {\"header\", \"claims\"} as JSON.")
    var json = false

    func run() throws {
        do {
            let text = try readArgument(jws)
            let parsed: JWSCompact
            do {
                parsed = try JWSCompact(parsing: text, maximumLength: 1 << 20)
            } catch {
                throw CLIError("not a compact JWS (\(error)); pass the token itself, @FILE or -")
            }
            let claims = (try? StrictJSONParser().parse(parsed.payload)) ?? .null
            if json {
                print(JSONValue.object(["header": .object(parsed.header), "claims": claims]).serialized())
                return
            }
            print(Self.describe(header: parsed.header, claims: claims, compact: text, now: Int64(Date().timeIntervalSince1970)))
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
    }

    static func describe(header: [String: JSONValue], claims: JSONValue, compact: String, now: Int64) -> String {
        let type = header["typ"]?.stringValue ?? ""
        var lines: [String] = []
        func row(_ name: String, _ value: String) { lines.append(name.padding(toLength: 12, withPad: " ", startingAt: 0) + value) }
        func time(_ seconds: Int64?) -> String {
            guard let seconds else { return "-" }
            let date = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
            let delta = seconds - now
            return delta >= 0 ? "\(date) (in \(delta) s)" : "\(date) (\(-delta) s ago)"
        }
        if type.caseInsensitiveCompare(EKeyToken.type) == .orderedSame {
            lines.append("E-Key token (decoded only: the signature is not verified)")
        } else if type == DPoPProof.type {
            lines.append("DPoP proof (decoded only: the signature is not verified)")
        } else {
            lines.append("JWS with typ \(type.isEmpty ? "(none)" : type) (decoded only)")
        }
        row("header", JSONValue.object(header).serialized())
        row("claims", claims.serialized())
        if type == DPoPProof.type {
            row("method", claims["htm"]?.stringValue ?? "-")
            row("url", claims["htu"]?.stringValue ?? "-")
            row("issued", time(claims["iat"]?.integerValue))
            row("jti", claims["jti"]?.stringValue ?? "-")
            if let ath = claims["ath"]?.stringValue { row("ath", ath + " (SHA-256 of the token it goes with)") }
            if let nonce = claims["nonce"]?.stringValue { row("nonce", nonce) }
            if let jwk = header["jwk"].flatMap({ try? JWK(parsing: $0, context: .publicOnly) }) {
                row("key", "\(jwk.keyType) thumbprint \(jwk.thumbprint) (must equal the token's cnf.jkt)")
            }
            return lines.joined(separator: "\n")
        }
        row("issuer", claims["iss"]?.stringValue ?? "-")
        row("subject", claims["sub"]?.stringValue ?? "-")
        row("audience", claims["aud"]?.stringValue ?? "-")
        if let cap = claims["cap"] {
            var text = "\(cap["action"]?.stringValue ?? "?") (limit \(cap["limit"]?.integerValue.map(String.init) ?? "?"))"
            if let subcap = cap["subcap"]?.arrayValue?.compactMap(\.stringValue), !subcap.isEmpty {
                text += ", also \(subcap.joined(separator: ", "))"
            }
            if let scope = cap["scope"]?.stringValue { text += ", scope \(scope)" }
            row("capability", text)
        }
        let bind = header["bind"]?.stringValue
        if let jkt = claims["cnf"]?["jkt"]?.stringValue {
            row("binding", bind == "mTLS" ? "mTLS, certificate SHA-256 \(jkt) (legacy hex form)" : "DPoP, key thumbprint \(jkt)")
        } else if let x5t = claims["cnf"]?["x5t#S256"]?.stringValue {
            row("binding", "mTLS, certificate SHA-256 \(x5t)")
        } else {
            row("binding", "none (no cnf: a gateway refuses it)")
        }
        row("trace", claims["trace"]?.stringValue ?? "-")
        row("key id", header["kid"]?.stringValue ?? "-")
        row("issued", time(claims["iat"]?.integerValue))
        let expires = claims["exp"]?.integerValue
        row("expires", time(expires))
        if let expires {
            row("time left", expires > now ? "\(expires - now) s" : "none: expired")
        }
        return lines.joined(separator: "\n")
    }
}
