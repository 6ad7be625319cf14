import ArgumentParser
import Foundation

/// A failure the user can fix: printed as `error: <message>` on stderr, exit status 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}

/// Writes a line to stderr.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Runs `body`, turning every error into `error: ...` on stderr and exit status 1.
func reportingErrors<R>(_ body: () async throws -> R) async throws -> R {
    do {
        return try await body()
    } catch let exit as ExitCode {
        throw exit
    } catch let error as CleanExit {
        throw error
    } catch {
        printError("error: \(error)")
        throw ExitCode(1)
    }
}

/// Reads a value given inline, as `@FILE`, or `-` for stdin; surrounding whitespace removed.
func readArgument(_ value: String) throws -> String {
    if value == "-" {
        let data = FileHandle.standardInput.readDataToEndOfFile()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
    if value.hasPrefix("@") {
        let path = String(value.dropFirst())
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw CLIError("cannot read \(path); check the path after @")
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
    return value
}
