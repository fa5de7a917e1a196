import Crypto
import Foundation

/// Meta's normalisation and hashing of customer information, as its business SDK does it
/// (`facebook_business/adobjects/serverside/normalize.py`, api-notes §B.4): trim and lowercase, then
/// per field; SHA-256, lowercase hex. A value that already looks hashed passes through; a value that
/// does not normalise (an e-mail without `@`, a phone with no country code) is dropped, not sent.
public enum UserDataHashing {
    /// The fields this normaliser knows.
    public enum Field: String, Sendable, CaseIterable {
        case em, ph, fn, ln, ct, st, zp, country, externalID = "external_id"
    }

    /// The normalised form of `value` for `field`, or nil when it is not valid for it.
    public static func normalize(_ value: String, as field: Field) -> String? {
        var text = value.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        guard !text.isEmpty else { return nil }
        if isHashed(text) { return text }
        switch field {
        case .em:
            guard text.range(of: #"^[a-z0-9_.+-]+@[a-z0-9-]+\.[a-z0-9-.]+$"#, options: .regularExpression) != nil else { return nil }
        case .ph:
            text.removeAll { " -()".contains($0) }
            if text.hasPrefix("+") { text.removeFirst() }
            for _ in 0..<2 where text.hasPrefix("0") { text.removeFirst() }
            guard text.range(of: #"^[1-9][0-9]{6,14}$"#, options: .regularExpression) != nil else { return nil }
        case .fn, .ln:
            text.removeAll { $0.isPunctuation && $0 != "-" && $0 != "'" }
        case .ct, .st:
            text.removeAll { $0.isNumber || " .-()".contains($0) }
        case .zp:
            text.removeAll { $0.isWhitespace }
            text = String(text.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
        case .country:
            text.removeAll { !$0.isLetter }
            guard text.count == 2, text.allSatisfy({ $0.isASCII }) else { return nil }
        case .externalID:
            break
        }
        return text.isEmpty ? nil : text
    }

    /// SHA-256 of the normalised value, lowercase hex; a value already hashed is kept as it is.
    public static func hash(_ value: String, as field: Field) -> String? {
        guard let normalized = normalize(value, as: field) else { return nil }
        return isHashed(normalized) ? normalized : sha256Hex(normalized)
    }

    /// Lowercase hex SHA-256 of a string's UTF-8 bytes.
    public static func sha256Hex(_ text: String) -> String {
        SHA256.hash(data: Array(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// Whether it looks like an MD5 or SHA-256 hex digest already.
    public static func isHashed(_ text: String) -> Bool {
        (text.utf8.count == 64 || text.utf8.count == 32) && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }
}

/// `appsecret_proof`: lowercase hex HMAC-SHA256 of the access token, keyed by the app secret (Graph
/// API "Securing requests").
public enum AppSecretProof {
    public static func make(token: String, appSecret: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array(token.utf8), using: SymmetricKey(data: Array(appSecret.utf8)))
        return mac.map { String(format: "%02x", $0) }.joined()
    }
}
