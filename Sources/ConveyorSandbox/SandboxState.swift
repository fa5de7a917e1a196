import Foundation

/// What the sandbox holds: HubSpot's CRM objects, what arrived at Meta, and the faults to inject.
public actor SandboxState {
    /// A fault for the next `count` requests to one API (nil: until cleared).
    public struct Fault: Sendable, Codable, Equatable {
        /// `capi` or `hubspot`.
        public var target: String
        /// `status` (answer `status` with the API's error shape), `throttle` (a throttling error with usage
        /// headers), `slow` (wait `delay_ms`, then answer normally), `html` (a 502 HTML page).
        public var mode: String
        public var status: Int?
        /// For `throttle`: the Graph code (default 17) and `estimated_time_to_regain_access` minutes.
        public var code: Int?
        public var regainMinutes: Int?
        public var delayMS: Int?
        public var count: Int?
        /// For target `graph-timeout` (a batch that timed out part-way): how many of its last operations
        /// answer `null`, and how many of those Meta applied anyway.
        public var nulls: Int?
        public var applied: Int?

        enum CodingKeys: String, CodingKey {
            case target, mode, status, code, count, nulls, applied
            case regainMinutes = "regain_minutes"
            case delayMS = "delay_ms"
        }

        public init(
            target: String, mode: String, status: Int? = nil, code: Int? = nil, regainMinutes: Int? = nil, delayMS: Int? = nil, count: Int? = nil,
            nulls: Int? = nil, applied: Int? = nil
        ) {
            self.nulls = nulls
            self.applied = applied
            self.target = target
            self.mode = mode
            self.status = status
            self.code = code
            self.regainMinutes = regainMinutes
            self.delayMS = delayMS
            self.count = count
        }
    }

    /// One request to the Conversions API as it arrived.
    public struct CAPIRequest: Sendable, Codable, Equatable {
        public var pixel: String
        public var events: Int
        public var status: Int
        public var testEventCode: String?
        /// The accepted events (JSON texts), when the request was accepted.
        public var accepted: [String]

        enum CodingKeys: String, CodingKey {
            case pixel, events, status, accepted
            case testEventCode = "test_event_code"
        }
    }

    var deals: [String: [String: String?]] = [:]
    var dealContacts: [String: [String]] = [:]
    var contacts: [String: [String: String]] = [:]
    /// `GET /crm/v3/pipelines/deals`'s `results`, as JSON.
    var pipelines: Data = SandboxState.defaultPipelines
    var faults: [Fault] = []
    public private(set) var capiRequests: [CAPIRequest] = []
    public private(set) var hubspotRequests = 0
    // The Marketing API (SandboxMarketing.swift).
    var adAccounts: [String: String] = [:]
    var adObjects: [String: AdObject] = [:]
    var budgetWrites: [String: [Date]] = [:]
    public internal(set) var graphCalls: [GraphCall] = []
    public internal(set) var adWrites: [AdWrite] = []
    /// Messages posted to the Slack incoming webhook (`/services/…`).
    public internal(set) var slackMessages: [String] = []

    public init() {}

    public func reset() {
        deals = [:]
        dealContacts = [:]
        contacts = [:]
        pipelines = Self.defaultPipelines
        faults = []
        capiRequests = []
        hubspotRequests = 0
        adAccounts = [:]
        adObjects = [:]
        budgetWrites = [:]
        graphCalls = []
        adWrites = []
        slackMessages = []
    }

    /// Adds (or replaces) a deal with its properties and associated contacts.
    public func seedDeal(id: String, properties: [String: String?], contacts ids: [String]) {
        deals[id] = properties
        dealContacts[id] = ids
    }

    public func seedContact(id: String, properties: [String: String]) {
        contacts[id] = properties
    }

    func seedPipelines(_ json: Data) { pipelines = json }

    public func addFault(_ fault: Fault) { faults.append(fault) }

    public func clearFaults() { faults = [] }

    /// Takes the fault that applies to the next request to `target`, counting it down.
    func takeFault(_ target: String) -> Fault? {
        guard let index = faults.firstIndex(where: { $0.target == target }) else { return nil }
        let fault = faults[index]
        if let count = fault.count {
            if count <= 1 { faults.remove(at: index) } else { faults[index].count = count - 1 }
        }
        return fault
    }

    func countHubSpot() { hubspotRequests += 1 }

    func deal(_ id: String) -> (properties: [String: String?], contacts: [String])? {
        deals[id].map { ($0, dealContacts[id] ?? []) }
    }

    func contact(_ id: String) -> [String: String]? { contacts[id] }

    func pipelineList() -> Data { pipelines }

    func recordCAPI(_ request: CAPIRequest) { capiRequests.append(request) }

    /// Every accepted event's JSON text, in arrival order.
    public func acceptedEvents() -> [String] { capiRequests.flatMap(\.accepted) }

    /// HubSpot's default pipeline (stage ids as in every account) and a custom one whose won stage is
    /// known only by its metadata, as `GET /crm/v3/pipelines/deals` lists them.
    static let defaultPipelines = Data(#"""
        [{"id": "default", "label": "Sales Pipeline", "stages": [
          {"id": "appointmentscheduled", "label": "Appointment Scheduled", "metadata": {"isClosed": "false", "probability": "0.2"}},
          {"id": "contractsent", "label": "Contract Sent", "metadata": {"isClosed": "false", "probability": "0.9"}},
          {"id": "closedwon", "label": "Closed Won", "metadata": {"isClosed": "true", "probability": "1.0"}},
          {"id": "closedlost", "label": "Closed Lost", "metadata": {"isClosed": "true", "probability": "0.0"}}]},
         {"id": "renewals", "label": "Renewals", "stages": [
          {"id": "renewal-signed", "label": "Signed", "metadata": {"isClosed": "true", "probability": "1.0"}},
          {"id": "renewal-lost", "label": "Lost", "metadata": {"isClosed": "true", "probability": "0.0"}}]}]
        """#.utf8)
}
