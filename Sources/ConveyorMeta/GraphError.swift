public import ConveyorHTTPClient
import Foundation

/// A Graph API error object (`{"error": {"message", "type", "code", "error_subcode", "fbtrace_id",
/// "is_transient", …}}`, api-notes §C.4), parsed once and classified the same way by every Meta kind.
public struct GraphError: Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var type: String?
    public var code: Int
    public var subcode: Int?
    public var userMessage: String?
    public var fbtraceID: String?
    public var isTransient: Bool

    public init(message: String, type: String? = nil, code: Int, subcode: Int? = nil, userMessage: String? = nil, fbtraceID: String? = nil, isTransient: Bool = false) {
        self.message = message
        self.type = type
        self.code = code
        self.subcode = subcode
        self.userMessage = userMessage
        self.fbtraceID = fbtraceID
        self.isTransient = isTransient
    }

    /// The error object of a Graph answer's body, or nil when it holds none.
    public init?(body: [UInt8]) {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] else { return nil }
        self.init(object: object)
    }

    /// The error object of a decoded Graph answer (`{"error": {...}}`), or nil.
    public init?(object: [String: Any]) {
        guard let error = object["error"] as? [String: Any] else { return nil }
        message = GraphRedaction.redact((error["message"] as? String) ?? "(no message)")
        type = error["type"] as? String
        code = (error["code"] as? NSNumber)?.intValue ?? 0
        subcode = (error["error_subcode"] as? NSNumber)?.intValue
        userMessage = (error["error_user_msg"] as? String).map(GraphRedaction.redact)
        fbtraceID = error["fbtrace_id"] as? String
        isTransient = (error["is_transient"] as? Bool) ?? false
    }

    public var description: String {
        var text = "Meta error \(code)"
        if let subcode { text += "/\(subcode)" }
        text += ": \(message)"
        if let userMessage, !userMessage.isEmpty, userMessage != message { text += " (\(userMessage))" }
        if let fbtraceID { text += " [fbtrace_id \(fbtraceID)]" }
        return text
    }

    /// The throttling codes (api-notes §C.3): 4, 17, 32, 341, 613 and the business-use-case codes 80000–80014.
    public static func isThrottling(code: Int) -> Bool {
        [4, 17, 32, 341, 613].contains(code) || (80000...80014).contains(code)
    }

    /// What to do about it.
    public var classification: GraphErrorClass {
        if Self.isThrottling(code: code) { return .throttled }
        // 1 unknown and 2 service: temporary downtime; 368: temporarily blocked, wait and retry.
        if isTransient || [1, 2, 368].contains(code) { return .transient }
        // 190 token, 102 session, 10 and 200–299 permissions, 3 capability, 100 parameter, 506 duplicate,
        // and everything else Meta refuses: a retry sends the same thing again.
        return .permanent
    }
}

/// How a Graph error is handled.
public enum GraphErrorClass: String, Sendable, Equatable {
    /// Too many calls: pause the key (pixel, ad account) until Meta's estimate; no attempt spent.
    case throttled
    /// Meta's side: retry with backoff.
    case transient
    /// Needs a fix (token, permission, parameter): dead with Meta's message.
    case permanent
}

/// How long Meta asks a throttled caller to wait, from its usage headers (api-notes §C.3).
public enum GraphUsage {
    /// The largest `estimated_time_to_regain_access` (minutes) in `X-Business-Use-Case-Usage`, as a
    /// duration, or nil when the header is absent, malformed or says 0.
    public static func regainAccess(headers: [(name: String, value: String)]) -> Duration? {
        guard let header = headers.first(where: { $0.name.caseInsensitiveCompare("X-Business-Use-Case-Usage") == .orderedSame })?.value,
            let object = (try? JSONSerialization.jsonObject(with: Data(header.utf8))) as? [String: Any]
        else { return nil }
        var minutes = 0
        for case let entries as [[String: Any]] in object.values {
            for entry in entries {
                minutes = max(minutes, (entry["estimated_time_to_regain_access"] as? NSNumber)?.intValue ?? 0)
            }
        }
        return minutes > 0 ? .seconds(min(minutes, 24 * 60) * 60) : nil
    }
}

/// Keeps Meta's secrets out of text: `access_token=…` and `appsecret_proof=…` values in URLs, forms
/// and messages become `[redacted]`.
public enum GraphRedaction {
    public static func redact(_ text: String) -> String {
        var result = text
        for name in ["access_token", "appsecret_proof", "client_secret"] {
            var searchStart = result.startIndex
            while let range = result.range(of: name + "=", options: .caseInsensitive, range: searchStart..<result.endIndex) {
                let valueEnd = result[range.upperBound...].firstIndex { "&\" \n,;'}".contains($0) } ?? result.endIndex
                result.replaceSubrange(range.upperBound..<valueEnd, with: "[redacted]")
                searchStart = result.index(range.upperBound, offsetBy: "[redacted]".count)
            }
        }
        return result
    }
}

/// A Graph call's failure, classified.
public struct GraphFailure: Error, Sendable, CustomStringConvertible {
    public var classification: GraphErrorClass
    public var message: String
    /// For throttling: how long Meta asks to wait, when it says.
    public var retryAfter: Duration?
    public var error: GraphError?

    public init(classification: GraphErrorClass, message: String, retryAfter: Duration? = nil, error: GraphError? = nil) {
        self.classification = classification
        self.message = message
        self.retryAfter = retryAfter
        self.error = error
    }

    public var description: String { message }

    /// Classifies a Graph answer that is not a success: its error object when it has one, else by
    /// status (5xx transient, 429 throttled, other 4xx permanent), with a body excerpt.
    public static func classify(_ response: UpstreamResponse, what: String) -> GraphFailure {
        let wait = GraphUsage.regainAccess(headers: response.headers)
        if let error = GraphError(body: response.body) {
            return GraphFailure(classification: error.classification, message: "\(what): HTTP \(response.status), \(error)", retryAfter: wait, error: error)
        }
        let excerpt = GraphRedaction.redact(response.excerpt)
        let text = "\(what): HTTP \(response.status) without a Graph error object: \(excerpt.isEmpty ? "(empty body)" : excerpt)"
        switch response.status {
        case 429: return GraphFailure(classification: .throttled, message: text, retryAfter: wait)
        case 500...: return GraphFailure(classification: .transient, message: text)
        default: return GraphFailure(classification: response.status < 300 ? .transient : .permanent, message: text)
        }
    }
}
