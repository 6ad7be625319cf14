public import EKeyServer
public import Foundation

/// A fresh folder under the system temporary directory, for the files a test writes (the
/// development PKI, stack files, a server's data); ``remove()`` deletes it.
public struct TemporaryFiles: Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// The folder.
    public let directory: URL

    /// Creates the folder, named `<prefix>-<UUID>`.
    public init(prefix: String = "ekey-test") throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    /// Writes `contents` to `name` and returns the path.
    @discardableResult
    public func write(_ name: String, _ contents: String) throws -> String {
        let url = directory.appendingPathComponent(name)
        try contents.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    /// The path of `name` in the folder.
    public func path(_ name: String) -> String {
        directory.appendingPathComponent(name).path
    }

    /// Writes `issued` as `<name>.crt` and `<name>.key`.
    public func write(_ name: String, _ issued: DevelopmentPKI.Issued) throws {
        try write("\(name).crt", issued.certificatePEM)
        try write("\(name).key", issued.privateKeyPEM)
    }

    /// Removes the folder.
    public func remove() {
        try? FileManager.default.removeItem(at: directory)
    }
}
