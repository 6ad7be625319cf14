import AsyncHTTPClient
import EKeyServer
import EKeyTestSupport
import Foundation
import Glibc
import NIOCore
import NIOHTTP1
import Testing

/// `ekey-issuer`, `ekey-gateway` and `ekey-jwks` as real processes started with a bad stack
/// file: a bad value, a missing or unusable file, or a port already taken ends the process
/// within seconds with a non-zero status and a message naming the config key and the fix,
/// never with a crash. An unreachable publisher is not a start-up failure: the issuer and
/// the gateway start, report not-ready naming the URL's key, and keep retrying.
@Suite("Start-up failures")
struct StartupFailureTests {
    /// What the Swift runtime, its backtracer and AsyncHTTPClient print when a process
    /// dies instead of stopping (compared in lower case).
    static let crashMarkers = ["fatal error", "backtrace", "not shut down", "crash"]

    @Test(arguments: StartupCase.all)
    func failsWithOneClearMessage(_ failure: StartupCase) async throws {
        let stack = try StackFile()
        defer { stack.files.remove() }
        var spoiled = stack
        var held: HeldPort?
        defer { held?.close() }
        if let key = failure.occupies {
            let port = try HeldPort()
            held = port
            spoiled.sections[failure.service, default: [:]][key] = "127.0.0.1:\(port.port)"
        }
        try failure.spoil(&spoiled)
        let path = try spoiled.write()
        let start = ContinuousClock.now
        let process = try ServiceProcess(failure.service.executable, ["--config", path])
        let status = try await process.waitForExit(timeout: .seconds(20))
        let elapsed = ContinuousClock.now - start
        let output = process.output
        #expect(status == ServiceStartup.configurationFailureStatus, "exit status \(status):\n\(output)")
        #expect(elapsed < .seconds(10), "took \(elapsed):\n\(output)")
        let messages = output.split(separator: "\n").filter { $0.hasPrefix("\(failure.service.executable): ") }
        #expect(messages.count == 1, "not one message on stderr:\n\(output)")
        let message = messages.first.map(String.init) ?? ""
        #expect(message.contains(failure.key), "the message does not name \(failure.key):\n\(output)")
        #expect(message.contains(failure.hint), "the message does not say \"\(failure.hint)\":\n\(output)")
        Self.expectNoCrash(output)
    }

    @Test func issuerStartsNotReadyAndRetriesAnUnreachablePublisher() async throws {
        let stack = try StackFile()
        defer { stack.files.remove() }
        let process = try ServiceProcess("ekey-issuer", ["--config", try stack.write()])
        let ports = stack.ports[.issuer]!
        try await process.waitUntilListening(port: ports.admin)
        let readiness = try await Self.get("http://127.0.0.1:\(ports.admin)/readyz")
        #expect(readiness.status == 503, "\(readiness.body)")
        #expect(readiness.body.contains("issuer.publisher.url"), "\(readiness.body)")
        try await Self.waitForOutput(process, containing: "key registration failed; retrying")
        #expect(process.output.contains("issuer.publisher.url"), "\(process.output)")
        #expect(process.isRunning)
        process.signal(SIGTERM)
        #expect(try await process.waitForExit() == 0, "\(process.output)")
        Self.expectNoCrash(process.output)
    }

    @Test func issuerStopsWhenThePublisherRefusesIt() async throws {
        var stack = try StackFile()
        defer { stack.files.remove() }
        stack.sections[.jwks]!["authorized_issuers"] = "[\"spiffe://example.org/someone-else\"]"
        let path = try stack.write()
        let publisher = try ServiceProcess("ekey-jwks", ["--config", path])
        try await publisher.waitUntilListening(port: stack.ports[.jwks]!.listen)
        let issuer = try ServiceProcess("ekey-issuer", ["--config", path])
        let status = try await issuer.waitForExit()
        let output = issuer.output
        #expect(status == ServiceStartup.configurationFailureStatus, "exit status \(status):\n\(output)")
        let message = output.split(separator: "\n").first { $0.hasPrefix("ekey-issuer: ") }.map(String.init) ?? ""
        #expect(message.contains("403"), "\(output)")
        #expect(message.contains("jwks.authorized_issuers"), "\(output)")
        Self.expectNoCrash(output)
        publisher.signal(SIGTERM)
        #expect(try await publisher.waitForExit() == 0, "\(publisher.output)")
    }

