import EKeyConfig
import XCTest

/// Duration and listen-address parsing tables.
final class ParsingTests: XCTestCase {
    func testDurations() {
        let good: [(String, Duration)] = [
            ("500ms", .milliseconds(500)), ("5s", .seconds(5)), ("2m", .seconds(120)), ("24h", .seconds(86_400)),
            ("1h30m", .seconds(5_400)), ("1m30s", .seconds(90)), ("1s500ms", .milliseconds(1_500)), ("30", .seconds(30)),
            ("0", .zero), ("0s", .zero), (" 5s ", .seconds(5)), ("2h0m5s", .seconds(7_205)),
        ]
        for (text, expected) in good {
            XCTAssertEqual(Duration(configText: text), expected, text)
        }
        for text in ["", "5x", "s", "-5s", "1.5s", "5 s", "30m1h", "5s5s", "1d", "5S", "ms", "1h30", "99999999999999999999s", "PT5S"] {
            XCTAssertNil(Duration(configText: text), text)
        }
    }

    func testDurationText() {
        XCTAssertEqual(Duration.seconds(5_400).configText, "1h30m")
        XCTAssertEqual(Duration.milliseconds(500).configText, "500ms")
        XCTAssertEqual(Duration.zero.configText, "0s")
    }

    func testListenAddresses() {
        let good: [(String, String, Int)] = [
            ("0.0.0.0:8443", "0.0.0.0", 8443), ("[::1]:9101", "::1", 9101), ("localhost:1", "localhost", 1),
            ("[::]:65535", "::", 65535),
        ]
        for (text, host, port) in good {
            XCTAssertEqual(ListenAddress(parsing: text), ListenAddress(host: host, port: port), text)
        }
        for text in ["8443", ":8443", "host:", "host:0", "host:65536", "::1:80", "[::1]", "[::1]80", "a b:80", "host:+80", "[]:80"] {
            XCTAssertNil(ListenAddress(parsing: text), text)
        }
    }
}
