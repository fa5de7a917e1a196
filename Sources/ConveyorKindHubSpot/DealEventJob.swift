public import ConveyorCore
public import ConveyorHTTPClient
import ConveyorMeta
public import Foundation
import Logging

/// `hubspot.deal_event`: one HubSpot webhook event (the receiver stores each as a job). A deal moved to
/// a won stage becomes one `meta.capi_event` job, a `Purchase` with the deal's amount and its contacts'
/// hashed identifiers; every other event completes with a result saying why it was ignored.
///
/// Results (`conveyor jobs show`): `{"outcome": "sent_to_capi", "capi_job", "event_id", "value",
/// "currency", "contacts"}`, `{"outcome": "ignored", "reason"}` or `{"outcome": "skipped", "reason"}` (no
/// amount, no contact data, closed too long ago for Meta).
public struct DealEventJob: JobHandler {
    /// The event as HubSpot sends it (api-notes §A.4); both spellings of the type are accepted.
    public struct Args: Codable, Sendable {
        public var objectId: JSONValue?
        public var portalId: JSONValue?
        public var subscriptionType: String?
        public var eventType: String?
        public var propertyName: String?
        public var propertyValue: String?
        public var occurredAt: Double?
    }

    public static let kind = "hubspot.deal_event"
    /// The follow-up kind (named, not imported: kinds never import each other).
    public static let capiKind = "meta.capi_event"

    public let settings: HubSpotSettings
    let crm: HubSpotCRM?
    let clock: any ConveyorClock

    public init(settings: HubSpotSettings, clock: any ConveyorClock = SystemClock(), upstream: Upstream? = nil) {
        self.settings = settings
        self.clock = clock
        if let token = settings.accessToken {
            let upstream = upstream ?? Upstream(settings.upstream, clock: clock, logger: Logger(label: "conveyor.hubspot"))
            crm = HubSpotCRM(upstream: upstream, token: token, clock: clock)
        } else {
            crm = nil
        }
    }

    public var options: JobKindOptions {
        JobKindOptions(timeout: .seconds(60), retry: RetryPolicy(maxAttempts: 15, backoff: RetryPolicy.exponential(base: .seconds(5), cap: .seconds(3600))))
    }

    struct Outcome: Encodable {
        var outcome: String
        var reason: String?
        var capiJob: String?
        var eventID: String?
        var value: Double?
        var currency: String?
        var contacts: Int?

        enum CodingKeys: String, CodingKey {
            case outcome, reason, value, currency, contacts
            case capiJob = "capi_job"
            case eventID = "event_id"
        }
    }

