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
        let events: [[String: Any]]
        do {
            events = try Self.events(request.body)
        } catch {
            logger.warning("HubSpot delivery is not a batch of events", metadata: ["reason": "\(error.description)"])
            return answer(.init(status: 400, body: "\(error.description)\n"), "bad_request")
        }
        let jobs = events.map(Self.job)
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

    /// The body's events: a JSON array of 1–100 objects.
    static func events(_ body: [UInt8]) throws(BadDelivery) -> [[String: Any]] {
        guard let value = try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed]) else {
            throw BadDelivery(description: "the body is not JSON")
        }
        guard let array = value as? [Any] else { throw BadDelivery(description: "the body is not a JSON array of events") }
        guard array.count <= maxEvents else { throw BadDelivery(description: "\(array.count) events; HubSpot sends at most \(maxEvents)") }
        var events: [[String: Any]] = []
        for (index, item) in array.enumerated() {
            guard let event = item as? [String: Any] else { throw BadDelivery(description: "event \(index) is not an object") }
            events.append(event)
        }
        return events
    }

    /// The fields that say which change an event is; `eventId` is not unique, so it is not one of them.
    static func dedupeKey(_ event: [String: Any]) -> String {
        let type = event["subscriptionType"] ?? event["eventType"]
        return ["portalId", "", "objectId", "propertyName", "propertyValue", "occurredAt"].map { name -> String in
            let value = name.isEmpty ? type : event[name]
            return value.map { "\($0)" } ?? ""
        }.joined(separator: "|")
    }

    static func job(_ event: [String: Any]) -> NewJob {
        let args = (try? JSONSerialization.data(withJSONObject: event, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        let key = dedupeKey(event)
        return NewJob(kind: DealEventJob.kind, args: args, tags: ["hubspot"], id: StableID.make("hubspot:\(key)"))
    }
}
