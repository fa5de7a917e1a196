public import ConveyorCore
public import ConveyorHTTPClient
public import ConveyorMeta
public import Foundation
import Logging

/// `meta.capi_event`: one server event for Meta's Conversions API, sent with up to 1,000 others per
/// `POST {META_GRAPH_BASE_URL}/{META_API_VERSION}/{pixel}/events` (api-notes §B).
///
/// Args: `{"event": {event_name, event_time, event_id, action_source, user_data, custom_data}, "pixel_id":
/// optional}`; `user_data` hashed already (the producer hashes, ``UserDataHashing``). Producers set the
/// job's limit key to ``MetaSettings/pixelKey(_:)`` so a throttled pixel holds every worker off.
///
/// - An event older than 7 days (or more than a minute ahead) fails permanently before sending: Meta
///   would reject the whole batch for it.
/// - Meta rejects a whole batch for one invalid event: the batch is split in halves until the invalid
///   event is alone, so only its job fails, permanently, with Meta's message.
/// - Throttling (4, 17, 32, 341, 613, 80000–80014, HTTP 429) pauses the pixel's key until
///   `estimated_time_to_regain_access` or ``CAPISettings/defaultThrottle``; no attempt is spent.
/// - 5xx, timeouts and `is_transient` retry with backoff; other Graph errors are permanent.
/// - While the Meta circuit breaker is open the jobs snooze (no attempt spent).
public struct CAPIEventJob: ChunkHandler {
    public struct Args: Codable, Sendable {
        public var event: JSONValue
        public var pixelID: String?

        enum CodingKeys: String, CodingKey {
            case event
            case pixelID = "pixel_id"
        }

        public init(event: JSONValue, pixelID: String? = nil) {
            self.event = event
            self.pixelID = pixelID
        }
    }

    public static let kind = "meta.capi_event"
    /// The oldest `event_time` Meta accepts: 7 days.
    public static let maxAge: TimeInterval = 7 * 24 * 3600
    /// Meta's cap on events per request.
    public static let maxBatch = 1000

    public let settings: CAPISettings
    let upstream: Upstream
    let clock: any ConveyorClock

    public init(settings: CAPISettings, clock: any ConveyorClock = SystemClock(), upstream: Upstream? = nil) {
        self.settings = settings
        self.clock = clock
        self.upstream = upstream ?? Upstream(settings.meta.upstream(timeout: settings.timeout), clock: clock, logger: Logger(label: "conveyor.meta"))
    }

    public var options: JobKindOptions { JobKindOptions(timeout: .seconds(120), retry: settings.retry) }

    public var chunk: ChunkOptions { ChunkOptions(size: Self.maxBatch, linger: settings.linger) }

    public func run(_ jobs: [ChunkItem<Args>], context: ChunkContext) async throws -> [UUID: ChunkResult] {
        var results: [UUID: ChunkResult] = [:]
        var byPixel: [String: [(id: UUID, event: JSONValue)]] = [:]
        let now = clock.now()
        for job in jobs {
            if let problem = Self.problem(with: job.args.event, now: now) {
                results[job.id] = .permanent(problem)
                continue
            }
            guard let pixel = job.args.pixelID ?? settings.meta.pixelID else {
                results[job.id] = .failed("no pixel: set META_PIXEL_ID or the job's pixel_id")
                continue
            }
            guard pixel.allSatisfy(\.isNumber), !pixel.isEmpty else {
                results[job.id] = .permanent("pixel_id must be digits, got \(pixel)")
                continue
            }
            byPixel[pixel, default: []].append((job.id, job.args.event))
        }
        for (pixel, events) in byPixel.sorted(by: { $0.key < $1.key }) {
            guard settings.meta.authentication() != nil else {
                for event in events { results[event.id] = .failed("META_ACCESS_TOKEN is not set") }
                continue
            }
            await send(events, pixel: pixel, into: &results, logger: context.logger)
        }
        return results
    }

    /// Sends `events` to `pixel`; on a rejection that names no throttling, authentication or Meta's
    /// own trouble, halves the batch until the culprit is alone.
    private func send(_ events: [(id: UUID, event: JSONValue)], pixel: String, into results: inout [UUID: ChunkResult], logger: Logger) async {
        let outcome = await post(events.map(\.event), pixel: pixel)
        switch outcome {
        case .accepted(let received, let trace):
            let result = ChunkResult.outcome(.completedWithResult(json: Self.result(pixel: pixel, received: received, batch: events.count, trace: trace)))
            for event in events { results[event.id] = result }
            logger.debug("conversions sent", metadata: ["pixel": "\(pixel)", "events": "\(events.count)", "fbtrace_id": "\(trace ?? "")"])
        case .rejected(let message) where events.count > 1:
            logger.info("Meta rejected a batch; halving it to find the invalid event", metadata: ["pixel": "\(pixel)", "events": "\(events.count)", "error": "\(message)"])
            let half = events.count / 2
            await send(Array(events[..<half]), pixel: pixel, into: &results, logger: logger)
            await send(Array(events[half...]), pixel: pixel, into: &results, logger: logger)
        case .rejected(let message), .permanent(let message):
            for event in events { results[event.id] = .permanent(message) }
        case .throttled(let until, let message):
            for event in events { results[event.id] = .throttled(key: MetaSettings.pixelKey(pixel), until: until, message) }
        case .transient(let message):
            for event in events { results[event.id] = .failed(message) }
        case .circuitOpen(let until):
            let wait = max(until.timeIntervalSince(clock.now()), 0.1)
            for event in events { results[event.id] = .outcome(.snooze(.milliseconds(Int64(wait * 1000)))) }
        }
    }

