import ArgumentParser
import AsyncHTTPClient
import Dispatch
import EKeyClient
import EKeyConfig
import EKeyServer
import Foundation
import NIOCore
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#endif

/// `ekey up`: the local stack in one command (docs/cli.md).
struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Run the local stack: publisher, issuer, gateway and a demo legacy API, with a dev PKI in .ekey/.",
        discussion: """
            Creates, when missing, DIR/pki/ (`ekey pki init`), DIR/demo-dpop.key (a DPoP key registered
            with the issuer as client "demo") and DIR/stack.yaml; starts ekey-jwks, ekey-issuer and
            ekey-gateway (found next to this ekey binary) and the demo API on 127.0.0.1, waits until
            each is ready, prints the endpoints and a command to try, and streams their logs prefixed
            [jwks] [issuer] [gateway] [api]. Ctrl-C or SIGTERM stops every child and exits 0.

            Every port can also be set by environment: EKEY_UP_ISSUER_PORT, EKEY_UP_GATEWAY_PORT,
            EKEY_UP_JWKS_PORT, EKEY_UP_UPSTREAM_PORT, EKEY_UP_ISSUER_ADMIN_PORT,
            EKEY_UP_GATEWAY_ADMIN_PORT, EKEY_UP_JWKS_ADMIN_PORT; and EKEY_UP_STORE, EKEY_UP_DIR.

            --authorize also opens the gateway's verify-only listener (gateway.authorize, plaintext on
            127.0.0.1, answering loopback callers only) and prints an nginx configuration that puts
            the demo API behind nginx auth_request (docs/authorize.md).
            """
    )

    @Option(help: "Usage store URL: memory:// (embedded, default) or redis://host:port. Env: EKEY_UP_STORE.")
    var store: String?

    @Option(help: "Folder for the PKI, the demo key and stack.yaml (default .ekey). Env: EKEY_UP_DIR.")
    var dir: String?

    @Option(help: "Issuer TLS port (default 8443).") var issuerPort: Int?
    @Option(help: "Gateway TLS port (default 9443).") var gatewayPort: Int?
    @Option(help: "JWKS publisher TLS port (default 7443).") var jwksPort: Int?
    @Option(help: "Demo legacy API port (default 8080).") var upstreamPort: Int?
    @Option(help: "Issuer admin port (default 9101).") var issuerAdminPort: Int?
    @Option(help: "Gateway admin port (default 9102).") var gatewayAdminPort: Int?
    @Option(help: "JWKS publisher admin port (default 9103).") var jwksAdminPort: Int?

    @Flag(help: "Also open the gateway's authorize listener for a proxy in front (verify-only mode) and print an nginx config for it.")
    var authorize = false
    @Option(help: "Authorize listener port with --authorize (default 9444). Env: EKEY_UP_AUTHORIZE_PORT.") var authorizePort: Int?

    @Option(help: "SPIFFE trust domain of a new PKI.")
    var trustDomain = "example.org"

    @Option(help: "Seconds to wait for each service to become ready.")
    var readyTimeout = 60

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        func port(_ flag: Int?, _ variable: String, _ fallback: Int) throws -> Int {
            if let flag {
                guard (1...65535).contains(flag) else {
                    let name = "--" + variable.dropFirst("EKEY_UP_".count).lowercased().replacingOccurrences(of: "_", with: "-")
                    throw ValidationError("\(name) \(flag) is not a port number (1-65535)")
                }
                return flag
            }
            guard let text = environment[variable] else { return fallback }
            guard let value = Int(text), (1...65535).contains(value) else {
                throw CLIError("\(variable)=\(text) is not a port number (1-65535)")
            }
            return value
        }
        let defaults = StackPorts()
        let ports = try StackPorts(
            issuer: port(issuerPort, "EKEY_UP_ISSUER_PORT", defaults.issuer),
            gateway: port(gatewayPort, "EKEY_UP_GATEWAY_PORT", defaults.gateway),
            jwks: port(jwksPort, "EKEY_UP_JWKS_PORT", defaults.jwks),
            upstream: port(upstreamPort, "EKEY_UP_UPSTREAM_PORT", defaults.upstream),
            issuerAdmin: port(issuerAdminPort, "EKEY_UP_ISSUER_ADMIN_PORT", defaults.issuerAdmin),
            gatewayAdmin: port(gatewayAdminPort, "EKEY_UP_GATEWAY_ADMIN_PORT", defaults.gatewayAdmin),
            jwksAdmin: port(jwksAdminPort, "EKEY_UP_JWKS_ADMIN_PORT", defaults.jwksAdmin),
            authorize: authorize ? port(authorizePort, "EKEY_UP_AUTHORIZE_PORT", StackPorts.defaultAuthorize) : nil)
        if authorizePort != nil && !authorize {
            throw ValidationError("--authorize-port needs --authorize")
        }
        let stack = Stack(
            layout: StackLayout(dir ?? environment["EKEY_UP_DIR"] ?? StackLayout.defaultDirectory),
            ports: ports, store: store ?? environment["EKEY_UP_STORE"] ?? "memory://", trustDomain: trustDomain,
            readyTimeout: .seconds(readyTimeout))
        let status = await stack.run()
        if status != 0 { throw ExitCode(status) }
    }
}

