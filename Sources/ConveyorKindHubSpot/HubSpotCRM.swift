public import ConveyorCore
public import ConveyorHTTPClient
public import Foundation
import Synchronization

/// The few HubSpot CRM v3 calls the deal kind makes, through an ``Upstream`` (pooled, timed out,
/// breaker-guarded), with `Authorization: Bearer $HUBSPOT_ACCESS_TOKEN`.
public final class HubSpotCRM: Sendable {
    public struct Deal: Sendable, Equatable {
        public var id: String
        public var amount: Double?
        public var currency: String?
        public var closeDate: Date?
        public var stage: String?
        public var pipeline: String?
        public var contactIDs: [String]
    }

    public struct Contact: Sendable, Equatable {
        public var id: String
        public var properties: [String: String]
    }

    /// A failed call, classified for the job.
    public enum Failure: Error, Sendable, CustomStringConvertible {
        /// Retry (5xx, timeout, garbage answer, 429).
        case transient(String, retryAfter: Duration?)
        /// The token or the request is wrong: retrying changes nothing.
        case permanent(String)
        /// No such object.
        case notFound(String)
        /// The breaker is open.
        case circuitOpen(until: Date)

        public var description: String {
            switch self {
            case .transient(let message, _), .permanent(let message), .notFound(let message): message
            case .circuitOpen(let until): "the hubspot circuit breaker is open until \(RFC3339.format(until))"
            }
        }
    }

    let upstream: Upstream
    let token: String
    let clock: any ConveyorClock
    /// Won stage ids per pipeline, with the time they were read (cached for 5 minutes).
    private let wonStages = Mutex<(read: Date, stages: Set<String>)?>(nil)
    private static let cacheLifetime: TimeInterval = 300

    public init(upstream: Upstream, token: String, clock: any ConveyorClock = SystemClock()) {
        self.upstream = upstream
        self.token = token
        self.clock = clock
    }

    /// Whether `stage` is a won stage: `closedwon` (the default pipeline), or a stage whose metadata says
    /// `isClosed` "true" and probability 1.0 in `GET /crm/v3/pipelines/deals` (read at most every 5 minutes).
    public func isWon(stage: String) async throws(Failure) -> Bool {
        if stage == "closedwon" { return true }
        let now = clock.now()
        if let cached = wonStages.withLock({ $0 }), now.timeIntervalSince(cached.read) < Self.cacheLifetime {
            return cached.stages.contains(stage)
        }
        let object = try await get("/crm/v3/pipelines/deals", what: "deal pipelines")
        var won: Set<String> = []
        for case let pipeline as [String: Any] in (object["results"] as? [Any]) ?? [] {
            for case let stageObject as [String: Any] in (pipeline["stages"] as? [Any]) ?? [] {
                guard let id = stageObject["id"] as? String, let metadata = stageObject["metadata"] as? [String: Any] else { continue }
                let closed = "\(metadata["isClosed"] ?? "")".lowercased() == "true"
                let probability = Double("\(metadata["probability"] ?? "")") ?? 0
                if closed && probability >= 1.0 { won.insert(id) }
            }
        }
        wonStages.withLock { $0 = (now, won) }
        return won.contains(stage)
    }

    /// `GET /crm/v3/objects/deals/{id}` with the amount, currency, close date, stage, pipeline and contacts.
    public func deal(_ id: String) async throws(Failure) -> Deal {
        let object = try await get(
            "/crm/v3/objects/deals/\(id)",
            query: [("properties", "amount,deal_currency_code,closedate,dealstage,pipeline"), ("associations", "contacts")], what: "deal \(id)")
        let properties = (object["properties"] as? [String: Any]) ?? [:]
        func text(_ name: String) -> String? {
            guard let value = properties[name], !(value is NSNull) else { return nil }
            let string = "\(value)".trimmingCharacters(in: .whitespaces)
            return string.isEmpty ? nil : string
        }
        var contacts: [String] = []
        if let associations = object["associations"] as? [String: Any], let group = associations["contacts"] as? [String: Any] {
            for case let result as [String: Any] in (group["results"] as? [Any]) ?? [] {
                if let contact = result["id"] { contacts.append("\(contact)") }
            }
        }
        return Deal(
            id: "\(object["id"] ?? id)", amount: text("amount").flatMap(Double.init), currency: text("deal_currency_code"),
            closeDate: text("closedate").flatMap(Self.parseDate), stage: text("dealstage"), pipeline: text("pipeline"), contactIDs: contacts)
    }

    /// `POST /crm/v3/objects/contacts/batch/read` for `ids` (at most 100 per call).
    public func contacts(_ ids: [String]) async throws(Failure) -> [Contact] {
        var found: [Contact] = []
        var start = 0
        while start < ids.count {
            let slice = ids[start..<min(start + 100, ids.count)]
            start += 100
            let body: [String: Any] = [
                "properties": ["email", "phone", "firstname", "lastname", "city", "zip", "country"],
                "inputs": slice.map { ["id": $0] },
            ]
            let bytes = Array((try? JSONSerialization.data(withJSONObject: body)) ?? Data())
            let object = try await call(.json(path: "/crm/v3/objects/contacts/batch/read", headers: auth, body: bytes), what: "contacts batch read")
            for case let result as [String: Any] in (object["results"] as? [Any]) ?? [] {
                var properties: [String: String] = [:]
                for (name, value) in (result["properties"] as? [String: Any]) ?? [:] where !(value is NSNull) {
                    properties[name] = "\(value)"
                }
                found.append(Contact(id: "\(result["id"] ?? "")", properties: properties))
            }
        }
        return found
    }

    private var auth: [(String, String)] { [("Authorization", "Bearer \(token)"), ("Accept", "application/json")] }

    private func get(_ path: String, query: [(String, String)] = [], what: String) async throws(Failure) -> [String: Any] {
        try await call(UpstreamRequest(path: path, query: query, headers: auth), what: what)
    }

    private func call(_ request: UpstreamRequest, what: String) async throws(Failure) -> [String: Any] {
        let response: UpstreamResponse
        do {
            response = try await upstream.send(request)
        } catch .circuitOpen(_, let until) {
            throw .circuitOpen(until: until)
        } catch {
            throw .transient("HubSpot \(what): \(error)", retryAfter: nil)
        }
        let said = response.excerpt
        switch response.status {
        case 200..<300:
            guard let object = response.jsonObject else { throw .transient("HubSpot \(what): HTTP \(response.status) but not a JSON object: \(said)", retryAfter: nil) }
            return object
        case 404:
            throw .notFound("HubSpot \(what): not found")
        case 401, 403:
            throw .permanent("HubSpot \(what): HTTP \(response.status) (check HUBSPOT_ACCESS_TOKEN and its scopes): \(said)")
        case 429:
            let wait = response.header("Retry-After").flatMap(Double.init).map { Duration.seconds(min(max($0, 1), 600)) } ?? .seconds(10)
            throw .transient("HubSpot \(what): rate limited (429)", retryAfter: wait)
        case 500...:
            throw .transient("HubSpot \(what): HTTP \(response.status): \(said)", retryAfter: nil)
        default:
            throw .permanent("HubSpot \(what): HTTP \(response.status): \(said)")
        }
    }

    /// HubSpot's dates: ISO 8601 with or without fractional seconds, or epoch milliseconds.
    static func parseDate(_ text: String) -> Date? {
        if let millis = Double(text) { return Date(timeIntervalSince1970: millis / 1000) }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withFullDate]
        return formatter.date(from: text)
    }
}
