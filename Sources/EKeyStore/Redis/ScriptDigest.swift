import Crypto

/// SHA-1 of a script body, the name Redis gives it for `EVALSHA` (not used for security).
enum ScriptDigest {
    static func sha1Hex(_ text: String) -> String {
        Insecure.SHA1.hash(data: Array(text.utf8)).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}
