import AsyncHTTPClient
import ConveyorCore
import ConveyorHTTPClient
import ConveyorKindHubSpot
import ConveyorKindMetaCAPI
import ConveyorMeta
import ConveyorPostgres
import ConveyorSandbox
import ConveyorTestSupport
import ConveyorWeb
import ConveyorWorker
import Foundation
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import Testing

/// HubSpot delivery → `hubspot.deal_event` → `meta.capi_event` → the sandbox's Conversions API, in one
/// process: real PostgreSQL, real HTTP on loopback, the production clients pointed at the sandbox.
@Suite("Webhooks to the Conversions API, through the sandbox", .serialized, .timeLimit(.minutes(3)))
struct WebhookToCAPITests {
    static let secret = "hubspot-client-secret-for-tests"
    static let metaToken = "EAAB-meta-token-that-must-never-be-logged"
    static let hubspotToken = "pat-na1-hubspot-token-that-must-never-be-logged"
    static let pixel = "1234567890"

    /// Runs the sandbox, then `body` with its base URL.
    static func withSandbox<T: Sendable>(_ body: @Sendable (Sandbox, String) async throws -> T) async throws -> T {
        let sandbox = Sandbox(tokens: .init(hubspot: hubspotToken, meta: metaToken))
        let ports = Recorded<Int>()
        let app = sandbox.application(logger: TestDatabase.logger) { ports.append([$0]) }
        return try await Self.serving(app) {
            let port = try await ports.wait(for: "the sandbox listening") { !$0.isEmpty }[0]
            return try await body(sandbox, "http://127.0.0.1:\(port)")
        }
    }

    /// Runs `app` for the duration of `body`, then cancels it without waiting for it to stop: a
    /// Hummingbird server that stops waits for its open connections, and the production clients' pools
    /// (AsyncHTTPClient, for the life of the process) may keep one open to it; in a loaded full run that
    /// wait hung the suite. The one unstructured task of these tests, on purpose: the listener is
    /// abandoned (its port is never reused by a later test, each takes a fresh one).
    static func serving<T: Sendable>(_ app: some Service, _ body: @Sendable () async throws -> T) async throws -> T {
        let server = Task { try await app.run() }
        defer { server.cancel() }
        return try await body()
    }

    static func registry(base: String) -> HandlerRegistry {
        var registry = HandlerRegistry()
        registry.register(
            DealEventJob(settings: HubSpotSettings(apiBaseURL: base, accessToken: hubspotToken, clientSecret: secret, pixelID: pixel, capiQueue: "capi")))
        registry.register(
            chunk: CAPIEventJob(
                settings: CAPISettings(
                    meta: MetaSettings(graphBaseURL: base, accessToken: metaToken, appSecret: "app-secret", pixelID: pixel), linger: .milliseconds(1500))))
        return registry
    }

    static func worker(_ store: PostgresJobStore, _ registry: HandlerRegistry, logger: Logger, queue: String = "default") -> Worker {
        Worker(
            configuration: Worker.Configuration(
                queues: QueueConfiguration(queues: [.init(name: queue, concurrency: 200)]), pollInterval: .milliseconds(50), gracePeriod: .seconds(5),
                completionLinger: .milliseconds(2)),
            store: store, registry: registry, logger: logger)
    }

    static func seedDeals(_ sandbox: Sandbox, _ ids: Range<Int>, closed: Date) async {
        for id in ids {
            let closeDate = ISO8601DateFormatter().string(from: closed)
            await sandbox.state.seedDeal(
                id: "\(id)", properties: ["amount": "\(id).50", "deal_currency_code": "EUR", "closedate": closeDate, "dealstage": "closedwon", "pipeline": "default"],
                contacts: ["c\(id)"])
            await sandbox.state.seedContact(
                id: "c\(id)",
                properties: ["email": " Buyer\(id)@Example.com", "phone": "+44 844 412 \(id)", "firstname": "Ada", "lastname": "Lovelace", "country": "GB", "zip": "SW1A 1AA"])
        }
    }

