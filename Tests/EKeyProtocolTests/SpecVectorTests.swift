import EKeyProtocol
import Foundation
import Testing

/// docs/spec/vectors/ holds for the code the services run, and is what the generator makes.
///
/// `make spec-vectors` (`EKEY_WRITE_SPEC_VECTORS=1`) rewrites the files, keeping keys.json.
@Suite(.serialized) struct SpecVectorTests {
    @Test func theFilesAreWhatTheGeneratorMakes() throws {
        let existingKeys = try? SpecVectors.Keys(document: SpecVectors.read("keys.json"))
        let keys = existingKeys ?? .generated()
        let generated = try SpecVectors.generate(keys: keys)
        if ProcessInfo.processInfo.environment["EKEY_WRITE_SPEC_VECTORS"] == "1" {
            try SpecVectors.write(generated)
        }
        for file in SpecVectors.fileNames {
            let written = try SpecVectors.read(file)["cases"]!.arrayValue!
            let expected = generated[file]!["cases"]!.arrayValue!
            // Signatures differ on each generation (ES256 is randomised): compare names and verdicts.
            #expect(written.map { $0["name"]! } == expected.map { $0["name"]! }, "\(file): run `make spec-vectors`")
            #expect(written.map { $0["expect"]! } == expected.map { $0["expect"]! }, "\(file): run `make spec-vectors`")
        }
    }

    @Test(arguments: SpecVectors.fileNames) func everyCaseHoldsForTheRealCode(file: String) throws {
        let keys = try SpecVectors.Keys(document: SpecVectors.read("keys.json"))
        let cases = try SpecVectors.read(file)["cases"]!.arrayValue!
        #expect(cases.count >= 4)
        for vector in cases {
            let verdict = try SpecVectors.judge(file, input: vector["input"]!, keys: keys)
            #expect(verdict == vector["expect"]!, "\(file): \(vector["name"]!.stringValue!)")
        }
    }

    @Test func aChangedVerdictIsCaught() throws {
        let keys = try SpecVectors.Keys(document: SpecVectors.read("keys.json"))
        let valid = try SpecVectors.read("tokens.json")["cases"]!.arrayValue!.first!
        var token = Array(valid["input"]!["token"]!.stringValue!.utf8)
        token[token.count - 3] = token[token.count - 3] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let tampered: JSONValue = ["token": .string(String(decoding: token, as: UTF8.self)), "now": valid["input"]!["now"]!]
        #expect(try SpecVectors.judge("tokens.json", input: tampered, keys: keys) == SpecVectors.refusal(.invalidToken))
    }
}
