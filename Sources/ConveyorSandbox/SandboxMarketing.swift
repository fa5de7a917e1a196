public import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Meta's Marketing API objects as the sandbox holds them (api-notes §C): ad accounts with their
/// currency, campaigns, ad sets (with their campaign) and ads, their fields as Graph sends them
/// (budgets in minor units, as strings).
extension SandboxState {
    public struct AdObject: Sendable, Codable, Equatable {
        public var id: String
        /// `ad`, `adset` or `campaign`.
        public var type: String
        public var account: String
        public var campaignID: String?
        public var fields: [String: String]

        enum CodingKeys: String, CodingKey {
            case id, type, account, fields
            case campaignID = "campaign_id"
        }

        public init(id: String, type: String, account: String, campaignID: String? = nil, fields: [String: String]) {
            self.id = id
            self.type = type
            self.account = account
            self.campaignID = campaignID
            self.fields = fields
        }
    }

    /// One call to the Graph API (not the Conversions API) as it arrived.
    public struct GraphCall: Sendable, Codable, Equatable {
        public var method: String
        /// `batch`, `ids`, or the object read.
        public var what: String
        public var operations: Int
        public var status: Int
        /// For a batch: how many ad sets of one campaign it held at most (Meta allows 1).
        public var maxAdSetsPerCampaign: Int

        enum CodingKeys: String, CodingKey {
            case method, what, operations, status
            case maxAdSetsPerCampaign = "max_adsets_per_campaign"
        }
    }

    /// One write that Meta applied.
    public struct AdWrite: Sendable, Codable, Equatable {
        public var object: String
        public var field: String
        public var value: String
        public var at: Date
    }

    public func seedAccount(_ id: String, currency: String) { adAccounts[id] = currency }

    public func seedAdObject(_ object: AdObject) { adObjects[object.id] = object }

    public func adObject(_ id: String) -> AdObject? { adObjects[id] }

    func recordGraph(_ call: GraphCall) { graphCalls.append(call) }

    func recordSlack(_ text: String) { slackMessages.append(text) }

    func currency(of account: String) -> String? { adAccounts[account] }

    /// Applies `fields` to object `id` as Meta would, or returns Meta's error object for the item (as JSON text).
    func write(_ id: String, fields: [(String, String)], now: Date) -> String? {
        apply(id, fields: fields, now: now).map { error in
            String(decoding: (try? JSONSerialization.data(withJSONObject: error, options: [.sortedKeys])) ?? Data("{}".utf8), as: UTF8.self)
        }
    }

    private func apply(_ id: String, fields: [(String, String)], now: Date) -> [String: Any]? {
        guard var object = adObjects[id] else {
            return Sandbox.errorObject(code: 100, subcode: 33, message: "Unsupported post request. Object with ID '\(id)' does not exist, cannot be loaded due to missing permissions, or does not support this operation")
        }
        let currency = adAccounts[object.account] ?? "USD"
        for (field, value) in fields {
            switch field {
            case "status":
                guard ["ACTIVE", "PAUSED", "ARCHIVED", "DELETED"].contains(value) else {
                    return Sandbox.errorObject(code: 100, message: "(#100) Param status must be one of {ACTIVE, PAUSED, DELETED, ARCHIVED}")
                }
            case "daily_budget", "lifetime_budget", "bid_amount":
                guard object.type != "ad" || field == "bid_amount", let minor = Int64(value), minor > 0 else {
                    return Sandbox.errorObject(code: 100, message: "(#100) Param \(field) must be a positive integer in the account currency's minor units")
                }
                // The sandbox's minimum daily budget: 1.00 in offset-100 currencies, 100 in offset-1 ones.
                if field == "daily_budget", minor < 100 {
                    return Sandbox.errorObject(code: 100, subcode: 1_885_272, message: "Invalid parameter", userMessage: "Your budget is too low. The minimum budget for this ad set is 100 (\(currency)).")
                }
                if field != "bid_amount", object.type == "adset" {
                    let recent = (budgetWrites[id] ?? []).filter { now.timeIntervalSince($0) < 3600 }
                    guard recent.count < 4 else {
                        return Sandbox.errorObject(code: 17, subcode: 1_885_172, message: "(#17) User request limit reached", userMessage: "The budget of this ad set was changed too often: it is blocked for an hour.")
                    }
                }
            case "name":
                guard !value.isEmpty else { return Sandbox.errorObject(code: 100, message: "(#100) Param name must be non-empty") }
            default:
                return Sandbox.errorObject(code: 100, message: "(#100) Param \(field) is not a field this sandbox edits")
            }
        }
        for (field, value) in fields {
            if (field == "daily_budget" || field == "lifetime_budget"), object.fields[field] != value {
                budgetWrites[id, default: []].append(now)
            }
            object.fields[field] = value
            adWrites.append(AdWrite(object: id, field: field, value: value, at: now))
        }
        adObjects[id] = object
        return nil
    }
}

