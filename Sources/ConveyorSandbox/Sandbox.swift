public import Foundation
public import Hummingbird
public import Logging
import NIOCore
import HTTPTypes

/// HubSpot's CRM and Meta's Conversions API played on loopback (api-notes §A, §B), for tests and
/// `ops/dev`: the documented request and answer shapes, Meta's validation (hashed fields are 64
/// lowercase hex, the 7-day `event_time` window, at most 1,000 events, whole-batch rejection), its
/// errors and throttling with usage headers, and injected faults. `/_sandbox/...` seeds data, injects
/// faults and reads back what arrived.
public struct Sandbox: Sendable {
    public struct Tokens: Sendable {
        public var hubspot: String
        public var meta: String

        public init(hubspot: String = "sandbox-hubspot-token", meta: String = "sandbox-meta-token") {
            self.hubspot = hubspot
            self.meta = meta
        }
    }

    public let state: SandboxState
    public let tokens: Tokens
    let now: @Sendable () -> Date

    /// How long each Graph call (reads, batches, single updates) takes before it is answered: none by
    /// default; `ops/measure/ad-changes.sh` sets one so calls cost what a network round trip costs.
    public let graphLatency: Duration

    public init(
        state: SandboxState = SandboxState(), tokens: Tokens = Tokens(), graphLatency: Duration = .zero, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.state = state
        self.tokens = tokens
        self.graphLatency = graphLatency
        self.now = now
    }

