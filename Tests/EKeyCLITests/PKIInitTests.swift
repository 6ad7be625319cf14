import EKeyTestSupport
import Foundation
import Testing

@Suite("ekey pki init")
struct PKIInitTests {
    @Test("certificates verify with openssl, carry SPIFFE URI SANs, keys are 0600, no silent overwrite")
    func testPKIInit() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let result = try CLI.run(["pki", "init", "--dir", dir, "--trust-domain", "acme.test", "--host", "ekey-issuer", "--host", "10.1.2.3"])
        #expect(result.status == 0, "\(result.all)")

        let expectedSPIFFE = [
            "issuer-client": "spiffe://acme.test/ekey/issuer", "gateway-client": "spiffe://acme.test/ekey/gateway",
            "admin": "spiffe://acme.test/ekey/admin", "workload": "spiffe://acme.test/demo/checkout",
        ]
        for name in ["server", "issuer-client", "gateway-client", "admin", "workload"] {
            let verify = try ExternalCommand("openssl", ["verify", "-CAfile", "\(dir)/ca.crt", "\(dir)/\(name).crt"]).runAllowingFailure()
            #expect(verify.status == 0, "\(name): \(verify.stderr)")
            let san = try ExternalCommand("openssl", ["x509", "-noout", "-ext", "subjectAltName", "-in", "\(dir)/\(name).crt"]).run()
            let text = String(decoding: san.stdout, as: UTF8.self)
            if let id = expectedSPIFFE[name] {
                #expect(text.contains("URI:\(id)"), "\(name): \(text)")
            } else {
                for entry in ["DNS:localhost", "DNS:ekey-issuer", "IP Address:127.0.0.1", "IP Address:10.1.2.3", "IP Address:0:0:0:0:0:0:0:1"] {
                    #expect(text.contains(entry), "server SAN lacks \(entry): \(text)")
                }
            }
        }
        for name in ["ca", "server", "issuer-client", "gateway-client", "admin", "workload"] {
            #expect(CLI.permissions("\(dir)/\(name).key") == 0o600, "\(name).key")
            #expect(FileManager.default.fileExists(atPath: "\(dir)/\(name).crt"))
        }
        #expect(CLI.permissions("\(dir)/dpop-nonce.key") == 0o600)
        #expect((try Data(contentsOf: URL(fileURLWithPath: "\(dir)/dpop-nonce.key"))).count == 48)

        let again = try CLI.run(["pki", "init", "--dir", dir])
        #expect(again.status != 0)
        #expect(again.stderr.contains("--force"), "\(again.all)")
        let forced = try CLI.run(["pki", "init", "--dir", dir, "--force"])
        #expect(forced.status == 0, "\(forced.all)")
    }
}
