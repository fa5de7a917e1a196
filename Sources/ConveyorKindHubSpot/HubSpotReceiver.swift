public import ConveyorCore
public import ConveyorPostgres
import Foundation
public import Logging
import Metrics

/// `POST /hooks/hubspot`: HubSpot's webhook deliveries in, one `hubspot.deal_event` job per event, in
/// one statement, straight into PostgreSQL (no Redis), answered 204 well inside HubSpot's 5 seconds.
///
/// - The signature is checked first (``HubSpotSignature``, key `HUBSPOT_CLIENT_SECRET`): a bad or
///   missing one, or a stale timestamp, is 401 and stores nothing.
/// - Not JSON, not an array of objects, or more than 100 events: 400. Over 1 MiB: 413 (the server
///   answers from `Content-Length`).
/// - Each job's id is derived from the event's dedupe key (portal, subscription type, object,
///   property name and value, occurredAt; `eventId` is not unique), so a re-delivery inserts nothing.
/// - The database unreachable: 503, and HubSpot delivers again later.
///
/// Outcomes are counted in `conveyor_hook_deliveries_total{hook="hubspot", outcome}`.
public struct HubSpotReceiver: WebHook {
    public let path = "/hooks/hubspot"
    public let maxBodyBytes = 1 << 20
    /// HubSpot sends at most 100 events per request.
    public static let maxEvents = 100

    let store: PostgresJobStore
    let secret: String
    let clock: any ConveyorClock
    let maxAttempts: @Sendable (String) -> Int
    let logger: Logger

    public init(
        store: PostgresJobStore, secret: String, clock: any ConveyorClock = SystemClock(), logger: Logger = Logger(label: "conveyor.hooks.hubspot"),
        maxAttempts: @escaping @Sendable (String) -> Int = { _ in RetryPolicy.defaultMaxAttempts }
    ) {
        self.store = store
        self.secret = secret
        self.clock = clock
        self.logger = logger
        self.maxAttempts = maxAttempts
    }

    public func receive(_ request: WebHookRequest) async -> WebHookResponse {
        var logger = self.logger
        logger[metadataKey: "client"] = "\(request.client)"
        guard request.method == "POST" else { return answer(.init(status: 405, body: "POST only\n"), "method") }
        guard request.body.count <= maxBodyBytes else { return answer(.init(status: 413, body: "body over \(maxBodyBytes) bytes\n"), "too_large") }
        let verdict = HubSpotSignature.verify(
            secret: secret, method: request.method, uri: request.publicURL, body: request.body, now: clock.now(), header: request.header)
        guard case .valid = verdict else {
            if case .invalid(let reason) = verdict {
                logger.warning("HubSpot delivery refused", metadata: ["reason": "\(reason)", "url": "\(request.publicURL)"])
            }
            return answer(.init(status: 401, body: "signature check failed\n"), "unauthorized")
        }
        let events: [(fields: [String: JSONValue], text: String)]
        do {
            events = try Self.events(request.body)
        } catch {
            logger.warning("HubSpot delivery is not a batch of events", metadata: ["reason": "\(error.description)"])
            return answer(.init(status: 400, body: "\(error.description)\n"), "bad_request")
        }
        let jobs = events.map { Self.job($0.fields, text: $0.text) }
        do {
            let result = try await store.insert(jobs, maxAttempts: maxAttempts)
            logger.info(
                "HubSpot delivery stored",
                metadata: ["events": "\(events.count)", "inserted": "\(result.inserted.count)", "duplicates": "\(result.duplicates)"])
            return answer(.init(status: 204), "stored")
        } catch {
            logger.error("HubSpot delivery not stored", metadata: ["error": "\(ConveyorStoreError.describe(error))"])
            return answer(.init(status: 503, body: "not stored; deliver again\n"), "unavailable")
        }
    }

    private func answer(_ response: WebHookResponse, _ outcome: String) -> WebHookResponse {
        Counter(label: "conveyor_hook_deliveries_total", dimensions: [("hook", "hubspot"), ("outcome", outcome)]).increment()
        return response
    }

    public struct BadDelivery: Error, CustomStringConvertible {
        public var description: String
    }

    /// The body's events: a JSON array of at most 100 objects, each with its exact text (stored as the
    /// job's args as HubSpot sent it; parsed by ConveyorCore's parser, not Foundation's: at 200
    /// deliveries a second, JSONSerialization's sorted re-encoding was most of a core).
    static func events(_ body: [UInt8]) throws(BadDelivery) -> [(fields: [String: JSONValue], text: String)] {
        let data = Data(body)
        let parsed: (elements: [JSONValue], raw: [Range<Int>])?
        do {
            parsed = try JSONParser.parseArrayKeepingRaw(data)
        } catch {
            throw BadDelivery(description: "the body is not JSON: \(error)")
        }
        guard let (elements, raw) = parsed else { throw BadDelivery(description: "the body is not a JSON array of events") }
        guard elements.count <= maxEvents else { throw BadDelivery(description: "\(elements.count) events; HubSpot sends at most \(maxEvents)") }
        var events: [(fields: [String: JSONValue], text: String)] = []
        for (index, element) in elements.enumerated() {
            guard case .object(let fields) = element else { throw BadDelivery(description: "event \(index) is not an object") }
            events.append((fields, String(decoding: body[raw[index]], as: UTF8.self)))
        }
        return events
    }

    /// The fields that say which change an event is; `eventId` is not unique, so it is not one of them.
    static func dedupeKey(_ event: [String: JSONValue]) -> String {
        let type = event["subscriptionType"] ?? event["eventType"]
        return ["portalId", "", "objectId", "propertyName", "propertyValue", "occurredAt"].map { name -> String in
            switch name.isEmpty ? type : event[name] {
            case .string(let text)?: text
            case .integer(let number)?: String(number)
            case .number(let number)?: number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)
            case .bool(let flag)?: String(flag)
            default: ""
            }
        }.joined(separator: "|")
    }

    static func job(_ event: [String: JSONValue], text: String) -> NewJob {
        NewJob(kind: DealEventJob.kind, args: text, tags: ["hubspot"], id: StableID.make("hubspot:\(dedupeKey(event))"))
    }
}