    @Test func gatewayStartsNotReadyWithoutItsPublisher() async throws {
        let stack = try StackFile()
        defer { stack.files.remove() }
        let process = try ServiceProcess("ekey-gateway", ["--config", try stack.write()])
        let ports = stack.ports[.gateway]!
        try await process.waitUntilListening(port: ports.listen)
        try await process.waitUntilListening(port: ports.admin)
        let readiness = try await Self.get("http://127.0.0.1:\(ports.admin)/readyz")
        #expect(readiness.status == 503, "\(readiness.body)")
        #expect(readiness.body.contains("gateway.jwks.url"), "\(readiness.body)")
        #expect(!readiness.body.contains("warning:"), "store.url is set: \(readiness.body)")
        #expect(process.isRunning)
        process.signal(SIGTERM)
        #expect(try await process.waitForExit() == 0, "\(process.output)")
        Self.expectNoCrash(process.output)
    }

    /// Without `store.url` the gateway runs on its own memory: it says so at start and in
    /// every `/readyz` answer, because replicas would each count uses on their own.
    @Test func aGatewayWithoutAStoreURLWarnsThatReplicasCountAlone() async throws {
        var stack = try StackFile()
        defer { stack.files.remove() }
        stack.store = ""
        let process = try ServiceProcess("ekey-gateway", ["--config", try stack.write()])
        let ports = stack.ports[.gateway]!
        try await process.waitUntilListening(port: ports.admin)
        let readiness = try await Self.get("http://127.0.0.1:\(ports.admin)/readyz")
        #expect(readiness.body.contains("warning: store.url is not set"), "\(readiness.body)")
        #expect(readiness.body.contains("once per replica"), "\(readiness.body)")
        process.signal(SIGTERM)
        #expect(try await process.waitForExit() == 0, "\(process.output)")
        #expect(process.output.contains("store.url is not set"), "logged at start: \(process.output)")
        Self.expectNoCrash(process.output)
    }

    static func expectNoCrash(_ output: String) {
        let lowered = output.lowercased()
        for marker in crashMarkers {
            #expect(!lowered.contains(marker), "the output shows \"\(marker)\":\n\(output)")
        }
    }

