public import ConveyorCore
public import ConveyorHTTPClient
import Foundation

/// Graph API batch requests (api-notes §C.1, §C.2): up to 50 operations in one
/// `POST {base}/{version}/` with form fields `access_token`, `include_headers=false` and `batch=[…]`;
/// the answer is an array in the operations' order whose items are `{code, body}` (the body a JSON
/// string to decode again) or `null` when the batch timed out before that operation finished.
public enum GraphBatch {
    /// Meta's cap on operations per batch.
    public static let maxOperations = 50

    /// One operation of a batch.
    public struct Operation: Sendable, Equatable {
        public var method: String
        /// After the host, with the version: `v23.0/120200000001`.
        public var relativeURL: String
        /// For a POST: form fields, encoded as Meta's batch format wants (`daily_budget=2000&status=PAUSED`).
        public var body: [(String, String)]

        public init(method: String, relativeURL: String, body: [(String, String)] = []) {
            self.method = method
            self.relativeURL = relativeURL
            self.body = body
        }

        public static func == (lhs: Operation, rhs: Operation) -> Bool {
            lhs.method == rhs.method && lhs.relativeURL == rhs.relativeURL && lhs.body.elementsEqual(rhs.body) { $0 == $1 }
        }
    }

    /// What became of one operation.
    public enum ItemResult: Sendable, Equatable {
        /// A 2xx answer and its decoded body.
        case success(status: Int, body: JSONValue)
        /// An error answer, its Graph error when it carries one.
        case failure(status: Int, error: GraphError?, excerpt: String)
        /// `null`: the batch timed out first; it may or may not have been applied.
        case unknown
    }

    /// The form body of a batch call (the authentication first, then `include_headers` and `batch`).
    public static func formBody(_ operations: [Operation], authentication: [(String, String)]) -> [UInt8] {
        let items: [JSONValue] = operations.map { operation in
            var item: [String: JSONValue] = ["method": .string(operation.method), "relative_url": .string(operation.relativeURL)]
            if !operation.body.isEmpty { item["body"] = .string(formEncode(operation.body)) }
            return .object(item)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let batch = (try? encoder.encode(JSONValue.array(items))).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
        return Array(formEncode(authentication + [("include_headers", "false"), ("batch", batch)]).utf8)
    }

    /// The request of a batch call.
    public static func request(_ operations: [Operation], version: String, authentication: [(String, String)]) -> UpstreamRequest {
        UpstreamRequest(
            method: "POST", path: "/\(version)/", headers: [("Content-Type", "application/x-www-form-urlencoded")],
            body: formBody(operations, authentication: authentication))
    }

    /// `application/x-www-form-urlencoded`, spaces as `%20` (both are accepted; this one is unambiguous).
    public static func formEncode(_ fields: [(String, String)]) -> String {
        fields.map { "\(Upstream.formEncode($0.0))=\(Upstream.formEncode($0.1))" }.joined(separator: "&")
    }

    /// The per-operation results of a batch answer, or nil when it is not an array of `count` items
    /// (HTML, a truncated body, a Graph error for the whole call).
    public static func results(_ response: UpstreamResponse, count: Int) -> [ItemResult]? {
        guard let array = (try? JSONSerialization.jsonObject(with: Data(response.body), options: [.fragmentsAllowed])) as? [Any], array.count == count else {
            return nil
        }
        return array.map { item in
            guard let item = item as? [String: Any], let status = (item["code"] as? NSNumber)?.intValue else { return .unknown }
            let text = (item["body"] as? String) ?? ""
            let body = (try? JSONParser.parse(text)) ?? .null
            if (200..<300).contains(status) { return .success(status: status, body: body) }
            let error = GraphError(body: Array(text.utf8))
            return .failure(status: status, error: error, excerpt: FailureRecord.storable(GraphRedaction.redact(text), limit: 300))
        }
    }
}
