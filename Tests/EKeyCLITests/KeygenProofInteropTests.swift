import EKeyTestSupport
import Foundation
import Testing

/// `ekey keygen` + `ekey proof`, checked by joserfc (an independent JOSE implementation).
@Suite("ekey keygen and proof interop")
struct KeygenProofInteropTests {
    static let verifier = #"""
        import base64, hashlib, json, sys, time, warnings
        warnings.simplefilter("ignore")
        from joserfc import jws
        from joserfc.jwk import import_key, ECKey, OKPKey
        key_path, proof, token, url, alg = sys.argv[1:6]
        pem = open(key_path, "rb").read()
        key = ECKey.import_key(pem) if alg == "ES256" else OKPKey.import_key(pem)
        result = jws.deserialize_compact(proof, key, algorithms=[alg])
        header, claims = result.headers(), json.loads(result.payload)
        expected_ath = base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()
        embedded = import_key(header["jwk"])
        print(json.dumps({
            "typ": header["typ"], "alg": header["alg"], "htm": claims["htm"], "htu": claims["htu"],
            "ath_ok": claims["ath"] == expected_ath, "fresh": abs(claims["iat"] - time.time()) < 60,
            "jwk_matches": embedded.thumbprint() == key.thumbprint(), "thumbprint": key.thumbprint(),
            "private_in_header": "d" in header["jwk"],
        }))
        """#

    @Test("a proof made by ekey verifies in joserfc", arguments: ["ES256", "EdDSA"])
    func testProofVerifiesInJoserfc(alg: String) throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let keyPath = "\(dir)/dpop.key"
        let keygen = try CLI.run(["keygen", "--out", keyPath, "--alg", alg])
        #expect(keygen.status == 0, "\(keygen.all)")
        #expect(CLI.permissions(keyPath) == 0o600)
        let thumbprint = keygen.stdout.split(separator: "\n").first { $0.hasPrefix("thumbprint: ") }.map { String($0.dropFirst(12)) }
        #expect(try CLI.run(["keygen", "--out", keyPath]).status != 0, "keygen must not overwrite without --force")

        let token = "eyJhbGciOiJFUzI1NiJ9.e30.token-for-ath"
        let url = "https://localhost:9443/payments"
        let proof = try CLI.run(["proof", "--key", keyPath, "--method", "POST", "--url", url + "?q=1", "--token", token])
        #expect(proof.status == 0, "\(proof.all)")
        let output = try ExternalCommand.python(["-c", Self.verifier, keyPath, proof.stdout.trimmingCharacters(in: .whitespacesAndNewlines), token, url, alg]).run()
        let report = try #require(try JSONSerialization.jsonObject(with: output.stdout) as? [String: Any])
        #expect(report["typ"] as? String == "dpop+jwt")
        #expect(report["alg"] as? String == alg)
        #expect(report["htm"] as? String == "POST")
        #expect(report["htu"] as? String == url)
        #expect(report["ath_ok"] as? Bool == true)
        #expect(report["fresh"] as? Bool == true)
        #expect(report["jwk_matches"] as? Bool == true)
        #expect(report["private_in_header"] as? Bool == false)
        #expect(report["thumbprint"] as? String == thumbprint)

        let inspected = try CLI.run(["inspect", proof.stdout.trimmingCharacters(in: .whitespacesAndNewlines)])
        #expect(inspected.status == 0)
        #expect(inspected.stdout.contains("DPoP proof"), "\(inspected.all)")
    }
}