extension Sandbox {
    func marketingRoutes(_ router: Router<BasicRequestContext>) {
        let sandbox = self
        // Graph batch requests: POST /{version}/ with access_token, include_headers and batch=[…] (form).
        // (Hummingbird matches `/v23.0/` here too: a trailing slash makes no path component.)
        router.post("/:version") { request, _ in
            let body = try await request.body.collect(upTo: 4 << 20)
            return try await sandbox.batch(request, form: Self.formFields(String(buffer: body)))
        }
        router.get("/:version") { request, _ in
            try await sandbox.readMany(request)
        }
        // The same parameter name as the Conversions API's `/:version/:pixel/events`, as the router requires.
        router.get("/:version/:pixel") { request, context in
            try await sandbox.readOne(request, id: context.parameters.get("pixel") ?? "")
        }
        // One object's update, the way a caller without batching makes it: POST /{version}/{id} with form fields.
        router.post("/:version/:pixel") { request, context in
            let body = try await request.body.collect(upTo: 1 << 20)
            return try await sandbox.updateOne(request, id: context.parameters.get("pixel") ?? "", form: Self.formFields(String(buffer: body)))
        }
        // A Slack incoming webhook (`POST /services/T…/B…/token` with `{"text": …}`): answers `ok`, as Slack does.
        router.post("/services/:team/:channel/:token") { request, _ in
            let body = try await request.body.collect(upTo: 1 << 20)
            guard let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any], let text = object["text"] as? String, !text.isEmpty else {
                return Response(status: .badRequest, body: .init(byteBuffer: ByteBuffer(string: "invalid_payload")))
            }
            await sandbox.state.recordSlack(text)
            return Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "ok")))
        }
        router.get("/_sandbox/slack") { _, _ in
            let data = try JSONEncoder().encode(await sandbox.state.slackMessages)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        // Control.
        router.post("/_sandbox/marketing/accounts") { request, _ in
            let body = try await request.body.collect(upTo: 1 << 20)
            guard let items = Self.objects(Data(buffer: body)) else { return Self.json(["error": "expected {id, currency} or an array of them"], status: .badRequest) }
            for item in items {
                guard let id = item["id"] as? String, let currency = item["currency"] as? String else { return Self.json(["error": "id and currency are required"], status: .badRequest) }
                await sandbox.state.seedAccount(id, currency: currency)
            }
            return Response(status: .noContent)
        }
        router.post("/_sandbox/marketing/objects") { request, _ in
            let body = try await request.body.collect(upTo: 16 << 20)
            guard let objects = try? JSONDecoder().decode([SandboxState.AdObject].self, from: Data(buffer: body)) else {
                return Self.json(["error": "expected [{id, type, account, campaign_id?, fields}]"], status: .badRequest)
            }
            for object in objects { await sandbox.state.seedAdObject(object) }
            return Response(status: .noContent)
        }
        router.get("/_sandbox/marketing/objects/:id") { _, context in
            guard let object = await sandbox.state.adObject(context.parameters.get("id") ?? "") else { return Self.json(["error": "no such object"], status: .notFound) }
            let data = try JSONEncoder().encode(object)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        router.get("/_sandbox/marketing/calls") { _, _ in
            let data = try JSONEncoder().encode(await sandbox.state.graphCalls)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
    }

    static func formFields(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let decode = { (part: Substring) in String(part).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(part) }
            fields[decode(parts[0])] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return fields
    }

    static func errorObject(code: Int, subcode: Int? = nil, message: String, userMessage: String? = nil) -> [String: Any] {
        var error: [String: Any] = ["message": message, "type": "OAuthException", "code": code, "fbtrace_id": trace()]
        if let subcode { error["error_subcode"] = subcode }
        if let userMessage { error["error_user_msg"] = userMessage }
        return ["error": error]
    }

    /// Normal usage headers: Meta sends them on every Marketing API answer.
    static func usageHeaders(_ response: inout Response, account: String?, regain: Int = 0) {
        let key = account.map { String($0.dropFirst(4)) } ?? "0"
        response.headers[HTTPField.Name("X-Business-Use-Case-Usage")!] =
            #"{"\#(key)":[{"type":"ads_management","call_count":\#(regain > 0 ? 100 : 3),"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":\#(regain)}]}"#
        response.headers[HTTPField.Name("x-fb-trace-id")!] = trace()
    }

    func authorized(_ request: Request, form: [String: String] = [:]) -> Bool {
        (form["access_token"] ?? request.uri.queryParameters["access_token"].map(String.init)) == tokens.meta
    }

    static func fields(_ object: SandboxState.AdObject, wanted: String?) -> [String: Any] {
        var shown: [String: Any] = ["id": object.id]
        let names = wanted.map { $0.split(separator: ",").map(String.init) } ?? Array(object.fields.keys)
        for name in names {
            if name == "campaign_id", let campaign = object.campaignID { shown[name] = campaign } else if let value = object.fields[name] { shown[name] = value }
        }
        return shown
    }

    func readOne(_ request: Request, id: String) async throws -> Response {
        if graphLatency > .zero { try await Task.sleep(for: graphLatency) }
        guard authorized(request) else { return Self.graphError(code: 190, message: "Invalid OAuth access token - Cannot parse access token", status: .badRequest) }
        if let fault = await state.takeFault("graph"), let response = await Self.inject(fault, graph: true) {
            await state.recordGraph(.init(method: "GET", what: id, operations: 1, status: Int(response.status.code), maxAdSetsPerCampaign: 0))
            return response
        }
        if id.hasPrefix("act_") {
            guard let currency = await state.currency(of: id) else {
                await state.recordGraph(.init(method: "GET", what: id, operations: 1, status: 400, maxAdSetsPerCampaign: 0))
                return Self.graphError(code: 100, subcode: 33, message: "Unsupported get request. Object with ID '\(id)' does not exist", status: .badRequest)
            }
            await state.recordGraph(.init(method: "GET", what: id, operations: 1, status: 200, maxAdSetsPerCampaign: 0))
            var response = Self.json(["id": id, "account_id": String(id.dropFirst(4)), "currency": currency])
            Self.usageHeaders(&response, account: id)
            return response
        }
        guard let object = await state.adObject(id) else {
            await state.recordGraph(.init(method: "GET", what: id, operations: 1, status: 400, maxAdSetsPerCampaign: 0))
            return Self.graphError(code: 100, subcode: 33, message: "Unsupported get request. Object with ID '\(id)' does not exist", status: .badRequest)
        }
        await state.recordGraph(.init(method: "GET", what: id, operations: 1, status: 200, maxAdSetsPerCampaign: 0))
        var response = Self.json(Self.fields(object, wanted: request.uri.queryParameters["fields"].map(String.init)))
        Self.usageHeaders(&response, account: object.account)
        return response
    }

    func updateOne(_ request: Request, id: String, form: [String: String]) async throws -> Response {
        if graphLatency > .zero { try await Task.sleep(for: graphLatency) }
        guard authorized(request, form: form) else { return Self.graphError(code: 190, message: "Invalid OAuth access token - Cannot parse access token", status: .badRequest) }
        let fields = form.filter { !["access_token", "appsecret_proof"].contains($0.key) }.sorted { $0.key < $1.key }
        if let fault = await state.takeFault("graph"), let response = await Self.inject(fault, graph: true) {
            await state.recordGraph(.init(method: "POST", what: id, operations: 1, status: Int(response.status.code), maxAdSetsPerCampaign: 0))
            return response
        }
        if let error = await state.write(id, fields: fields.map { ($0.key, $0.value) }, now: now()) {
            await state.recordGraph(.init(method: "POST", what: id, operations: 1, status: 400, maxAdSetsPerCampaign: 0))
            return Response(status: .badRequest, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: error)))
        }
        await state.recordGraph(.init(method: "POST", what: id, operations: 1, status: 200, maxAdSetsPerCampaign: 0))
        var response = Self.json(["success": true])
        Self.usageHeaders(&response, account: await state.adObject(id)?.account)
        return response
    }

    /// `GET /{version}/?ids=1,2&fields=…`: one object per id; one unknown id fails the call (#803).
    func readMany(_ request: Request) async throws -> Response {
        if graphLatency > .zero { try await Task.sleep(for: graphLatency) }
        guard authorized(request) else { return Self.graphError(code: 190, message: "Invalid OAuth access token - Cannot parse access token", status: .badRequest) }
        let ids = (request.uri.queryParameters["ids"].map(String.init) ?? "").split(separator: ",").map(String.init)
        if let fault = await state.takeFault("graph"), let response = await Self.inject(fault, graph: true) {
            await state.recordGraph(.init(method: "GET", what: "ids", operations: ids.count, status: Int(response.status.code), maxAdSetsPerCampaign: 0))
            return response
        }
        guard !ids.isEmpty, ids.count <= 50 else {
            await state.recordGraph(.init(method: "GET", what: "ids", operations: ids.count, status: 400, maxAdSetsPerCampaign: 0))
            return Self.graphError(code: 100, message: "(#100) ids must name 1 to 50 objects", status: .badRequest)
        }
        var result: [String: Any] = [:]
        var account: String?
        for id in ids {
            guard let object = await state.adObject(id) else {
                await state.recordGraph(.init(method: "GET", what: "ids", operations: ids.count, status: 404, maxAdSetsPerCampaign: 0))
                return Self.graphError(code: 100, message: "(#803) Some of the aliases you requested do not exist: \(id)", status: .notFound)
            }
            account = object.account
            result[id] = Self.fields(object, wanted: request.uri.queryParameters["fields"].map(String.init))
        }
        await state.recordGraph(.init(method: "GET", what: "ids", operations: ids.count, status: 200, maxAdSetsPerCampaign: 0))
        var response = Self.json(result)
        Self.usageHeaders(&response, account: account)
        return response
    }

    /// A batch call, with Meta's rules: at most 50 operations, no two ad sets of one campaign, answers
    /// in order as `{code, body}` (body a JSON string), `null` for what a timed-out batch did not finish.
    func batch(_ request: Request, form: [String: String]) async throws -> Response {
        if graphLatency > .zero { try await Task.sleep(for: graphLatency) }
        guard authorized(request, form: form) else {
            return Self.graphError(code: 190, message: "Invalid OAuth access token - Cannot parse access token", status: .badRequest)
        }
        guard let text = form["batch"], let items = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [[String: Any]] else {
            await state.recordGraph(.init(method: "POST", what: "batch", operations: 0, status: 400, maxAdSetsPerCampaign: 0))
            return Self.graphError(code: 100, message: "(#100) The parameter batch is required and must be a JSON array", status: .badRequest)
        }
        // Parse every operation: (method, object id, form fields).
        var operations: [(method: String, id: String, fields: [(String, String)], query: [String: String])] = []
        for item in items {
            let method = ((item["method"] as? String) ?? "GET").uppercased()
            let relative = (item["relative_url"] as? String) ?? ""
            let pathPart = relative.split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
            let query = relative.contains("?") ? Self.formFields(String(relative.split(separator: "?", maxSplits: 1)[1])) : [:]
            let id = pathPart.split(separator: "/").last.map(String.init) ?? ""
            let body = (item["body"] as? String).map { text in
                text.split(separator: "&").map { pair -> (String, String) in
                    let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                    let decode = { (part: Substring) in String(part).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(part) }
                    return (decode(parts[0]), parts.count > 1 ? decode(parts[1]) : "")
                }
            } ?? []
            operations.append((method, id, body, query))
        }
        var perCampaign: [String: Set<String>] = [:]
        var account: String?
        for operation in operations where operation.method == "POST" {
            guard let object = await state.adObject(operation.id) else { continue }
            account = object.account
            if object.type == "adset", let campaign = object.campaignID { perCampaign[campaign, default: []].insert(object.id) }
        }
        let maxPerCampaign = perCampaign.values.map(\.count).max() ?? 0
        func record(_ status: Int) async {
            await state.recordGraph(.init(method: "POST", what: "batch", operations: operations.count, status: status, maxAdSetsPerCampaign: maxPerCampaign))
        }
        var fault = await state.takeFault("graph-batch")
        if fault == nil { fault = await state.takeFault("graph") }
        if let fault, let response = await Self.inject(fault, graph: true) {
            await record(Int(response.status.code))
            return response
        }
        guard !operations.isEmpty, operations.count <= 50 else {
            await record(400)
            return Self.graphError(code: 100, message: "(#100) Too many requests in batch message. Maximum batch size is 50", status: .badRequest)
        }
        guard maxPerCampaign <= 1 else {
            await record(400)
            return Self.graphError(code: 100, message: "(#100) Batch requests cannot include multiple Adsets under the same Campaign", status: .badRequest)
        }
        // A partial timeout: the last `nulls` operations answer null; the first `applied` of those were applied anyway.
        let timeout = await state.takeFault("graph-timeout")
        let nulls = min(timeout?.nulls ?? 0, operations.count)
        let appliedNulls = min(timeout?.applied ?? 0, nulls)
        var answers: [Any] = []
        let now = now()
        for (index, operation) in operations.enumerated() {
            let isNull = index >= operations.count - nulls
            if isNull, index >= operations.count - nulls + appliedNulls {
                answers.append(NSNull())
                continue
            }
            let encode = { (object: [String: Any]) in
                String(decoding: (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8), as: UTF8.self)
            }
            let answer: (Int, String)
            if operation.method == "POST" {
                if let error = await state.write(operation.id, fields: operation.fields, now: now) {
                    answer = (400, error)
                } else {
                    answer = (200, #"{"success":true}"#)
                }
            } else if let object = await state.adObject(operation.id) {
                answer = (200, encode(Self.fields(object, wanted: operation.query["fields"])))
            } else {
                answer = (400, encode(Self.errorObject(code: 100, subcode: 33, message: "Unsupported get request. Object with ID '\(operation.id)' does not exist")))
            }
            if isNull {
                answers.append(NSNull())
                continue
            }
            var element: [String: Any] = ["code": answer.0, "body": answer.1]
            if form["include_headers"] != "false" { element["headers"] = [["name": "Content-Type", "value": "application/json; charset=UTF-8"]] }
            answers.append(element)
        }
        await record(200)
        var response = Self.json(answers)
        Self.usageHeaders(&response, account: account)
        return response
    }
}