    /// An application listening on `host:port` (0: any free port); `onRunning` hears the bound port.
    public func application(host: String = "127.0.0.1", port: Int = 0, logger: Logger, onRunning: @escaping @Sendable (Int) async -> Void = { _ in })
        -> some ApplicationProtocol
    {
        // Idle connections close after 10 s, as real APIs close them: a server that stops waits for its
        // open connections, and the clients' pools keep theirs for a minute.
        Application(
            router: router(), server: .http1(configuration: .init(idleTimeout: .seconds(10))),
            configuration: .init(address: .hostname(host, port: port), serverName: "conveyor-sandbox"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) }, logger: logger)
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        let sandbox = self
        // HubSpot CRM v3.
        router.get("/crm/v3/pipelines/deals") { request, _ in
            try await sandbox.hubspot(request) {
                let results = try JSONSerialization.jsonObject(with: await sandbox.state.pipelineList())
                return Self.json(["results": results])
            }
        }
        router.get("/crm/v3/objects/deals/:id") { request, context in
            let id = context.parameters.get("id") ?? ""
            return try await sandbox.hubspot(request) {
                guard let (properties, contacts) = await sandbox.state.deal(id) else {
                    return Self.json(
                        ["status": "error", "message": "Object not found.  objectId are usually numeric.", "category": "OBJECT_NOT_FOUND"], status: .notFound)
                }
                let wanted = request.uri.queryParameters["properties"].map { $0.split(separator: ",").map(String.init) } ?? Array(properties.keys)
                var shown: [String: Any] = ["hs_object_id": id]
                for name in wanted { shown[name] = (properties[name] ?? nil).map { $0 as Any } ?? NSNull() }
                var object: [String: Any] = ["id": id, "properties": shown, "archived": false]
                if request.uri.queryParameters["associations"]?.contains("contacts") == true, !contacts.isEmpty {
                    object["associations"] = ["contacts": ["results": contacts.map { ["id": $0, "type": "deal_to_contact"] }]]
                }
                return Self.json(object)
            }
        }
        router.post("/crm/v3/objects/contacts/batch/read") { request, context in
            let body = try await request.body.collect(upTo: 1 << 20)
            return try await sandbox.hubspot(request) {
                guard let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any],
                    let inputs = object["inputs"] as? [[String: Any]]
                else {
                    return Self.json(["status": "error", "message": "Invalid input JSON", "category": "VALIDATION_ERROR"], status: .badRequest)
                }
                let wanted = (object["properties"] as? [String]) ?? []
                var results: [[String: Any]] = []
                for input in inputs {
                    let id = "\(input["id"] ?? "")"
                    guard let properties = await sandbox.state.contact(id) else { continue }
                    var shown: [String: Any] = [:]
                    for name in wanted { shown[name] = properties[name].map { $0 as Any } ?? NSNull() }
                    results.append(["id": id, "properties": shown, "archived": false])
                }
                return Self.json(["status": "COMPLETE", "results": results])
            }
        }
        // Meta's Conversions API.
        router.post("/:version/:pixel/events") { request, context in
            let pixel = context.parameters.get("pixel") ?? ""
            let body = try await request.body.collect(upTo: 16 << 20)
            return try await sandbox.capi(request, pixel: pixel, body: Data(buffer: body))
        }
        // Control.
        router.post("/_sandbox/reset") { _, _ in
            await sandbox.state.reset()
            return Response(status: .noContent)
        }
        router.post("/_sandbox/hubspot/deals") { request, _ in
            let body = try await request.body.collect(upTo: 16 << 20)
            guard let items = Self.objects(Data(buffer: body)) else { return Self.json(["error": "expected an object or an array of objects"], status: .badRequest) }
            for item in items {
                let properties = ((item["properties"] as? [String: Any]) ?? [:]).mapValues { value -> String? in value is NSNull ? nil : "\(value)" }
                await sandbox.state.seedDeal(id: "\(item["id"] ?? "")", properties: properties, contacts: ((item["contacts"] as? [Any]) ?? []).map { "\($0)" })
            }
            return Response(status: .noContent)
        }
        router.post("/_sandbox/hubspot/contacts") { request, _ in
            let body = try await request.body.collect(upTo: 16 << 20)
            guard let items = Self.objects(Data(buffer: body)) else { return Self.json(["error": "expected an object or an array of objects"], status: .badRequest) }
            for item in items {
                let properties = ((item["properties"] as? [String: Any]) ?? [:]).compactMapValues { $0 is NSNull ? nil : "\($0)" }
                await sandbox.state.seedContact(id: "\(item["id"] ?? "")", properties: properties)
            }
            return Response(status: .noContent)
        }
        router.post("/_sandbox/faults") { request, _ in
            let body = try await request.body.collect(upTo: 1 << 16)
            guard let fault = try? JSONDecoder().decode(SandboxState.Fault.self, from: Data(buffer: body)) else {
                return Self.json(["error": "expected {target, mode, status?, code?, regain_minutes?, delay_ms?, count?}"], status: .badRequest)
            }
            await sandbox.state.addFault(fault)
            return Response(status: .noContent)
        }
        router.delete("/_sandbox/faults") { _, _ in
            await sandbox.state.clearFaults()
            return Response(status: .noContent)
        }
        router.get("/_sandbox/capi/requests") { _, _ in
            let data = try JSONEncoder().encode(await sandbox.state.capiRequests)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        marketingRoutes(router)
        router.get("/_sandbox/stats") { _, _ in
            let requests = await sandbox.state.capiRequests
            return Self.json([
                "capi_requests": requests.count, "capi_events_accepted": requests.reduce(0) { $0 + $1.accepted.count },
                "hubspot_requests": await sandbox.state.hubspotRequests,
                "graph_calls": await sandbox.state.graphCalls.count, "ad_writes": await sandbox.state.adWrites.count,
            ])
        }
        return router
    }

    // MARK: - HubSpot

    private func hubspot(_ request: Request, answer: () async throws -> Response) async throws -> Response {
        await state.countHubSpot()
        if let fault = await state.takeFault("hubspot"), let response = await Self.inject(fault, graph: false) { return response }
        guard request.headers[.authorization] == "Bearer \(tokens.hubspot)" else {
            return Self.json(
                [
                    "status": "error", "category": "INVALID_AUTHENTICATION",
                    "message": "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
                ], status: .unauthorized)
        }
        return try await answer()
    }

    // MARK: - Conversions API

    static let actionSources: Set<String> = ["email", "website", "app", "phone_call", "chat", "physical_store", "system_generated", "business_messaging", "other"]
    static let hashedFields = ["em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country"]

    private func capi(_ request: Request, pixel: String, body: Data) async throws -> Response {
        if let fault = await state.takeFault("capi"), let response = await Self.inject(fault, graph: true) {
            await state.recordCAPI(.init(pixel: pixel, events: -1, status: Int(response.status.code), testEventCode: nil, accepted: []))
            return response
        }
        guard request.uri.queryParameters["access_token"].map(String.init) == tokens.meta else {
            return Self.graphError(code: 190, type: "OAuthException", message: "Invalid OAuth access token - Cannot parse access token", status: .badRequest)
        }
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any], let data = object["data"] as? [Any] else {
            return Self.graphError(code: 100, message: "(#100) The parameter data is required", status: .badRequest)
        }
        let testCode = object["test_event_code"] as? String
        func reject(_ message: String) async -> Response {
            await state.recordCAPI(.init(pixel: pixel, events: data.count, status: 400, testEventCode: testCode, accepted: []))
            return Self.graphError(code: 100, subcode: 2_804_003, message: "Invalid parameter", userMessage: message, status: .badRequest)
        }
        guard !data.isEmpty, data.count <= 1000 else { return await reject("data must hold 1 to 1000 events, got \(data.count)") }
        let nowSeconds = now().timeIntervalSince1970
        var accepted: [String] = []
        for (index, item) in data.enumerated() {
            if let problem = Self.problem(item, now: nowSeconds) { return await reject("event #\(index): \(problem)") }
            accepted.append(String(decoding: try JSONSerialization.data(withJSONObject: item, options: [.sortedKeys]), as: UTF8.self))
        }
        await state.recordCAPI(.init(pixel: pixel, events: data.count, status: 200, testEventCode: testCode, accepted: accepted))
        return Self.json(["events_received": data.count, "messages": [String](), "fbtrace_id": Self.trace()])
    }

    /// Why Meta would refuse one server event (api-notes §B.2–B.4), or nil.
    static func problem(_ item: Any, now: Double) -> String? {
        guard let event = item as? [String: Any] else { return "not an object" }
        guard let name = event["event_name"] as? String, !name.isEmpty else { return "event_name is required" }
        guard let time = (event["event_time"] as? NSNumber)?.doubleValue else { return "event_time is required (Unix seconds)" }
        if time < now - 7 * 24 * 3600 { return "event_time is more than 7 days in the past" }
        if time > now + 600 { return "event_time is in the future" }
        guard let source = event["action_source"] as? String, actionSources.contains(source) else { return "action_source is missing or unknown" }
        guard let userData = event["user_data"] as? [String: Any], !userData.isEmpty else { return "user_data is required" }
        for field in hashedFields {
            guard let value = userData[field] else { continue }
            let values: [Any] = (value as? [Any]) ?? [value]
            for value in values {
                guard let text = value as? String, text.utf8.count == 64, text.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
                    return "user_data.\(field) must be SHA-256 hashed (64 lowercase hex characters)"
                }
            }
        }
        if name == "Purchase" {
            guard let custom = event["custom_data"] as? [String: Any], custom["value"] is NSNumber,
                let currency = custom["currency"] as? String, currency.count == 3
            else { return "a Purchase needs custom_data.value and custom_data.currency" }
        }
        return nil
    }

    // MARK: - Faults and shapes

    static func inject(_ fault: SandboxState.Fault, graph: Bool) async -> Response? {
        switch fault.mode {
        case "slow":
            try? await Task.sleep(for: .milliseconds(fault.delayMS ?? 3000))
            return nil
        case "html":
            return Response(
                status: .badGateway, headers: [.contentType: "text/html"],
                body: .init(byteBuffer: ByteBuffer(string: "<html><body><h1>502 Bad Gateway</h1>\u{0}</body></html>")))
        case "throttle":
            guard graph else {
                return json(["status": "error", "message": "You have reached your secondly limit.", "category": "RATE_LIMITS"], status: .tooManyRequests)
            }
            var response = graphError(
                code: fault.code ?? 17, subcode: 2_446_079, message: "(#\(fault.code ?? 17)) User request limit reached", status: .badRequest)
            let usage = #"{"1234567890":[{"type":"ads_management","call_count":100,"total_cputime":30,"total_time":40,"estimated_time_to_regain_access":\#(fault.regainMinutes ?? 5)}]}"#
            response.headers[HTTPField.Name("X-Business-Use-Case-Usage")!] = usage
            return response
        default:
            let status = HTTPResponse.Status(code: fault.status ?? 503)
            guard graph else { return json(["status": "error", "message": "internal error", "category": "INTERNAL_ERROR"], status: status) }
            return graphError(
                code: 2, message: "An unexpected error has occurred. Please retry your request later.", transient: true, status: status)
        }
    }

    static func graphError(
        code: Int, subcode: Int? = nil, type: String = "OAuthException", message: String, userMessage: String? = nil, transient: Bool = false,
        status: HTTPResponse.Status
    ) -> Response {
        var error: [String: Any] = ["message": message, "type": type, "code": code, "fbtrace_id": trace(), "is_transient": transient]
        if let subcode { error["error_subcode"] = subcode }
        if let userMessage {
            error["error_user_title"] = "Invalid event"
            error["error_user_msg"] = userMessage
        }
        return json(["error": error], status: status)
    }

    static func json(_ object: Any, status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func objects(_ data: Data) -> [[String: Any]]? {
        let value = try? JSONSerialization.jsonObject(with: data)
        if let one = value as? [String: Any] { return [one] }
        return value as? [[String: Any]]
    }

    static func trace() -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        return String((0..<23).map { _ in alphabet.randomElement()! })
    }
}