    static func deliveryBody(_ ids: Range<Int>, occurredAt: Int64) -> [UInt8] {
        let events = ids.enumerated().map { index, id in
            #"{"eventId":\#(index),"subscriptionId":7,"portalId":62515,"appId":1,"occurredAt":\#(occurredAt),"subscriptionType":"deal.propertyChange","attemptNumber":0,"objectId":\#(id),"propertyName":"dealstage","propertyValue":"closedwon","changeSource":"CRM"}"#
        }
        return Array("[\(events.joined(separator: ","))]".utf8)
    }

    /// POSTs `body` to the hooks listener signed with v3 (or not, or badly).
    static func deliver(_ body: [UInt8], to url: String, signature: String? = nil, timestamp: Date = Date()) async throws -> Int {
        let stamp = String(Int64(timestamp.timeIntervalSince1970 * 1000))
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        // No idle keep-alive connection outlives the test's listener.
        request.headers.add(name: "Connection", value: "close")
        request.headers.add(name: "X-HubSpot-Request-Timestamp", value: stamp)
        request.headers.add(
            name: "X-HubSpot-Signature-v3", value: signature ?? HubSpotSignature.v3(secret: secret, method: "POST", uri: url, body: body, timestamp: stamp))
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        _ = try await response.body.collect(upTo: 1 << 16)
        return Int(response.status.code)
    }