    enum PostOutcome {
        case accepted(received: Int, trace: String?)
        /// The batch was refused for its content (an invalid event somewhere in it).
        case rejected(String)
        /// Refused for something no event can fix (token, permission): every event fails.
        case permanent(String)
        case throttled(until: Date, String)
        case transient(String)
        case circuitOpen(until: Date)
    }

    private func post(_ events: [JSONValue], pixel: String) async -> PostOutcome {
        var body: [String: JSONValue] = ["data": .array(events)]
        if let code = settings.meta.testEventCode { body["test_event_code"] = .string(code) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let bytes = (try? encoder.encode(JSONValue.object(body))).map(Array.init) ?? []
        let path = "/\(settings.meta.apiVersion)/\(pixel)/events"
        let what = "CAPI POST \(path) (\(events.count) events)"
        let response: UpstreamResponse
        do {
            response = try await upstream.send(.json(path: path, query: settings.meta.authentication() ?? [], body: bytes))
        } catch .circuitOpen(_, let until) {
            return .circuitOpen(until: until)
        } catch {
            return .transient(GraphRedaction.redact(error.description))
        }
        if (200..<300).contains(response.status) {
            guard let object = response.jsonObject, let received = (object["events_received"] as? NSNumber)?.intValue else {
                return .transient("\(what): HTTP \(response.status) but not the events_received object: \(GraphRedaction.redact(response.excerpt))")
            }
            if received != events.count {
                return .transient("\(what): Meta received \(received) of \(events.count) events")
            }
            return .accepted(received: received, trace: object["fbtrace_id"] as? String)
        }
        let failure = GraphFailure.classify(response, what: what)
        switch failure.classification {
        case .throttled:
            return .throttled(until: clock.now().addingTimeInterval((failure.retryAfter ?? settings.defaultThrottle).seconds), failure.message)
        case .transient:
            return .transient(failure.message)
        case .permanent:
            // Token, permission and capability errors are nobody's event: all fail, no halving.
            if let code = failure.error?.code, code == 190 || code == 102 || code == 10 || code == 3 || (200...299).contains(code) {
                return .permanent(failure.message)
            }
            return .rejected(failure.message)
        }
    }

    /// Why Meta would refuse this event before it is sent, or nil.
    static func problem(with event: JSONValue, now: Date) -> String? {
        guard case .object(let fields) = event else { return "event must be a JSON object" }
        guard case .string(let name)? = fields["event_name"], !name.isEmpty else { return "event.event_name is required" }
        let time: Double
        switch fields["event_time"] {
        case .integer(let value)?: time = Double(value)
        case .number(let value)?: time = value
        default: return "event.event_time (Unix seconds) is required"
        }
        if time < now.timeIntervalSince1970 - maxAge {
            return "event_time \(Int(time)) is more than 7 days old: Meta would reject the whole batch for it"
        }
        if time > now.timeIntervalSince1970 + 60 { return "event_time \(Int(time)) is in the future" }
        guard case .string? = fields["action_source"] else { return "event.action_source is required" }
        guard case .object(let userData)? = fields["user_data"], !userData.isEmpty else { return "event.user_data must be a non-empty object" }
        return nil
    }

    static func result(pixel: String, received: Int, batch: Int, trace: String?) -> String {
        var object: [String: JSONValue] = ["pixel_id": .string(pixel), "events_received": .integer(Int64(received)), "batch": .integer(Int64(batch))]
        if let trace { object["fbtrace_id"] = .string(trace) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(JSONValue.object(object))).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}

/// `meta.capi_event`'s settings.
public struct CAPISettings: Sendable {
    public var meta: MetaSettings
    /// Per request: 1.5 s, as Meta recommends (`CAPI_TIMEOUT_MS`).
    public var timeout: Duration
    /// How long a throttled pixel waits when Meta gives no estimate. Default 5 minutes.
    public var defaultThrottle: Duration
    /// How long a partial batch waits to fill. Default 1 s.
    public var linger: Duration
    /// Attempts and backoff for 5xx, timeouts and transient errors. Default 12 attempts, from 5 s doubling to 30 minutes.
    public var retry: RetryPolicy

    public init(
        meta: MetaSettings = MetaSettings(), timeout: Duration = .milliseconds(1500), defaultThrottle: Duration = .seconds(300), linger: Duration = .seconds(1),
        retry: RetryPolicy = RetryPolicy(maxAttempts: 12, backoff: RetryPolicy.exponential(base: .seconds(5), cap: .seconds(1800)))
    ) {
        self.meta = meta
        self.timeout = timeout
        self.defaultThrottle = defaultThrottle
        self.linger = linger
        self.retry = retry
    }

    /// From the environment (``MetaSettings/fromEnvironment(_:)`` plus `CAPI_TIMEOUT_MS`).
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws(MetaSettings.Invalid) -> CAPISettings {
        var settings = CAPISettings(meta: try MetaSettings.fromEnvironment(environment))
        if let text = environment["CAPI_TIMEOUT_MS"], !text.isEmpty {
            guard let ms = Int(text), (100...60_000).contains(ms) else {
                throw MetaSettings.Invalid(setting: "CAPI_TIMEOUT_MS", reason: "must be 100–60000 milliseconds, got \(text)")
            }
            settings.timeout = .milliseconds(ms)
        }
        return settings
    }
}
