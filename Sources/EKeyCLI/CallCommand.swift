import ArgumentParser
import EKeyClient
import EKeyConfig
import EKeyProtocol
import Foundation

/// `ekey call`: get a token for one request and make it through the gateway, like curl.
struct CallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "call",
        abstract: "Get a token for one request and make it through the gateway, like curl.",
        discussion: """
            Asks the issuer for a token allowing exactly METHOD:/path (DPoP-bound to DIR/demo-dpop.key
            by default), then sends the request with `Authorization: DPoP <token>` and a fresh DPoP proof.
            The response body goes to stdout; a summary goes to stderr.

              ekey call POST https://localhost:9443/payments -d '{"amount":10}'
              ekey call POST https://localhost:9443/payments -d '{"amount":10}' --replay
              ekey call POST https://localhost:9443/payments -d '{"amount":10}' --save-token t.jwt
              ekey call POST https://localhost:9443/payments -d '{"amount":10}' --token @t.jwt   # refused: used up
              ekey call GET https://localhost:9443/payments/42 --bind mTLS -i

            Exit status: 0 when the (last) answer is 2xx/3xx (with --replay: when the first call
            succeeded and the replay was refused), 1 otherwise.
            """
    )

    @Argument(help: "[METHOD] URL; the method defaults to GET, or POST with -d.")
    var words: [String]

    @Option(name: [.customShort("d"), .long], help: "Request body (`@FILE` reads a file, `-` stdin).")
    var data: String?

    @Option(name: [.customShort("H"), .customLong("header")], help: "Extra header `Name: value` (repeatable).")
    var headers: [String] = []

    @Flag(name: [.customShort("i"), .customLong("include")], help: "Print the status line and response headers before the body.")
    var include = false

    @OptionGroup var client: ClientOptions

    @Option(help: "The action to ask for (default: METHOD:/path of the URL).")
    var action: String?

    @Option(name: .customLong("subcap"), help: "A further action the token allows (repeatable), e.g. GET:/payments/:id.")
    var subcapabilities: [String] = []

    @Option(help: "Audience (default: the gateway route's audience from DIR/stack.yaml).")
    var audience: String?

    @Option(help: "How many calls the token allows.")
    var limit = 1

    @Option(help: "Token lifetime in seconds (default: the policy's maximum).")
    var ttl: Int64?

    @Option(help: "Use this token (or @FILE) instead of asking for one; with the default limit of 1 a used token is refused.")
    var token: String?

    @Option(help: "Send this DPoP proof (or @FILE) instead of a fresh one: shows a replayed proof being refused.")
    var proof: String?

    @Flag(help: "After the call, send the identical request again (same token, same DPoP proof) to see the replay refused.")
    var replay = false

    @Option(help: "Write the token to FILE (mode 0600) for a later --token @FILE or `ekey inspect @FILE`.")
    var saveToken: String?

    func run() async throws {
        try await reportingErrors {
            let (method, url) = try target()
            let body = try data.map { Array(try readArgument($0).utf8) }
            let extraHeaders = try headers.map { line -> (String, String) in
                guard let colon = line.firstIndex(of: ":") else { throw CLIError("-H \(line): write headers as 'Name: value'") }
                return (String(line[..<colon]).trimmingCharacters(in: .whitespaces), String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces))
            }
            let stack = try client.stack()
            let mode = try client.bindingMode()
            let configuration = try client.clientConfiguration(stack: stack)
            let status = try await EKeyClient.withClient(configuration) { sdk -> Int32 in
                let tokenText: String
                if let token {
                    tokenText = try readArgument(token)
                } else {
                    let path = URLComponents(string: url)?.path ?? "/"
                    let requested = action ?? "\(method):\(path.isEmpty ? "/" : path)"
                    guard let audience = audience ?? ClientOptions.audience(for: url, stack: stack) else {
                        throw CLIError("no audience for \(url): pass --audience (the gateway route's audience)")
                    }
                    let issued = try await sdk.token(
                        action: requested, audience: audience, bind: mode, limit: limit, ttl: ttl, subcapabilities: subcapabilities)
                    printError(
                        "ekey: got a \(mode.rawValue)-bound token for \(requested) on \(audience) (limit \(limit), expires in \(issued.expiresIn) s, trace \(issued.trace))")
                    tokenText = issued.token
                }
                if let saveToken {
                    try SecretFile.write(Array((tokenText + "\n").utf8), to: saveToken, overwrite: true)
                }
                var authorization = try sdk.authorization(method, url, token: tokenText, bind: mode)
                if let proof {
                    authorization = authorization.filter { $0.0 != "DPoP" } + [("DPoP", try readArgument(proof))]
                }
                let first: EKeyResponse
                if proof == nil, !replay {
                    first = try await sdk.call(method, url, headers: extraHeaders, body: body, token: tokenText, bind: mode)
                } else {
                    first = try await sdk.send(method, url, headers: authorization + extraHeaders, body: body)
                }
                show(first, method: method, url: url, label: "")
                guard replay else { return first.status < 400 ? 0 : 1 }
                let second = try await sdk.send(method, url, headers: authorization + extraHeaders, body: body)
                show(second, method: method, url: url, label: "replay (same token, same proof): ")
                return first.status < 400 && second.status >= 400 ? 0 : 1
            }
            if status != 0 { throw ExitCode(status) }
        }
    }

    private func target() throws -> (String, String) {
        switch words.count {
        case 1: return (data == nil ? "GET" : "POST", words[0])
        case 2: return (words[0].uppercased(), words[1])
        default: throw CLIError("give [METHOD] URL, e.g. `ekey call POST https://localhost:9443/payments -d '{\"amount\":10}'`")
        }
    }

    private func show(_ response: EKeyResponse, method: String, url: String, label: String) {
        var summary = "ekey: \(label)\(method) \(url) → \(response.status) \(response.reasonPhrase)"
        if let error = response.error { summary += ": \(error)" }
        if let description = response.errorDescription { summary += " (\(description))" }
        printError(summary)
        var out = ""
        if include {
            out += "HTTP/\(response.version == "2.0" ? "2" : response.version) \(response.status) \(response.reasonPhrase)\n"
            for (name, value) in response.headers { out += "\(name): \(value)\n" }
            out += "\n"
        }
        out += response.bodyText
        if !out.hasSuffix("\n") { out += "\n" }
        FileHandle.standardOutput.write(Data(out.utf8))
    }
}
