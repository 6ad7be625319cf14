import Foundation
import Glibc

/// Why nginx could not be used; carries its error log.
public struct NginxFailure: Error, CustomStringConvertible {
    public let description: String

    public init(description: String) {
        self.description = description
    }
}

/// Debian's nginx run by a test on loopback: a site configuration (the content of an
/// `http {}` block, such as docs/authorize.md's) wrapped in a single-process main
/// configuration with its logs and temporary files in `folder`.
public final class Nginx: @unchecked Sendable {
    /// The port the site listens on (the caller wrote it into the site configuration).
    public let port: Int
    private let process = Process()
    private let folder: String

    /// Starts nginx with `site` inside `http {}`; returns once `port` accepts connections.
    public init(site: String, port: Int, folder: String) async throws {
        self.port = port
        self.folder = folder
        try FileManager.default.createDirectory(atPath: folder + "/tmp", withIntermediateDirectories: true)
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
        let path = folder + "/nginx.conf"
        try configuration.write(toFile: path, atomically: true, encoding: .utf8)
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

    /// nginx's error log so far.
    public var errorLog: String {
        (try? String(contentsOfFile: folder + "/error.log", encoding: .utf8)) ?? "(no error log)"
    }

    /// Ends nginx with SIGKILL: a child of the test runner inherits its blocked signals, and
    /// nginx without a master process never unblocks SIGTERM. It keeps no state worth a
    /// graceful stop.
    public func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { stop() }
}
