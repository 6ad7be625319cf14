import EKeyTestSupport
import Foundation

/// Why nginx could not be used; carries its error log.
struct NginxFailure: Error, CustomStringConvertible {
    let description: String
}

/// Debian's nginx run by a test on loopback, with the configuration of docs/authorize.md
/// (the block between its `tested nginx config` markers) where only the addresses and the
/// certificate folder are replaced. Single process (`master_process off`), logs and temporary
/// files in the test's folder.
final class Nginx: @unchecked Sendable {
    let port: Int
    private let process = Process()
    private let folder: String

    /// The nginx block of docs/authorize.md, exactly as the document shows it.
    static func documentedConfiguration() throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let document = try String(contentsOf: root.appendingPathComponent("docs/authorize.md"), encoding: .utf8)
        guard let begin = document.range(of: "<!-- BEGIN tested nginx config -->\n```nginx\n"),
            let end = document.range(of: "```\n<!-- END tested nginx config -->", range: begin.upperBound..<document.endIndex)
        else { throw NginxFailure(description: "docs/authorize.md has no tested nginx config block") }
        return String(document[begin.upperBound..<end.lowerBound])
    }

    /// Starts nginx in front of `upstreamPort`, asking the authorize listener on
    /// `authorizePort`; its TLS files are the harness's `server.crt`, `server.key`, `ca.crt`.
    init(files: TemporaryFiles, authorizePort: Int, upstreamPort: Int) async throws {
        port = try FreePort.pick()
        folder = files.path("nginx")
        try FileManager.default.createDirectory(atPath: folder + "/tmp", withIntermediateDirectories: true)
        var site = try Self.documentedConfiguration()
        for (documented, actual) in [
            ("127.0.0.1:9444", "127.0.0.1:\(authorizePort)"), ("127.0.0.1:8443", "127.0.0.1:\(port)"),
            ("127.0.0.1:3000", "127.0.0.1:\(upstreamPort)"), ("/etc/nginx/ekey/", files.directory.path + "/"),
        ] {
            guard site.contains(documented) else {
                throw NginxFailure(description: "docs/authorize.md's nginx config no longer contains \(documented)")
            }
            site = site.replacingOccurrences(of: documented, with: actual)
        }
        let configuration = """
            daemon off;
            master_process off;
            pid \(folder)/nginx.pid;
            error_log \(folder)/error.log info;
            events { worker_connections 512; }
            http {
                access_log \(folder)/access.log;
                client_body_temp_path \(folder)/tmp/body;
                proxy_temp_path \(folder)/tmp/proxy;
                fastcgi_temp_path \(folder)/tmp/fastcgi;
                uwsgi_temp_path \(folder)/tmp/uwsgi;
                scgi_temp_path \(folder)/tmp/scgi;
            \(site)
            }
            """
        let path = try files.write("nginx/nginx.conf", configuration)
        let binary = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let binary else {
            throw NginxFailure(description: "nginx is not installed; `make deps` installs it (Debian package nginx)")
        }
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["-p", folder, "-c", path, "-e", "\(folder)/error.log"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        for _ in 0..<200 {
            guard process.isRunning else {
                throw NginxFailure(description: "nginx exited with status \(process.terminationStatus): \(errorLog)")
            }
            if ServiceProcess.canConnect(port: port) { return }
            try await Task.sleep(for: .milliseconds(25))
        }
        stop()
        throw NginxFailure(description: "nginx did not listen on \(port) within 5 s: \(errorLog)")
    }

    var errorLog: String {
        (try? String(contentsOfFile: folder + "/error.log", encoding: .utf8)) ?? "(no error log)"
    }

    /// Ends nginx with SIGKILL: a child of the test runner inherits its blocked signals, and
    /// nginx without a master process never unblocks SIGTERM. It keeps no state worth a
    /// graceful stop.
    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { stop() }
}
