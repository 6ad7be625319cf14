import ArgumentParser
import EKeyServer
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// `ekey demo-api`: the small legacy API `ekey up` puts behind the gateway. It knows
/// nothing of E-Key: it trusts whoever reaches it and echoes the `X-EKey-*` headers the
/// gateway added, so you can see what it was told.
struct DemoAPICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo-api",
        abstract: "Run the demo legacy API (started by `ekey up`).",
        shouldDisplay: false
    )

    @Option(help: "Port on 127.0.0.1.")
    var port = 8080

    func run() async throws {
        // Under `ekey up`: stop when it dies, even by SIGKILL.
        ServiceStartup.exitWithParent(service: "ekey demo-api", environment: ProcessInfo.processInfo.environment)
        let router = Router()
        router.post("/payments") { request, context in try await Self.create(request, context) }
        router.get("/payments/:id") { request, context in try Self.show(request, context) }
        router.get("/") { _, _ in
            Self.json(.ok, ["service": "demo legacy API", "routes": ["POST /payments", "GET /payments/:id"]])
        }
        var logger = Logger(label: "demo-api")
        logger.logLevel = .info
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "demo-legacy-api"),
            logger: logger)
        try await app.runService()
    }

    static func create(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let body = try await request.body.collect(upTo: 1 << 20)
        var answer = echo(request)
        answer["id"] = "pay_" + UUID().uuidString.prefix(8).lowercased()
        answer["status"] = "created"
        if let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] {
            answer["amount"] = object["amount"]
        }
        return json(.created, answer)
    }

    static func show(_ request: Request, _ context: BasicRequestContext) throws -> Response {
        var answer = echo(request)
        answer["id"] = context.parameters.get("id") ?? ""
        answer["status"] = "settled"
        return json(.ok, answer)
    }

    /// What the gateway told the API about the caller (`X-EKey-*`), and the trace context it
    /// passed on (`traceparent`), when there is one.
    static func echo(_ request: Request) -> [String: Any] {
        var seen: [String: String] = [:]
        for field in request.headers
        where field.name.canonicalName.lowercased().hasPrefix("x-ekey-") || field.name.canonicalName.lowercased() == "traceparent" {
            seen[field.name.canonicalName.lowercased()] = field.value
        }
        return ["gateway_said": seen]
    }

    static func json(_ status: HTTPResponse.Status, _ object: [String: Any]) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
