import Crypto
public import Foundation

/// HubSpot's request signatures (api-notes §A.1–A.3): v3 (HMAC-SHA256, base64, over method + URI + body
/// + timestamp, at most 5 minutes old), checked first; v1 and v2 (hex SHA-256) only when no v3 is sent.
public enum HubSpotSignature {
    /// How old a v3 timestamp may be.
    public static let maxAge: TimeInterval = 300

    public enum Verdict: Sendable, Equatable {
        case valid(version: String)
        case invalid(String)
    }

    /// `hex(SHA-256(secret + body))`.
    public static func v1(secret: String, body: [UInt8]) -> String {
        hex(SHA256.hash(data: Array(secret.utf8) + body))
    }

    /// `hex(SHA-256(secret + method + uri + body))`.
    public static func v2(secret: String, method: String, uri: String, body: [UInt8]) -> String {
        hex(SHA256.hash(data: Array((secret + method + uri).utf8) + body))
    }

    /// `base64(HMAC-SHA256(secret, method + uri + body + timestamp))`, `uri` with HubSpot's escapes decoded.
    public static func v3(secret: String, method: String, uri: String, body: [UInt8], timestamp: String) -> String {
        let message = Array((method + decodeV3(uri)).utf8) + body + Array(timestamp.utf8)
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: Array(secret.utf8)))
        return Data(mac).base64EncodedString()
    }

    /// Checks a delivery's signature headers against `secret`.
    public static func verify(
        secret: String, method: String, uri: String, body: [UInt8], now: Date, header: (String) -> String?
    ) -> Verdict {
        if let signature = header("X-HubSpot-Signature-v3") {
            guard let timestamp = header("X-HubSpot-Request-Timestamp"), let millis = Double(timestamp) else {
                return .invalid("v3 signature without a usable X-HubSpot-Request-Timestamp")
            }
            let age = now.timeIntervalSince1970 - millis / 1000
            guard age < maxAge else { return .invalid("timestamp is \(Int(age)) s old (at most \(Int(maxAge)) s)") }
            // A framework that decodes `+` as a space in header values breaks base64: undo it.
            let given = signature.replacingOccurrences(of: " ", with: "+")
            let expected = v3(secret: secret, method: method, uri: uri, body: body, timestamp: timestamp)
            return constantTimeEqual(given, expected) ? .valid(version: "v3") : .invalid("v3 signature does not match")
        }
        guard let signature = header("X-HubSpot-Signature") else { return .invalid("no signature header") }
        switch header("X-HubSpot-Signature-Version")?.lowercased() ?? "v1" {
        case "v1":
            return constantTimeEqual(signature.lowercased(), v1(secret: secret, body: body)) ? .valid(version: "v1") : .invalid("v1 signature does not match")
        case "v2":
            let expected = v2(secret: secret, method: method, uri: uri, body: body)
            return constantTimeEqual(signature.lowercased(), expected) ? .valid(version: "v2") : .invalid("v2 signature does not match")
        case let other:
            return .invalid("unknown signature version \(other)")
        }
    }

    /// Decodes only the escapes HubSpot decodes before signing v3 (`%3A`, `%2F`, `%3F`, `%40`, `%21`,
    /// `%24`, `%27`, `%28`, `%29`, `%2A`, `%2C`, `%3B`, any case); everything else stays as sent.
    static func decodeV3(_ uri: String) -> String {
        let table: [String: String] = [
            "3A": ":", "2F": "/", "3F": "?", "40": "@", "21": "!", "24": "$", "27": "'", "28": "(", "29": ")", "2A": "*", "2C": ",", "3B": ";",
        ]
        var result = ""
        var rest = Substring(uri)
        while let percent = rest.firstIndex(of: "%") {
            result += rest[..<percent]
            let code = rest[rest.index(after: percent)...].prefix(2)
            if code.count == 2, let decoded = table[code.uppercased()] {
                result += decoded
                rest = rest[rest.index(percent, offsetBy: 3)...]
            } else {
                result += "%"
                rest = rest[rest.index(after: percent)...]
            }
        }
        return result + rest
    }

    static func hex(_ digest: SHA256.Digest) -> String {
        digest.map { String(format: "%02x", $0) }.joined()
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let (x, y) = (Array(a.utf8), Array(b.utf8))
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for index in 0..<max(x.count, y.count) {
            difference |= (index < x.count ? x[index] : 0) ^ (index < y.count ? y[index] : 0)
        }
        return difference == 0
    }
}