    @Test("a signed delivery of 100 closed-won events becomes 100 hashed Purchase events in at most 2 POSTs; a re-delivery adds nothing; bad signatures store nothing; no token reaches a log line or a row")
    func endToEnd() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            try await Self.withSandbox { sandbox, base in
                await Self.seedDeals(sandbox, 1001..<1101, closed: Date().addingTimeInterval(-3600))
                let logs = LogMessages()
                let logger = logs.logger(withMetadata: true)
                let hooks = HooksServer.application(
                    host: "127.0.0.1", port: 0, hooks: [HubSpotReceiver(store: store, secret: Self.secret, logger: logger)], logger: logger
                ) { logs.append(["hooks port \($0)"]) }
                let registry = Self.registry(base: base)
                let results = WrittenResults()
                try await Self.serving(hooks) {
                    let line = try await logs.wait(for: "hooks listening") { $0.contains { $0.hasPrefix("hooks port ") } }.first { $0.hasPrefix("hooks port ") }!
                    let url = "http://127.0.0.1:\(line.dropFirst("hooks port ".count))/hooks/hubspot"
                    let body = Self.deliveryBody(1001..<1101, occurredAt: Int64(Date().timeIntervalSince1970 * 1000))
                    // Refused: a wrong signature, a stale timestamp, a body that is not an array.
                    #expect(try await Self.deliver(body, to: url, signature: "AAAA") == 401)
                    #expect(try await Self.deliver(body, to: url, timestamp: Date().addingTimeInterval(-301)) == 401)
                    #expect(try await Self.deliver(Array(#"{"not":"an array"}"#.utf8), to: url) == 400)
                    #expect(try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs") == 0)
                    // Accepted, and again (HubSpot re-delivers): 100 jobs.
                    #expect(try await Self.deliver(body, to: url) == 204)
                    #expect(try await Self.deliver(body, to: url) == 204)
                    #expect(try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE kind = 'hubspot.deal_event'") == 100)
                }
                // The deals first (their purchases go to the queue "capi"), then the purchases, so the test does
                // not depend on how fast a loaded machine turns 100 deals into purchases (a steady flow is
                // batched by the chunk's linger instead).
                var configuration = Worker.Configuration(
                    queues: QueueConfiguration(queues: [.init(name: "default", concurrency: 200)]), pollInterval: .milliseconds(50),
                    gracePeriod: .seconds(5), completionLinger: .milliseconds(2))
                configuration.onResultsWritten = results.callback
                let worker = Worker(configuration: configuration, store: store, registry: registry, logger: logger)
                try await withRunningServices([worker], logger: logger) { _ in
                    try await eventually("100 purchases enqueued") {
                        try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE kind = 'hubspot.deal_event' AND state = 'completed'") == 100
                    }
                }
                #expect(try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE kind = 'meta.capi_event' AND queue = 'capi' AND state = 'available'") == 100)
                try await withRunningServices([Self.worker(store, registry, logger: logger, queue: "capi")], logger: logger) { _ in
                    try await eventually("100 conversions sent") {
                        try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE kind = 'meta.capi_event' AND state = 'completed'") == 100
                    }
                }
                let requests = await sandbox.state.capiRequests
                #expect(requests.filter { $0.status == 200 }.count <= 2, "\(requests.map(\.events))")
                #expect(requests.allSatisfy { $0.status == 200 })
                let events = await sandbox.state.acceptedEvents()
                #expect(events.count == 100)
                let decoded = events.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                #expect(Set(decoded.compactMap { $0["event_id"] as? String }).count == 100)
                let first = decoded.first { ($0["event_id"] as? String) == "hubspot-deal-62515-1001" }
                let userData = first?["user_data"] as? [String: Any]
                #expect((userData?["em"] as? [String]) == [UserDataHashing.sha256Hex("buyer1001@example.com")])
                #expect((userData?["country"] as? [String]) == [UserDataHashing.sha256Hex("gb")])
                let custom = first?["custom_data"] as? [String: Any]
                #expect((custom?["value"] as? Double) == 1001.5 && (custom?["currency"] as? String) == "EUR")
                #expect(first?["event_name"] as? String == "Purchase" && first?["action_source"] as? String == "system_generated")
                // Secrets: in no log line, no stored error or result.
                let rows = try await TestDatabase.count(
                    client,
                    "SELECT count(*) FROM conveyor_jobs WHERE errors::text LIKE '%never-be-logged%' OR coalesce(result::text, '') LIKE '%never-be-logged%' OR args::text LIKE '%never-be-logged%'")
                #expect(rows == 0)
                #expect(!logs.all.isEmpty)
                #expect(logs.all.allSatisfy { !$0.contains("never-be-logged") && !$0.contains(Self.secret) })
            }
        }
    }

    static func capiJob(_ id: Int, emailHash: String? = nil, time: Date = Date()) -> NewJob {
        let em = emailHash ?? UserDataHashing.sha256Hex("p\(id)@example.com")
        let args = #"{"event":{"event_name":"Purchase","event_time":\#(Int(time.timeIntervalSince1970)),"event_id":"e\#(id)","action_source":"system_generated","user_data":{"em":["\#(em)"]},"custom_data":{"value":10,"currency":"USD"}}}"#
        return NewJob(kind: CAPIEventJob.kind, args: args, limitKey: MetaSettings.pixelKey(pixel))
    }

    @Test("one invalid event in a batch of 20 fails alone, permanently, with Meta's message; a stale event fails before sending")
    func poisonedEvent() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            try await Self.withSandbox { sandbox, base in
                var jobs = (0..<20).map { Self.capiJob($0) }
                jobs[13] = Self.capiJob(13, emailHash: "not-hashed@example.com")
                jobs.append(Self.capiJob(99, time: Date().addingTimeInterval(-8 * 24 * 3600)))
                let ids = try await store.insert(jobs).inserted
                let worker = Self.worker(store, Self.registry(base: base), logger: TestDatabase.logger)
                try await withRunningServices([worker], logger: TestDatabase.logger) { _ in
                    try await eventually("every conversion resolved") {
                        try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE state IN ('completed', 'dead')") == 21
                    }
                }
                for (index, id) in ids.enumerated() {
                    let job = try await store.require(id)
                    switch index {
                    case 13:
                        #expect(job.state == .dead)
                        #expect(job.errors.last?.message.contains("must be SHA-256 hashed") == true, "\(job.errors)")
                    case 20:
                        #expect(job.state == .dead && job.errors.last?.message.contains("more than 7 days old") == true)
                    default:
                        #expect(job.state == .completed, "job \(index): \(job.state) \(job.errors)")
                    }
                }
                let requests = await sandbox.state.capiRequests
                #expect(requests.filter { $0.status == 200 }.reduce(0) { $0 + $1.events } == 19)
                #expect(requests.count <= 1 + 2 * 5, "halving finds one culprit of 20 in a few requests: \(requests.map(\.events))")
            }
        }
    }

    @Test("a throttled pixel pauses its key until Meta's estimate, spends no attempt, and runs again when resumed")
    func throttledPixel() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            try await Self.withSandbox { sandbox, base in
                await sandbox.state.addFault(.init(target: "capi", mode: "throttle", code: 80001, regainMinutes: 7, count: 1))
                let ids = try await store.insert((0..<5).map { Self.capiJob($0) }).inserted
                let worker = Self.worker(store, Self.registry(base: base), logger: TestDatabase.logger)
                try await withRunningServices([worker], logger: TestDatabase.logger) { _ in
                    try await eventually("the pixel paused") { try await !store.keyPauses().isEmpty }
                    let pause = try #require(try await store.keyPauses().first)
                    #expect(pause.key == MetaSettings.pixelKey(Self.pixel))
                    #expect(abs(pause.until.timeIntervalSinceNow - 420) < 30)
                    try await eventually("the jobs back, waiting") {
                        try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE state = 'available' AND attempt = 0") == 5
                    }
                    #expect(await sandbox.state.capiRequests.count == 1)
                    #expect(try await store.resume(key: MetaSettings.pixelKey(Self.pixel)))
                    try await eventually("sent after the resume") {
                        try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE state = 'completed' AND attempt = 1") == 5
                    }
                }
                for id in ids { #expect(try await store.require(id).errors.isEmpty, "a throttle is no failure") }
            }
        }
    }

    @Test("a run of 5xx opens Meta's breaker: while it is open the conversions wait without spending attempts, and none is lost")
    func breakerHoldsJobs() async throws {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client)
            try await Self.withSandbox { sandbox, base in
                await sandbox.state.addFault(.init(target: "capi", mode: "status", status: 502, count: 3))
                let meta = MetaSettings(graphBaseURL: base, accessToken: Self.metaToken, pixelID: Self.pixel)
                let upstream = Upstream(
                    Upstream.Settings(
                        name: "meta-jobs", baseURL: base, requestTimeout: .seconds(2),
                        breaker: .init(failureRate: 0.5, minimumCalls: 2, window: .seconds(30), coolDown: .milliseconds(400))))
                var registry = HandlerRegistry()
                registry.register(
                    chunk: CAPIEventJob(
                        settings: CAPISettings(
                            meta: meta, linger: .milliseconds(300),
                            retry: RetryPolicy(maxAttempts: 20, backoff: { _, _ in .milliseconds(50) })),
                        upstream: upstream))
                let ids = try await store.insert((0..<5).map { Self.capiJob($0) }).inserted
                let worker = Self.worker(store, registry, logger: TestDatabase.logger)
                try await withRunningServices([worker], logger: TestDatabase.logger) { _ in
                    try await eventually("every conversion sent") {
                        try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE state = 'completed'") == 5
                    }
                }
                let requests = await sandbox.state.capiRequests
                let failed = requests.filter { $0.status == 502 }.count
                #expect(failed == 3 && requests.last?.status == 200, "\(requests.map(\.status))")
                for id in ids {
                    let job = try await store.require(id)
                    // Each 502 cost an attempt and is in the history; the waits while the breaker was open did not.
                    #expect(job.errors.count == failed && job.attempt == failed + 1, "\(job.attempt) \(job.errors.map(\.message))")
                    #expect(job.errors.allSatisfy { $0.message.contains("502") })
                }
            }
        }
    }

    @Test("thirty seconds of 5xx from Meta open the breaker with the default thresholds (20 calls, half failing, in 30 s); slower failures do not")
    func thirtySecondsOfFailures() async throws {
        try await Self.withSandbox { sandbox, base in
            await sandbox.state.addFault(.init(target: "capi", mode: "status", status: 503))
            let request = UpstreamRequest.json(path: "/v23.0/\(Self.pixel)/events", query: [("access_token", Self.metaToken)], body: Array(#"{"data":[]}"#.utf8))
            // One failed call every 2 s: 15 in any 30 s window, below the volume: it never opens.
            let slowClock = ManualClock()
            let slow = Upstream(Upstream.Settings(name: "meta-slow-failures", baseURL: base, requestTimeout: .seconds(2)), clock: slowClock)
            for _ in 0..<40 {
                let response = try await slow.send(request)
                #expect(response.status == 503)
                slowClock.advance(by: 2)
            }
            #expect(slow.breaker.state == .closed)
            // One every 1.5 s: the twentieth, at 28.5 s, opens it.
            let clock = ManualClock()
            let upstream = Upstream(Upstream.Settings(name: "meta-30s", baseURL: base, requestTimeout: .seconds(2)), clock: clock)
            #expect(upstream.breaker.configuration == CircuitBreaker.Configuration(), "the defaults")
            for call in 1...20 {
                #expect(upstream.breaker.state == .closed, "still closed before call \(call)")
                let response = try await upstream.send(request)
                #expect(response.status == 503)
                if call < 20 { clock.advance(by: 1.5) }
            }
            #expect(upstream.breaker.state == .open)
            let seen = await sandbox.state.capiRequests.count
            do throws(UpstreamError) {
                _ = try await upstream.send(request)
                Issue.record("an open breaker let a call through")
            } catch {
                guard case .circuitOpen(_, let until) = error else { Issue.record("\(error)"); return }
                #expect(until == clock.now().addingTimeInterval(30), "open for the default 30 s cool-down")
            }
            #expect(await sandbox.state.capiRequests.count == seen, "no call while open")
            // Meta recovers; after the cool-down one trial closes it.
            await sandbox.state.clearFaults()
            clock.advance(by: 30)
            let trial = try await upstream.send(request)
            #expect(trial.status == 400)
            #expect(upstream.breaker.state == .closed)
        }
    }

    @Test("5xx answers open the breaker: calls stop, nothing is lost, a trial after the cool-down closes it")
    func breakerOpens() async throws {
        try await Self.withSandbox { sandbox, base in
            await sandbox.state.addFault(.init(target: "capi", mode: "status", status: 503, count: 6))
            let upstream = Upstream(
                Upstream.Settings(
                    name: "meta-test", baseURL: base, requestTimeout: .seconds(2),
                    breaker: .init(failureRate: 0.5, minimumCalls: 6, window: .seconds(30), coolDown: .milliseconds(300))))
            let request = UpstreamRequest.json(path: "/v23.0/\(Self.pixel)/events", query: [("access_token", Self.metaToken)], body: Array(#"{"data":[]}"#.utf8))
            for _ in 0..<6 {
                let response = try await upstream.send(request)
                #expect(response.status == 503)
            }
            #expect(upstream.breaker.state == .open)
            #expect(CircuitBoard.snapshot().first { $0.upstream == "meta-test" }?.state == .open, "published for the dashboard")
            do throws(UpstreamError) {
                _ = try await upstream.send(request)
                Issue.record("an open breaker let a call through")
            } catch {
                guard case .circuitOpen = error else { Issue.record("\(error)"); return }
                #expect(!error.description.contains(Self.metaToken))
            }
            #expect(await sandbox.state.capiRequests.count == 6, "no call while open")
            try await eventually("the cool-down over", timeout: .seconds(5)) { upstream.breaker.state == .halfOpen }
            let trial = try await upstream.send(request)
            #expect(trial.status == 400)  // the sandbox answers the empty batch: Meta is reachable again
            #expect(upstream.breaker.state == .closed)
            #expect(CircuitBoard.snapshot().first { $0.upstream == "meta-test" }?.state == .closed)
        }
    }
}