/// Runs the local stack: prepares files, starts and watches the children, stops them.
final class Stack: @unchecked Sendable {
    let layout: StackLayout
    let requestedPorts: StackPorts
    let store: String
    let trustDomain: String
    let readyTimeout: Duration

    private let lock = NSLock()
    private var children: [ChildProcess] = []
    private var stopReason: String?
    private var signalSources: [any DispatchSourceSignal] = []
    private let events: AsyncStream<String>
    private let eventSink: AsyncStream<String>.Continuation

    init(layout: StackLayout, ports: StackPorts, store: String, trustDomain: String, readyTimeout: Duration) {
        self.layout = layout
        self.requestedPorts = ports
        self.store = store
        self.trustDomain = trustDomain
        self.readyTimeout = readyTimeout
        let (stream, continuation) = AsyncStream.makeStream(of: String.self)
        events = stream
        eventSink = continuation
    }

    /// Runs until a signal or a child's exit; returns the exit status.
    func run() async -> Int32 {
        installSignalHandlers()
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        let status = await run(http: http)
        try? await http.shutdown()
        return status
    }

    private func run(http: HTTPClient) async -> Int32 {
        do {
            let config = try prepare()
            try await start(config, http: http)
        } catch {
            let reason = lock.withLock { stopReason }
            if reason?.hasPrefix("signal") == true {
                log("\(reason ?? ""): stopping the stack")
            } else {
                log("error: \(error)")
            }
            await stopAll()
            return reason?.hasPrefix("signal") == true ? 0 : 1
        }
        for await event in events {
            log(event)
            break
        }
        let reason = lock.withLock { stopReason } ?? ""
        await stopAll()
        return reason.hasPrefix("signal") ? 0 : 1
    }

    // MARK: Files

    struct Prepared {
        var config: StackConfig
        var edited: Bool
    }

    private func prepare() throws -> Prepared {
        let manager = FileManager.default
        try manager.createDirectory(atPath: layout.directory, withIntermediateDirectories: true)
        if !manager.fileExists(atPath: layout.caPath) {
            try PKIWriter(directory: layout.pkiDirectory, trustDomain: trustDomain, hosts: [], days: 365).write(force: false)
            log("created the development PKI in \(layout.pkiDirectory)")
        }
        let demoKeyExisted = manager.fileExists(atPath: layout.demoKeyPath)
        let demoKey = try DPoPKey.loadOrCreate(path: layout.demoKeyPath)
        if !demoKeyExisted { log("created the demo DPoP key \(layout.demoKeyPath) (thumbprint \(demoKey.thumbprint))") }
        let edited = layout.exists && !layout.isGenerated
        if edited {
            log("using your edited \(layout.configPath) as is (flags for ports and store do not apply)")
        } else {
            let text = StackFile.render(ports: requestedPorts, store: store, trustDomain: trustDomain, demoThumbprint: demoKey.thumbprint)
            try Data(text.utf8).write(to: URL(fileURLWithPath: layout.configPath))
        }
        return Prepared(config: try layout.load(), edited: edited)
    }

