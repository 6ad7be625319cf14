import AsyncHTTPClient
import EKeyConfig
import EKeyServer
import Logging
import ServiceLifecycle
import Synchronization
import Testing

/// ``ServiceStartup/serve(_:config:logger:shutdownDeadline:signals:)`` closes what a service opened
/// while it was built, last opened first, however the service ends: its build fails after
/// opening them, its parts cannot be made, a part fails while running, or it stops
/// gracefully. The service here opens a real HTTP client (once closed, a second shutdown is
/// refused) between two recorded resources.
@Suite("Service assembly")
struct ServiceAssemblyTests {
    @Test(arguments: ProbeService.Ending.allCases)
    func closesWhatTheServiceOpened(_ ending: ProbeService.Ending) async throws {
        let plan = ProbeService.Plan(ending: ending)
        let outcome: Result<Void, any Error> = await ProbeService.$plan.withValue(plan) {
            do {
                try await ServiceStartup.serve(ProbeService.self, config: StackConfig(), logger: Logger(label: "test"), signals: [])
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        switch (ending, outcome) {
        case (.gracefulStop, .success):
            break
        case (.gracefulStop, .failure(let error)):
            Issue.record("a graceful stop threw \(error)")
        case (_, .success):
            Issue.record("\(ending) did not throw")
        case (_, .failure(let error)):
            #expect("\(error)".contains(ending.rawValue), "\(error)")
        }
        #expect(plan.closed == ["last opened", "first opened"], "closed: \(plan.closed)")
        let client = try #require(plan.client)
        await #expect(throws: HTTPClientError.alreadyShutdown) { try await client.shutdown() }
    }
}

/// A service that opens an HTTP client between two recorded resources when it is built,
/// then ends as its ``Plan`` says.
struct ProbeService: ServiceAssembly {
    enum Ending: String, CaseIterable, Sendable {
        case failedBuild = "the build failed", failedParts = "the parts could not be made", failedRun = "a part failed", gracefulStop
    }

    /// What one test wants, and what the service opened and closed.
    final class Plan: Sendable {
        let ending: Ending
        private let state = Mutex<(client: HTTPClient?, closed: [String])>((nil, []))

        init(ending: Ending) {
            self.ending = ending
        }

        var client: HTTPClient? { state.withLock { $0.client } }
        var closed: [String] { state.withLock { $0.closed } }

        func opened(_ client: HTTPClient) {
            state.withLock { $0.client = client }
        }

        func close(_ name: String) {
            state.withLock { $0.closed.append(name) }
        }
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    @TaskLocal static var plan: Plan?

    static let section = "probe"
    static let summary = "Run a probe that opens resources and ends as its plan says."

    let plan: Plan

    var listeners: ServiceListeners {
        ServiceListeners(host: "127.0.0.1", port: 0, tls: nil, adminHost: "127.0.0.1", adminPort: 0)
    }

    static func settings(from config: StackConfig) throws -> Plan {
        guard let plan else { throw Failure(description: "no plan: run the probe inside ProbeService.$plan.withValue") }
        return plan
    }

    static func assemble(_ plan: Plan, config: StackConfig, logger: Logger, resources: StartupResources) throws -> ProbeService {
        resources.own(plan) { $0.close("first opened") }
        plan.opened(resources.own(HTTPClient(eventLoopGroupProvider: .singleton)))
        resources.own(plan) { $0.close("last opened") }
        if plan.ending == .failedBuild { throw Failure(description: Ending.failedBuild.rawValue) }
        return ProbeService(plan: plan)
    }

    func services(onRunning: @escaping @Sendable (String, Int) async -> Void) throws -> [any Service] {
        if plan.ending == .failedParts { throw Failure(description: Ending.failedParts.rawValue) }
        return [ProbePart(fails: plan.ending == .failedRun)]
    }
}

/// A part that fails at once, or returns at once (which stops the group gracefully).
struct ProbePart: Service {
    let fails: Bool

    func run() async throws {
        if fails { throw ProbeService.Failure(description: ProbeService.Ending.failedRun.rawValue) }
    }
}