    public func run(_ args: Args, context: JobContext) async throws -> JobOutcome {
        let type = args.subscriptionType ?? args.eventType ?? ""
        guard type == "deal.propertyChange" else { return try ignored("event type \(type.isEmpty ? "(none)" : type) is not deal.propertyChange") }
        guard args.propertyName == "dealstage" else { return try ignored("property \(args.propertyName ?? "(none)") is not dealstage") }
        guard let stage = args.propertyValue, !stage.isEmpty else { return try ignored("the event carries no new stage") }
        guard let dealID = Self.text(args.objectId), !dealID.isEmpty, dealID.allSatisfy(\.isNumber) else {
            throw JobFailure.permanent("objectId must be a deal id (digits), got \(Self.text(args.objectId) ?? "nothing")")
        }
        let portal = Self.text(args.portalId) ?? "0"
        guard let crm else { throw HubSpotCRM.Failure.transient("HUBSPOT_ACCESS_TOKEN is not set", retryAfter: nil) }
        do {
            guard try await crm.isWon(stage: stage) else { return try ignored("stage \(stage) is not a won stage") }
            let deal = try await crm.deal(dealID)
            guard let amount = deal.amount, amount > 0 else { return try skipped("deal \(dealID) has no amount") }
            let contacts = deal.contactIDs.isEmpty ? [] : try await crm.contacts(deal.contactIDs)
            guard let userData = Self.userData(contacts) else {
                return try skipped("deal \(dealID) has no contact with an e-mail, phone or name")
            }
            let now = clock.now()
            let closed = deal.closeDate ?? args.occurredAt.map { Date(timeIntervalSince1970: $0 / 1000) } ?? now
            let eventTime = min(closed, now)
            if eventTime.timeIntervalSince1970 < now.timeIntervalSince1970 - 7 * 24 * 3600 {
                return try skipped("deal \(dealID) closed \(RFC3339.format(eventTime)), more than 7 days ago: Meta accepts conversions up to 7 days old")
            }
            let currency = (deal.currency ?? settings.defaultCurrency).uppercased()
            let eventID = "hubspot-deal-\(portal)-\(dealID)"
            let event: JSONValue = .object([
                "event_name": .string("Purchase"),
                "event_time": .integer(Int64(eventTime.timeIntervalSince1970)),
                "event_id": .string(eventID),
                "action_source": .string(settings.actionSource),
                "user_data": .object(userData),
                "custom_data": .object(["value": .number(amount), "currency": .string(currency), "order_id": .string(dealID)]),
            ])
            var args: [String: JSONValue] = ["event": event]
            if let pixel = settings.pixelID { args["pixel_id"] = .string(pixel) }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            let job = NewJob(
                kind: Self.capiKind, args: String(decoding: try encoder.encode(JSONValue.object(args)), as: UTF8.self), queue: settings.capiQueue,
                tags: ["hubspot", "deal:\(dealID)"], id: StableID.make("capi:\(eventID)"),
                limitKey: settings.pixelID.map { "meta-pixel:\($0)" })
            try await context.enqueue([job])
            context.logger.info("won deal sent to Conversions API", metadata: ["deal": "\(dealID)", "capi_job": "\(job.id)"])
            return try .completed(result: Outcome(
                outcome: "sent_to_capi", capiJob: job.id.uuidString.lowercased(), eventID: eventID, value: amount, currency: currency,
                contacts: contacts.count))
        } catch let failure as HubSpotCRM.Failure {
            switch failure {
            case .circuitOpen(let until):
                return .snooze(.milliseconds(Int64(max(until.timeIntervalSince(clock.now()), 0.1) * 1000)))
            case .permanent(let message): throw JobFailure.permanent(message)
            case .notFound(let message): throw JobFailure.permanent(message)
            case .transient(let message, let retryAfter):
                if let retryAfter { throw JobFailure.retryAfter(retryAfter, message) }
                throw failure
            }
        }
    }

    private func ignored(_ reason: String) throws -> JobOutcome { try .completed(result: Outcome(outcome: "ignored", reason: reason)) }
    private func skipped(_ reason: String) throws -> JobOutcome { try .completed(result: Outcome(outcome: "skipped", reason: reason)) }

    /// The contacts' identifiers, normalised and hashed as Meta's SDK does, as arrays (Meta takes several
    /// values per field); `external_id` is the hashed contact id. Nil when no contact has an e-mail, a
    /// phone or a name.
    static func userData(_ contacts: [HubSpotCRM.Contact]) -> [String: JSONValue]? {
        let fields: [(property: String, field: UserDataHashing.Field)] = [
            ("email", .em), ("phone", .ph), ("firstname", .fn), ("lastname", .ln), ("city", .ct), ("zip", .zp), ("country", .country),
        ]
        var values: [String: [String]] = [:]
        for contact in contacts {
            for (property, field) in fields {
                if let raw = contact.properties[property], let hash = UserDataHashing.hash(raw, as: field), !(values[field.rawValue] ?? []).contains(hash) {
                    values[field.rawValue, default: []].append(hash)
                }
            }
        }
        guard values["em"] != nil || values["ph"] != nil || values["fn"] != nil || values["ln"] != nil else { return nil }
        for contact in contacts where !contact.id.isEmpty {
            values["external_id", default: []].append(UserDataHashing.sha256Hex(contact.id))
        }
        return values.mapValues { .array($0.map(JSONValue.string)) }
    }

    static func text(_ value: JSONValue?) -> String? {
        switch value {
        case .string(let text)?: text
        case .integer(let number)?: String(number)
        case .number(let number)?: number == number.rounded() ? String(Int64(number)) : String(number)
        default: nil
        }
    }
}