    // MARK: Children

    private struct Role {
        let name: String
        let executable: String
        let arguments: [String]
        typealias Listener = (port: Int, what: String, flag: String, variable: String)
        let listeners: [Listener]
        let readyURL: String?
    }

    private func roles(_ prepared: Prepared) throws -> [Role] {
        let config = prepared.config
        guard let jwks = config.jwks, let issuer = config.issuer, let gateway = config.gateway else {
            throw CLIError("\(layout.configPath) needs the jwks, issuer and gateway sections; delete it and run `ekey up` again")
        }
        let binaries = Self.binaryDirectory()
        let configArguments = ["--config", layout.configPath]
        let upstream = gateway.routes.first?.upstream
        let upstreamPort = upstream?.port ?? requestedPorts.upstream
        var roles: [Role] = []
        if upstream?.host == "127.0.0.1" || upstream?.host == "localhost" {
            roles.append(
                Role(
                    name: "api", executable: Self.selfExecutable(), arguments: ["demo-api", "--port", "\(upstreamPort)"],
                    listeners: [(upstreamPort, "the demo API", "--upstream-port", "EKEY_UP_UPSTREAM_PORT")], readyURL: nil))
        }
        /// A service's role: its executable beside `ekey`, its two listeners with the
        /// `--<section>-port` and `--<section>-admin-port` flags (`EKEY_UP_<SECTION>_PORT`, ...)
        /// that move them, ready once its admin listener's `/readyz` answers.
        func service<Section: ServiceSection>(_ section: Section, _ title: String, more: [Role.Listener] = []) -> Role {
            let variable = "EKEY_UP_\(Section.name.uppercased())"
            return Role(
                name: Section.name, executable: binaries + "/ekey-\(Section.name)", arguments: configArguments,
                listeners: [
                    (section.listen.port, title, "--\(Section.name)-port", "\(variable)_PORT"),
                    (section.adminListen.port, "\(title)'s admin listener", "--\(Section.name)-admin-port", "\(variable)_ADMIN_PORT"),
                ] + more, readyURL: "http://127.0.0.1:\(section.adminListen.port)/readyz")
        }
        let authorize = gateway.authorize.map { [($0.listen.port, "the gateway's authorize listener", "--authorize-port", "EKEY_UP_AUTHORIZE_PORT")] } ?? []
        roles += [service(jwks, "the JWKS publisher"), service(issuer, "the issuer"), service(gateway, "the gateway", more: authorize)]
        for role in roles where !FileManager.default.isExecutableFile(atPath: role.executable) {
            throw CLIError(
                "\(role.executable) not found: ekey up runs the services next to the ekey binary; build them with "
                    + "`make up` (or `swift build`, which builds every product)")
        }
        var seen: [Int: String] = [:]
        for role in roles {
            for listener in role.listeners {
                if let other = seen[listener.port] {
                    throw CLIError("port \(listener.port) is set for both \(other) and \(listener.what); change one with \(listener.flag) N")
                }
                seen[listener.port] = listener.what
                if !Self.isFree(port: listener.port) {
                    let fix = prepared.edited
                        ? "edit the port in \(layout.configPath)"
                        : "pass \(listener.flag) N or set \(listener.variable)=N"
                    throw CLIError("port \(listener.port) for \(listener.what) is already in use (another `ekey up`?); \(fix)")
                }
            }
        }
        return roles
    }