    static func waitForOutput(_ process: ServiceProcess, containing text: String, timeout: Duration = .seconds(15)) async throws {
        let deadline = ContinuousClock.now + timeout
        while !process.output.contains(text) {
            guard ContinuousClock.now < deadline, process.isRunning else {
                throw CLIFailure(description: "no \"\(text)\" in the output of \(process.name):\n\(process.output)")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    static func get(_ url: String) async throws -> (status: Int, body: String) {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            let response = try await client.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
            let body = String(buffer: try await response.body.collect(upTo: 1 << 16))
            try await client.shutdown()
            return (Int(response.status.code), body)
        } catch {
            try? await client.shutdown()
            throw error
        }
    }
}

/// The three services, by the section of the stack file they read.
enum ServiceKind: String, Sendable, CaseIterable {
    case jwks, issuer, gateway

    var executable: String { "ekey-\(rawValue)" }
}

/// One way to spoil a valid stack file, the service that must refuse it, and what its
/// message must say.
struct StartupCase: Sendable, CustomTestStringConvertible {
    let service: ServiceKind
    let name: String
    /// The config key (or file) the message must name.
    let key: String
    /// Words of the fix the message must give.
    let hint: String
    /// A listen key whose port the test holds open while the service starts.
    var occupies: String? = nil
    var spoil: @Sendable (inout StackFile) throws -> Void = { _ in }

    var testDescription: String { "\(service.executable): \(name)" }

    static let all: [StartupCase] = ServiceKind.allCases.flatMap(common) + gateway + issuer

    /// The failures every service shares: its listeners, its TLS files, the store, a duration.
    static func common(_ service: ServiceKind) -> [StartupCase] {
        let section = service.rawValue
        let duration = service == .jwks ? "cache_max_age" : "clock_skew"
        return [
            StartupCase(service: service, name: "listen port in use", key: "\(section).listen", hint: "already in use", occupies: "listen"),
            StartupCase(
                service: service, name: "admin port in use", key: "\(section).admin_listen", hint: "already in use", occupies: "admin_listen"),
            StartupCase(service: service, name: "duration that does not parse", key: "\(section).\(duration)", hint: "is not a duration") {
                $0.sections[service]![duration] = "5 parsecs"
            },
            StartupCase(service: service, name: "store URL with an unknown scheme", key: "store.url", hint: "use memory://") {
                $0.store = "mongodb://127.0.0.1:27017"
            },
            StartupCase(service: service, name: "store URL with a bad port", key: "store.url", hint: "is not a number in 1...65535") {
                $0.store = "redis://127.0.0.1:99999"
            },
            StartupCase(service: service, name: "missing TLS certificate", key: "\(section).tls.cert", hint: "check the path") {
                $0.sections[service]!["tls"] = "{cert: missing.crt, key: server.key, client_ca: ca.crt, client_auth: optional}"
            },
            StartupCase(service: service, name: "missing TLS key", key: "\(section).tls.key", hint: "check the path") {
                $0.sections[service]!["tls"] = "{cert: server.crt, key: missing.key, client_ca: ca.crt, client_auth: optional}"
            },
            StartupCase(service: service, name: "missing client CA", key: "\(section).tls.client_ca", hint: "check the path") {
                $0.sections[service]!["tls"] = "{cert: server.crt, key: server.key, client_ca: missing-ca.crt, client_auth: optional}"
            },
            StartupCase(service: service, name: "TLS key of another certificate", key: "\(section).tls", hint: "does not belong to the certificate") {
                $0.sections[service]!["tls"] = "{cert: server.crt, key: client.key, client_ca: ca.crt, client_auth: optional}"
            },
        ]
    }

    static let gateway: [StartupCase] = [
        StartupCase(service: .gateway, name: "nonce secret of 31 bytes", key: "gateway.dpop.nonce_secret_file", hint: "at least 32 random bytes") {
            try $0.files.write("nonce.key", String(repeating: "n", count: 31))
            $0.sections[.gateway]!["dpop"] = "{nonce: true, nonce_secret_file: nonce.key}"
        },
        StartupCase(service: .gateway, name: "missing nonce secret", key: "gateway.dpop.nonce_secret_file", hint: "check the path") {
            $0.sections[.gateway]!["dpop"] = "{nonce: true, nonce_secret_file: missing-nonce.key}"
        },
        StartupCase(service: .gateway, name: "upstream with an unknown scheme", key: "gateway.routes.0.upstream", hint: "use http://") {
            $0.sections[.gateway]!["routes"] = $0.routes(upstreams: ["ftp://127.0.0.1:21"])
        },
        StartupCase(service: .gateway, name: "missing upstream CA of a second route", key: "upstream_ca", hint: "check the path") {
            $0.sections[.gateway]!["routes"] = $0.routes(upstreams: ["https://127.0.0.1:1", "https://127.0.0.1:2"], cas: ["ca.crt", "missing-ca.crt"])
        },
        StartupCase(service: .gateway, name: "missing publisher CA", key: "gateway.jwks.ca", hint: "check the path") {
            $0.sections[.gateway]!["jwks"] = "{url: \"https://localhost:\($0.ports[.jwks]!.listen)/.well-known/jwks.json\", ca: missing-ca.crt}"
        },
    ]

    static let issuer: [StartupCase] = [
        StartupCase(service: .issuer, name: "missing publisher CA", key: "issuer.publisher.ca", hint: "check the path") {
            $0.sections[.issuer]!["publisher"] = "{url: \"https://localhost:\($0.ports[.jwks]!.listen)\", ca: missing-ca.crt, cert: client.crt, key: client.key}"
        },
        StartupCase(service: .issuer, name: "missing publisher client key", key: "issuer.publisher.key", hint: "check the path") {
            $0.sections[.issuer]!["publisher"] = "{url: \"https://localhost:\($0.ports[.jwks]!.listen)\", ca: ca.crt, cert: client.crt, key: missing.key}"
        },
        StartupCase(service: .issuer, name: "missing signing key file", key: "issuer.signing.key_file", hint: "check the path") {
            $0.sections[.issuer]!["signing"] = "{key_file: missing-signing.key}"
        },
        StartupCase(service: .issuer, name: "signing key file that holds no key", key: "issuer.signing.key_file", hint: "generate one with") {
            try $0.files.write("signing.key", "not a key\n")
            $0.sections[.issuer]!["signing"] = "{key_file: signing.key}"
        },
    ]
}

/// A valid stack file for the three services on free loopback ports, with the development
/// PKI beside it, as sections of `key: value` lines (values in YAML flow form) that a
/// test changes before writing it.
struct StackFile: Sendable {
    struct Ports: Sendable {
        let listen: Int
        let admin: Int
    }

    let files: TemporaryFiles
    let ports: [ServiceKind: Ports]
    var store = "memory://"
    var sections: [ServiceKind: [String: String]] = [:]

    init() throws {
        let pki: DevelopmentPKI
        (files, pki) = try TemporaryFiles.withDevelopmentPKI()
        try files.write("client", pki.issueClient(commonName: "issuer", spiffeID: "spiffe://example.org/ekey/issuer"))
        var ports: [ServiceKind: Ports] = [:]
        for service in ServiceKind.allCases {
            ports[service] = Ports(listen: try FreePort.pick(), admin: try FreePort.pick())
        }
        self.ports = ports
        let tls = TemporaryFiles.serverTLSYAML
        let publisher = "https://localhost:\(ports[.jwks]!.listen)"
        for service in ServiceKind.allCases {
            sections[service] = [
                "listen": "127.0.0.1:\(ports[service]!.listen)", "admin_listen": "127.0.0.1:\(ports[service]!.admin)", "tls": tls,
            ]
        }
        sections[.jwks]!["authorized_issuers"] = "[\"spiffe://example.org/ekey/issuer\"]"
        sections[.jwks]!["cache_max_age"] = "30s"
        sections[.issuer]!["issuer_url"] = "https://localhost:\(ports[.issuer]!.listen)"
        sections[.issuer]!["clock_skew"] = "5s"
        sections[.issuer]!["signing"] = "{alg: ES256}"
        sections[.issuer]!["publisher"] = "{url: \"\(publisher)\", ca: ca.crt, cert: client.crt, key: client.key}"
        sections[.issuer]!["templates"] =
            "[{name: payments, subjects: [\"spiffe://example.org/checkout\"], audiences: [\"https://api.example.com\"], actions: [\"POST:/payments\"], max_limit: 1, max_ttl: 30, binds: [mTLS]}]"
        sections[.gateway]!["issuer"] = "https://localhost:\(ports[.issuer]!.listen)"
        sections[.gateway]!["jwks"] = "{url: \"\(publisher)/.well-known/jwks.json\", ca: ca.crt}"
        sections[.gateway]!["clock_skew"] = "5s"
        sections[.gateway]!["routes"] = routes(upstreams: ["https://127.0.0.1:1"], cas: ["ca.crt"])
    }

    /// A `routes` list with one route per upstream, under `/0`, `/1`, ...
    func routes(upstreams: [String], cas: [String]? = nil) -> String {
        let origin = "https://localhost:\(ports[.gateway]!.listen)"
        let items = upstreams.enumerated().map { index, upstream in
            let ca = cas.map { ", upstream_ca: \($0[index])" } ?? ""
            return "{prefix: /\(index), upstream: \"\(upstream)\", audience: \"https://api.example.com\", public_origin: \"\(origin)\"\(ca)}"
        }
        return "[" + items.joined(separator: ", ") + "]"
    }

    /// Writes `stack.yaml` beside the PKI and returns its path.
    func write() throws -> String {
        var text = store.isEmpty ? "" : "store:\n  url: \"\(store)\"\n"
        for service in ServiceKind.allCases {
            text += "\(service.rawValue):\n"
            for (key, value) in (sections[service] ?? [:]).sorted(by: { $0.key < $1.key }) {
                text += "  \(key): \(value)\n"
            }
        }
        return try files.write("stack.yaml", text)
    }
}