/// HubSpot's settings, from the environment.
public struct HubSpotSettings: Sendable {
    /// `HUBSPOT_API_BASE_URL`, default `https://api.hubapi.com`.
    public var apiBaseURL: String
    /// `HUBSPOT_ACCESS_TOKEN`: a private app's token with `crm.objects.deals.read` and contacts read.
    public var accessToken: String?
    /// `HUBSPOT_CLIENT_SECRET`: the app's secret; the receiver checks signatures with it.
    public var clientSecret: String?
    /// `CAPI_ACTION_SOURCE`, default `system_generated`.
    public var actionSource: String
    /// `HUBSPOT_DEFAULT_CURRENCY` for deals without one, default `USD`.
    public var defaultCurrency: String
    /// `META_PIXEL_ID`: the follow-up's pixel and limit key.
    public var pixelID: String?
    /// `HUBSPOT_TIMEOUT_MS`, default 5000.
    public var timeout: Duration
    /// `CAPI_QUEUE`: the queue the purchases go to, default `default` (a queue of their own can be paused
    /// alone, `conveyor queues pause capi`, and run by the workers that may call Meta).
    public var capiQueue: String

    public static let actionSources: Set<String> = [
        "email", "website", "app", "phone_call", "chat", "physical_store", "system_generated", "business_messaging", "other",
    ]

    public init(
        apiBaseURL: String = "https://api.hubapi.com", accessToken: String? = nil, clientSecret: String? = nil, actionSource: String = "system_generated",
        defaultCurrency: String = "USD", pixelID: String? = nil, timeout: Duration = .seconds(5), capiQueue: String = "default"
    ) {
        self.capiQueue = capiQueue
        self.apiBaseURL = apiBaseURL
        self.accessToken = accessToken
        self.clientSecret = clientSecret
        self.actionSource = actionSource
        self.defaultCurrency = defaultCurrency
        self.pixelID = pixelID
        self.timeout = timeout
    }

    public var upstream: Upstream.Settings {
        Upstream.Settings(name: "hubspot", baseURL: apiBaseURL, connectTimeout: .seconds(2), requestTimeout: timeout, maxResponseBytes: 4 << 20)
    }

    /// A setting that cannot be used, named.
    public typealias Invalid = SettingError

    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws(Invalid) -> HubSpotSettings {
        func value(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        var settings = HubSpotSettings()
        if let base = value("HUBSPOT_API_BASE_URL") {
            guard let url = URL(string: base), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
                throw Invalid(setting: "HUBSPOT_API_BASE_URL", reason: "must be an http(s) URL, got \(base)")
            }
            settings.apiBaseURL = base
        }
        settings.accessToken = value("HUBSPOT_ACCESS_TOKEN")
        settings.clientSecret = value("HUBSPOT_CLIENT_SECRET")
        if let source = value("CAPI_ACTION_SOURCE") {
            guard actionSources.contains(source) else {
                throw Invalid(setting: "CAPI_ACTION_SOURCE", reason: "must be one of \(actionSources.sorted().joined(separator: ", ")), got \(source)")
            }
            settings.actionSource = source
        }
        if let currency = value("HUBSPOT_DEFAULT_CURRENCY") {
            guard currency.count == 3, currency.allSatisfy(\.isLetter) else {
                throw Invalid(setting: "HUBSPOT_DEFAULT_CURRENCY", reason: "must be an ISO 4217 code, got \(currency)")
            }
            settings.defaultCurrency = currency.uppercased()
        }
        if let pixel = value("META_PIXEL_ID") {
            guard pixel.allSatisfy(\.isNumber) else { throw Invalid(setting: "META_PIXEL_ID", reason: "must be digits, got \(pixel)") }
            settings.pixelID = pixel
        }
        if let queue = value("CAPI_QUEUE") {
            guard NewJob.isValidQueue(queue) else { throw Invalid(setting: "CAPI_QUEUE", reason: "must match [a-z0-9_-]{1,64}, got \(queue)") }
            settings.capiQueue = queue
        }
        if let text = value("HUBSPOT_TIMEOUT_MS") {
            guard let ms = Int(text), (100...60_000).contains(ms) else {
                throw Invalid(setting: "HUBSPOT_TIMEOUT_MS", reason: "must be 100–60000 milliseconds, got \(text)")
            }
            settings.timeout = .milliseconds(ms)
        }
        return settings
    }
}