    private func start(_ prepared: Prepared, http: HTTPClient) async throws {
        let roles = try roles(prepared)
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("EKEY_UP_") && $0.key != "EKEY_CONFIG" }
        environment["EKEY_CONFIG"] = nil
        // Each child asks to be killed when this process dies (ServiceStartup.exitWithParent).
        environment[ServiceStartup.parentVariable] = String(getpid())
        for role in roles {
            try checkStopped()
            let child = ChildProcess(name: role.name, executable: role.executable, arguments: role.arguments, environment: environment) {
                [weak self] child in self?.childExited(child)
            }
            lock.withLock { children.append(child) }
            try await child.start()
            log("started \(role.name) (\((role.executable as NSString).lastPathComponent), pid \(child.pid))")
            if let readyURL = role.readyURL {
                try await waitReady(child, url: readyURL, http: http)
            } else {
                for listener in role.listeners { try await waitListening(child, port: listener.port) }
            }
            log("\(role.name) is ready")
        }
        try checkStopped()
        printBanner(prepared.config)
    }

    private func checkStopped() throws {
        if let reason = lock.withLock({ stopReason }) { throw CLIError("stopped during start-up: \(reason)") }
    }

    private func waitReady(_ child: ChildProcess, url: String, http: HTTPClient) async throws {
        let deadline = ContinuousClock.now + readyTimeout
        while ContinuousClock.now < deadline {
            try checkStopped()
            guard child.isRunning else { throw exitedEarly(child) }
            var request = HTTPClientRequest(url: url)
            request.method = .GET
            if let response = try? await http.execute(request, timeout: .seconds(2)) {
                _ = try? await response.body.collect(upTo: 1 << 16)
                if response.status.code == 200 { return }
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw CLIError("\(child.name) was not ready within \(readyTimeout) (\(url)); its last lines are above, raise --ready-timeout if it is just slow")
    }

    private func waitListening(_ child: ChildProcess, port: Int) async throws {
        let deadline = ContinuousClock.now + readyTimeout
        while ContinuousClock.now < deadline {
            try checkStopped()
            guard child.isRunning else { throw exitedEarly(child) }
            if !Self.isFree(port: port) { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw CLIError("\(child.name) did not listen on port \(port) within \(readyTimeout)")
    }

    private func exitedEarly(_ child: ChildProcess) -> CLIError {
        CLIError("\(child.name) exited with status \(child.process.terminationStatus) during start-up; its log is above (prefixed [\(child.name)])")
    }

    /// A child ended: stop the stack, unless a signal (Ctrl-C reaches the children too) is
    /// what ended it; that signal gets a moment to arrive first.
    private func childExited(_ child: ChildProcess) {
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { [weak self] in self?.childExitSettled(child) }
    }

    private func childExitSettled(_ child: ChildProcess) {
        let first: Bool = lock.withLock {
            guard stopReason == nil else { return false }
            stopReason = "\(child.name) exited with status \(child.process.terminationStatus)"
            return true
        }
        if first { eventSink.yield("\(child.name) exited with status \(child.process.terminationStatus); stopping the stack") }
    }

    private func installSignalHandlers() {
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { [weak self] in
                guard let self else { return }
                let name = signalNumber == SIGINT ? "SIGINT" : "SIGTERM"
                let first: Bool = self.lock.withLock {
                    guard self.stopReason == nil else { return false }
                    self.stopReason = "signal \(name)"
                    return true
                }
                if first { self.eventSink.yield("\(name) received; stopping the stack") }
            }
            source.resume()
            signalSources.append(source)
        }
    }

    /// SIGTERM to every child (last started first), SIGKILL after 10 s, and wait for each.
    private func stopAll() async {
        let all = lock.withLock { () -> [ChildProcess] in
            if stopReason == nil { stopReason = "stopping" }
            return children
        }
        for child in all.reversed() where child.isRunning { child.signal(SIGTERM) }
        let deadline = ContinuousClock.now + .seconds(10)
        while all.contains(where: \.isRunning), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        for child in all where child.isRunning {
            log("\(child.name) did not stop within 10 s; killing it")
            child.signal(SIGKILL)
        }
        while all.contains(where: \.isRunning) {
            try? await Task.sleep(for: .milliseconds(20))
        }
        try? await Task.sleep(for: .milliseconds(100))
        log("stopped \(all.count) processes")
    }

    // MARK: Output

    private func log(_ text: String) {
        OutputLock.shared.write("[up] \(text)\n")
    }

    private func printBanner(_ config: StackConfig) {
        let ekey = Self.commandName()
        let directoryFlag = layout.directory == StackLayout.defaultDirectory ? "" : " --dir \(layout.directory)"
        let gatewayPort = config.gateway?.listen.port ?? requestedPorts.gateway
        let origin = config.gateway?.routes.first?.publicOrigin.absoluteString ?? "https://localhost:\(gatewayPort)"
        let base = origin.hasSuffix("/") ? String(origin.dropLast()) : origin
        let upstream = config.gateway?.routes.first?.upstream.absoluteString ?? ""
        let text = """

            E-Key is running (store \(config.store.url)); Ctrl-C stops it.
              gateway  https://localhost:\(gatewayPort)  → demo API \(upstream)
              issuer   \(config.issuer?.issuerURL.absoluteString ?? "")/token
              jwks     https://localhost:\(config.jwks?.listen.port ?? 0)/.well-known/jwks.json
              admin    metrics/healthz/readyz on 127.0.0.1:\(config.jwks?.adminListen.port ?? 0) (jwks), \
            :\(config.issuer?.adminListen.port ?? 0) (issuer), :\(config.gateway?.adminListen.port ?? 0) (gateway)
              files    \(layout.configPath), \(layout.pkiDirectory)/, \(layout.demoKeyPath)

            Try it (in another terminal):
              \(ekey) call\(directoryFlag) POST \(base)/payments -d '{"amount":10}'
            and see a replayed request refused:
              \(ekey) call\(directoryFlag) POST \(base)/payments -d '{"amount":10}' --replay


            """
        OutputLock.shared.write(text)
        if let gateway = config.gateway, let authorize = gateway.authorize {
            OutputLock.shared.write(authorizeBanner(gateway, authorize))
        }
    }

    /// The authorize listener and an nginx config that uses it for the demo API (docs/authorize.md).
    private func authorizeBanner(_ gateway: GatewayConfig, _ authorize: AuthorizeConfig) -> String {
        let folder = URL(fileURLWithPath: layout.pkiDirectory).standardizedFileURL.path
        let upstream = gateway.routes.first?.upstream.absoluteString ?? "http://127.0.0.1:\(requestedPorts.upstream)"
        let origin = gateway.routes.first?.publicOrigin.absoluteString ?? ""
        let snippet = AuthorizeSnippets.nginx(
            authorize: authorize.listen.description, listen: "127.0.0.1:\(StackPorts.nginxExample)", upstream: upstream, certificateFolder: folder)
        return """
            Verify-only mode: the gateway answers proxies on http://\(authorize.listen) (trusted: \
            \(authorize.trustedClients.map(\.description).joined(separator: ", "))).
            An nginx config for it (inside http {}; docs/authorize.md explains each line). DPoP proofs name the
            route's public_origin (\(origin)): to call through nginx with DPoP, set gateway.routes[0].public_origin
            to https://localhost:\(StackPorts.nginxExample) in \(layout.configPath) (and delete its first line).

            \(snippet)

            """
    }

    // MARK: Helpers

    /// This process's executable.
    static func selfExecutable() -> String {
        if let resolved = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return resolved }
        return Bundle.main.executablePath ?? CommandLine.arguments[0]
    }

    /// The folder of this `ekey` binary, where `ekey-jwks`, `ekey-issuer`, `ekey-gateway` live.
    static func binaryDirectory() -> String {
        (selfExecutable() as NSString).deletingLastPathComponent
    }

    /// How the user should type `ekey`: relative to the working directory when possible.
    static func commandName() -> String {
        let typed = CommandLine.arguments[0]
        guard typed.contains("/") else { return typed }
        let executable = typed.hasPrefix("/") ? typed : selfExecutable()
        let cwd = FileManager.default.currentDirectoryPath
        if !typed.hasPrefix("/") { return typed.hasPrefix("./") ? String(typed.dropFirst(2)) : typed }
        if executable.hasPrefix(cwd + "/") { return String(executable.dropFirst(cwd.count + 1)) }
        return executable
    }

    /// Whether a listener could bind 127.0.0.1:`port` now.
    static func isFree(port: Int) -> Bool {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { return true }
        defer { close(socket) }
        var yes: Int32 = 1
        setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
