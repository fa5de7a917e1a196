import ConveyorCore
import ConveyorPostgres
import ConveyorTestSupport
import ConveyorWeb
import ConveyorWorker
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import PostgresNIO
import Testing

// A hang guard, not a speed bar: on two cores every suite runs at once and CPU-heavy suites (thousands of
// envelopes in a debug build) hold the cooperative threads; a full run ends near 70 s.
@Suite("Dashboard over HTTP", .timeLimit(.minutes(3)))
struct DashboardTests {
    /// Serves a dashboard on a free loopback port over a fresh database for `body`.
    static func withDashboard<T: Sendable>(
        token: String? = nil, schedules: [Schedule] = [], clock: (any ConveyorClock)? = nil, trustedProxies: Set<String> = [],
        panels: [any DashboardPanel] = [], logger: Logger = TestDatabase.logger,
        _ body: @Sendable (_ port: Int, _ store: PostgresJobStore, _ client: PostgresClient) async throws -> T
    ) async throws -> T {
        try await TestDatabase.withFresh { client, _ in
            let store = PostgresJobStore(client: client, clock: clock)
            let dashboard = Dashboard(
                store: store,
                // A loaded CI machine's first statement can take seconds: the 2 s health bound has its own test.
                configuration: .init(
                    token: token, schedules: schedules, trustedProxies: trustedProxies, healthTimeout: .seconds(60), clock: clock ?? SystemClock(),
                    panels: panels),
                logger: logger)
            return try await withServer({ await dashboard.respond(to: $0) }) { port in try await body(port, store, client) }
        }
    }

    /// Serves `handler` on a free loopback port for `body`.
    static func withServer<T: Sendable>(
        limits: WebServer.Limits = WebServer.Limits(), _ handler: @escaping @Sendable (HTTPRequest) async -> HTTPResponse,
        _ body: @Sendable (_ port: Int) async throws -> T
    ) async throws -> T {
        let ports = Recorded<Int>()
        let server = WebServer.application(
            host: "127.0.0.1", port: 0, limits: limits, logger: TestDatabase.logger, onRunning: { ports.append([$0]) }, handler: handler)
        return try await withRunningServices([server], logger: TestDatabase.logger) { _ in
            try await body(try await ports.wait(for: "the server listening") { !$0.isEmpty }[0])
        }
    }

    /// Makes `id` dead after one attempt that failed with `message`.
    static func dead(_ id: UUID, message: String, store: PostgresJobStore) async throws {
        let claimed = try #require(try await store.claim(queue: "default", limit: 1, worker: "w", lease: .seconds(30)).first { $0.id == id })
        _ = try await store.resolve([(id, claimed.attempt, .dead(FailureRecord(message: message, kind: .permanent)))])
    }

    @Test("pages show queues, filtered jobs and a job's history, with every value escaped")
    func pages() async throws {
        try await Self.withDashboard { port, store, _ in
            let hostile = try await store.insert([NewJob(kind: "ads.sync", args: #"{"name": "<script>alert(1)</script>"}"#)]).inserted[0]
            _ = try await store.insert([NewJob(kind: "mail.send", queue: "mail")])
            try await Self.dead(hostile, message: "<b>bold</b> failure", store: store)

            let queues = try await TestHTTPClient.send(.GET, port: port, path: "/")
            #expect(queues.status == .ok && queues.headers.first(name: "Content-Type")?.hasPrefix("text/html") == true)
            #expect(queues.body.contains(">mail</a>") && queues.body.contains(">default</a>"))
            let dead = try await TestHTTPClient.send(.GET, port: port, path: "/jobs?state=dead")
            #expect(dead.body.contains(hostile.uuidString.lowercased()) && !dead.body.contains("mail.send"))
            #expect(dead.body.contains("&lt;b&gt;bold&lt;/b&gt; failure") && !dead.body.contains("<b>bold"))
            let job = try await TestHTTPClient.send(.GET, port: port, path: "/jobs/\(hostile.uuidString.lowercased())")
            #expect(job.status == .ok)
            #expect(job.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !job.body.contains("<script>"))
            #expect(job.body.contains(#"action="/jobs/\#(hostile.uuidString.lowercased())/retry""#), "a dead job offers a retry")
            #expect(try await TestHTTPClient.send(.GET, port: port, path: "/jobs/\(UUID())").status == .notFound)
            #expect(try await TestHTTPClient.send(.GET, port: port, path: "/nothing").status == .notFound)
        }
    }

    @Test("quarantined envelopes are shown escaped, and as hex when they are not UTF-8")
    func rejected() async throws {
        try await Self.withDashboard { port, store, _ in
            let hostile = Rejection(id: UUID(), payload: Data(#"<img src=x onerror=alert(1)>"#.utf8), reason: "envelope is not valid JSON", source: "test")
            let binary = Rejection(id: UUID(), payload: Data([0xC3, 0x28, 0x3C]), reason: "envelope is not valid UTF-8", source: "test")
            _ = try await store.ingest(jobs: [], rejected: [hostile, binary], maxAttempts: { _ in 1 })
            let list = try await TestHTTPClient.send(.GET, port: port, path: "/rejected")
            #expect(list.body.contains(hostile.id.uuidString.lowercased()) && list.body.contains("envelope is not valid UTF-8"))
            let shown = try await TestHTTPClient.send(.GET, port: port, path: "/rejected/\(hostile.id.uuidString.lowercased())")
            #expect(shown.body.contains("&lt;img src=x onerror=alert(1)&gt;") && !shown.body.contains("<img"))
            #expect(try await TestHTTPClient.send(.GET, port: port, path: "/rejected/\(binary.id.uuidString.lowercased())").body.contains("c3 28 3c"))
        }
    }

    @Test("actions from the dashboard's own pages retry, discard, cancel, pause and resume; from another origin they are refused")
    func actions() async throws {
        let logs = LogMessages()
        try await Self.withDashboard(trustedProxies: ["127.0.0.1"], logger: logs.logger(withMetadata: true)) { port, store, _ in
            let ids = try await store.insert([NewJob(kind: "k"), NewJob(kind: "k"), NewJob(kind: "k", queue: "later")]).inserted
            try await Self.dead(ids[0], message: "no", store: store)
            let own = [("Origin", "http://127.0.0.1:\(port)")]
            let path = { (id: UUID) in "/jobs/\(id.uuidString.lowercased())" }

            let forged = try await TestHTTPClient.send(.POST, port: port, path: path(ids[0]) + "/retry", headers: [("Origin", "https://evil.example")])
            #expect(forged.status == .forbidden)
            #expect(try await TestHTTPClient.send(.POST, port: port, path: path(ids[0]) + "/retry").status == .forbidden, "no origin, no token")
            #expect(try await store.require(ids[0]).state == .dead)

            let retried = try await TestHTTPClient.send(.POST, port: port, path: path(ids[0]) + "/retry", headers: own)
            #expect(retried.status == .seeOther && retried.headers.first(name: "Location") == path(ids[0]) + "?done=retried")
            #expect(try await store.require(ids[0]).state == .available)
            let shown = try await TestHTTPClient.send(.GET, port: port, path: path(ids[0]) + "?done=retried")
            #expect(shown.body.contains("Retried: the job is available again"))

            let cancelled = try await TestHTTPClient.send(.POST, port: port, path: path(ids[1]) + "/cancel", headers: own, form: [("reason", "wrong audience")])
            #expect(cancelled.headers.first(name: "Location") == path(ids[1]) + "?done=cancelled")
            let record = try await store.require(ids[1])
            #expect(record.state == .cancelled && record.cancelReason == "wrong audience" && record.cancelledBy == "web")
            let again = try await TestHTTPClient.send(.POST, port: port, path: path(ids[1]) + "/discard", headers: own)
            #expect(again.headers.first(name: "Location") == path(ids[1]) + "?done=nothing", "a cancelled job cannot be discarded")

            #expect(try await TestHTTPClient.send(.POST, port: port, path: "/queues/later/pause", headers: own).status == .seeOther)
            #expect(try await store.pausedQueues().map(\.queue) == ["later"])
            #expect(try await TestHTTPClient.send(.GET, port: port, path: "/").body.contains("paused by web"))
            _ = try await TestHTTPClient.send(.POST, port: port, path: "/queues/later/resume", headers: own)
            #expect(try await store.pausedQueues().isEmpty)
            #expect(try await TestHTTPClient.send(.POST, port: port, path: "/queues/Bad%20Name/pause", headers: own).status == .badRequest)
            // Behind a proxy that rewrites Host, the public host comes in X-Forwarded-Host.
            let proxied = [("Origin", "https://conveyor.example.com"), ("X-Forwarded-Host", "conveyor.example.com")]
            #expect(try await TestHTTPClient.send(.POST, port: port, path: "/queues/later/pause", headers: proxied).status == .seeOther)
        }
        // Every action is logged with the client's address.
        #expect(logs.all.contains { $0.contains("dashboard action") && $0.contains("client=127.0.0.1") && $0.contains("path=/jobs/") }, "\(logs.all)")
        // X-Forwarded-Host from a peer that is not a trusted proxy is not believed.
        try await Self.withDashboard { (port: Int, _: PostgresJobStore, _: PostgresClient) async throws in
            let proxied = [("Origin", "https://conveyor.example.com"), ("X-Forwarded-Host", "conveyor.example.com")]
            let status = try await TestHTTPClient.send(.POST, port: port, path: "/queues/later/pause", headers: proxied).status
            #expect(status == .forbidden)
        }
    }

    /// A kind's page as the dashboard sees one: rows with hostile text and an action.
    struct TestPanel: DashboardPanel {
        let done = Recorded<String>()
        var slug: String { "held-things" }
        var title: String { "Held things" }
        func content() async throws -> DashboardPanelContent {
            DashboardPanelContent(sections: [
                .init(
                    title: "Waiting", header: ["Job", "Why"],
                    rows: [.init(id: "row-1", cells: ["<script>alert(1)</script>", "over & above"], actions: [.init(label: "Approve", action: "approve")], job: UUID())],
                    empty: "none"),
                .init(title: "Done", header: ["What"], rows: [], empty: "Nothing done yet."),
            ])
        }
        func perform(action: String, id: String, by: String) async throws -> String {
            done.append(["\(action) \(id) \(by)"])
            return "approved \(id)"
        }
    }

    @Test("a kind's panel is linked from the queues page, its cells escaped; its actions need the dashboard's own origin and are logged")
    func panels() async throws {
        let panel = TestPanel()
        try await Self.withDashboard(panels: [panel]) { port, _, _ in
            #expect(try await TestHTTPClient.send(.GET, port: port, path: "/").body.contains(#"<a href="/panels/held-things">Held things</a>"#))
            let page = try await TestHTTPClient.send(.GET, port: port, path: "/panels/held-things")
            #expect(page.status == .ok)
            #expect(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !page.body.contains("<script>alert"))
            #expect(page.body.contains("over &amp; above") && page.body.contains("Nothing done yet."))
            #expect(page.body.contains(#"action="/panels/held-things/approve""#))
            let forged = try await TestHTTPClient.send(.POST, port: port, path: "/panels/held-things/approve", headers: [("Origin", "https://evil.example")], form: [("id", "row-1")])
            #expect(forged.status == .forbidden)
            #expect(panel.done.all.isEmpty)
            let own = try await TestHTTPClient.send(.POST, port: port, path: "/panels/held-things/approve", headers: [("Origin", "http://127.0.0.1:\(port)")], form: [("id", "row-1")])
            #expect(own.status == .seeOther && own.headers.first(name: "Location") == "/panels/held-things?done=approved%20row-1")
            #expect(panel.done.all.count == 1 && panel.done.all[0].hasPrefix("approve row-1 web (127.0.0.1"), "\(panel.done.all)")
            #expect(try await TestHTTPClient.send(.GET, port: port, path: "/panels/held-things?done=approved%20row-1").body.contains("approved row-1"))
            #expect(try await TestHTTPClient.send(.GET, port: port, path: "/panels/nothing").status == .notFound)
        }
    }

    @Test("with a token every page but /healthz asks for it; the bearer header and the login cookie pass")
    func token() async throws {
        let token = "s3cret-token-0123456789"
        try await Self.withDashboard(token: token) { port, store, _ in
            let id = try await store.insert([NewJob(kind: "k")]).inserted[0]
            try await Self.dead(id, message: "no", store: store)
            #expect(try await TestHTTPClient.send(.GET, port: port, path: "/").headers.first(name: "Location") == "/login")
            #expect(try await TestHTTPClient.send(.GET, port: port, path: "/metrics").status == .unauthorized)
            let health = try await TestHTTPClient.send(.GET, port: port, path: "/healthz")
            #expect(health.status == .ok && health.body == "ok\n")
            let bearer = [("Authorization", "Bearer \(token)")]
            #expect(try await TestHTTPClient.send(.GET, port: port, path: "/", headers: bearer).status == .ok)
            #expect(try await TestHTTPClient.send(.GET, port: port, path: "/", headers: [("Authorization", "Bearer nope")]).status == .seeOther)

            #expect(try await TestHTTPClient.send(.POST, port: port, path: "/login", form: [("token", "guess")]).status == .unauthorized)
            let login = try await TestHTTPClient.send(.POST, port: port, path: "/login", form: [("token", token)])
            let cookie = try #require(login.headers.first(name: "Set-Cookie"))
            #expect(login.status == .seeOther && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && !cookie.contains("Secure"))
            #expect(cookie.contains("Max-Age=43200") && !cookie.contains(token), "a signed session, not the token: \(cookie)")
            let session = [("Cookie", String(cookie.split(separator: ";")[0]))]
            #expect(try await TestHTTPClient.send(.GET, port: port, path: "/jobs", headers: session).status == .ok)

            let path = "/jobs/\(id.uuidString.lowercased())/retry"
            let forged = try await TestHTTPClient.send(.POST, port: port, path: path, headers: session + [("Origin", "https://evil.example")])
            let stillDead = try await store.require(id).state
            #expect(forged.status == .forbidden && stillDead == .dead)
            #expect(try await TestHTTPClient.send(.POST, port: port, path: path, headers: bearer).status == .seeOther, "scripts use the bearer token")
            #expect(try await store.require(id).state == .available)
        }
    }

    @Test("/metrics adds each queue's jobs by state and oldest wait to the process's own metrics")
    func metrics() async throws {
        try await Self.withDashboard { port, store, _ in
            _ = try await store.insert([NewJob(kind: "k"), NewJob(kind: "k"), NewJob(kind: "k", queue: "mail")])
            let metrics = try await TestHTTPClient.send(.GET, port: port, path: "/metrics")
            #expect(metrics.status == .ok && metrics.headers.first(name: "Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
            #expect(metrics.body.contains(#"conveyor_queue_jobs{queue="default",state="available"} 2"#))
            #expect(metrics.body.contains(#"conveyor_queue_jobs{queue="mail",state="available"} 1"#))
            #expect(metrics.body.contains(#"conveyor_queue_oldest_wait_seconds{queue="default"} "#))
        }
    }

    @Test("declared kind limits and paused keys show on the queues page, in /api/limits and /metrics, with each kind's running count")
    func concurrencyLimits() async throws {
        try await Self.withDashboard { port, store, _ in
            try await store.declareLimits(
                ["video.render": KindLimit(concurrency: 4), "other": KindLimit(concurrency: 2),
                 "meta.ads": KindLimit(rate: RateLimit(starts: 30, per: .seconds(60)))], unlimited: [], by: "w1")
            try await store.declareLimits([:], unlimited: ["other"], by: "w2")
            try await store.pause(key: "meta:act_<1>", until: Date().addingTimeInterval(600), reason: "code 17", by: "op")
            _ = try await store.insert([NewJob(kind: "video.render"), NewJob(kind: "video.render")])
            _ = try await store.claim(queue: "default", limit: 1, worker: "w1", lease: .seconds(30), limits: ["video.render": KindLimit(concurrency: 4)])
            let page = try await TestHTTPClient.send(.GET, port: port, path: "/")
            #expect(page.body.contains("Kind limits") && page.body.contains("1 of 4") && !page.body.contains(">other<"))
            #expect(page.body.contains("30 per 1m per key") && page.body.contains("meta:act_&lt;1&gt;") && page.body.contains("code 17"), "\(page.body)")
            let api = try await TestHTTPClient.send(.GET, port: port, path: "/api/limits")
            #expect(api.body.contains(#""concurrency":4"#) && api.body.contains(#""running":1"#) && api.body.contains(#""declared_by":"w1""#))
            #expect(api.body.contains(#""per_seconds":60"#) && api.body.contains(#""key":"meta:act_<1>""#), "\(api.body)")
            let metrics = try await TestHTTPClient.send(.GET, port: port, path: "/metrics")
            #expect(metrics.body.contains(#"conveyor_kind_concurrency_limit{kind="video.render"} 4"#))
            #expect(metrics.body.contains(#"conveyor_kind_running{kind="video.render"} 1"#))
            #expect(metrics.body.contains("conveyor_paused_keys 1"))
        }
    }

    @Test("circuit breakers published by workers show on the queues page and in /api/circuits, open ones first; stale reports do not")
    func circuits() async throws {
        try await Self.withDashboard { port, store, client in
            let now = Date()
            try await store.publishCircuits(worker: "w1", [("meta", "open", now, now.addingTimeInterval(30)), ("hubspot", "closed", now, nil)])
            try await store.publishCircuits(worker: "w2", [("meta", "closed", now, nil)])
            try await store.publishCircuits(worker: "w1", [("meta", "open", now, now.addingTimeInterval(30)), ("hubspot", "closed", now, nil)])
            try await store.publishCircuits(worker: "gone", [("meta", "open", now, nil)])
            _ = try await client.query("UPDATE conveyor_circuits SET reported_at = now() - interval '1 hour' WHERE worker = 'gone'", logger: TestDatabase.logger)
            let page = try await TestHTTPClient.send(.GET, port: port, path: "/")
            #expect(page.body.contains("Circuit breakers") && page.body.contains("state-dead\">open") && !page.body.contains(">gone<"), "\(page.body)")
            let api = try #require(try JSONSerialization.jsonObject(with: Data(try await TestHTTPClient.send(.GET, port: port, path: "/api/circuits").body.utf8)) as? [[String: Any]])
            #expect(api.count == 3 && api.first?["state"] as? String == "open" && api.first?["worker"] as? String == "w1")
        }
    }

    @Test("the JSON API returns queues, filtered jobs and one job as the CLI prints them; with a token it answers 401, not a login page")
    func api() async throws {
        let token = "api-token-0123456789abcdef"
        try await Self.withDashboard(token: token) { port, store, _ in
            let ids = try await store.insert([NewJob(kind: "video.render", args: #"{"scene": 7}"#), NewJob(kind: "k"), NewJob(kind: "k", queue: "mail")]).inserted
            try await Self.dead(ids[0], message: "ffmpeg exited 1", store: store)
            let bearer = [("Authorization", "Bearer \(token)")]
            let get = { (path: String) in try await TestHTTPClient.send(.GET, port: port, path: path, headers: bearer) }
            let decode = { (body: String) in try JSONSerialization.jsonObject(with: Data(body.utf8)) }

            let queues = try #require(try decode(try await get("/api/queues").body) as? [[String: Any]])
            #expect(queues.map { $0["queue"] as? String } == ["default", "mail"])
            #expect(queues[0]["available"] as? Int == 1 && queues[0]["dead"] as? Int == 1 && queues[0]["paused"] as? Bool == false)

            let dead = try #require(try decode(try await get("/api/jobs?state=dead").body) as? [[String: Any]])
            #expect(dead.map { $0["id"] as? String } == [ids[0].uuidString.lowercased()])
            let response = try await get("/api/jobs/\(ids[0].uuidString.lowercased())")
            #expect(response.status == .ok && response.headers.first(name: "Content-Type") == "application/json")
            let job = try #require(try decode(response.body) as? [String: Any])
            #expect(job["state"] as? String == "dead" && (job["args"] as? [String: Any])?["scene"] as? Int == 7)
            #expect((job["errors"] as? [[String: Any]])?.first?["message"] as? String == "ffmpeg exited 1")
            let limited = try #require(try decode(try await get("/api/jobs?limit=1").body) as? [[String: Any]])
            #expect(limited.count == 1)

            // A job completed with a result carries it, as JSON, in the API and (escaped) on its page.
            let done = try #require(try await store.claim(queue: "mail", limit: 1, worker: "w", lease: .seconds(30)).first)
            _ = try await store.record([(done.id, done.attempt, .completeWithResult(json: #"{"path":"/out/<b>7</b>.mp4"}"#))])
            let withResult = try #require(try decode(try await get("/api/jobs/\(done.id.uuidString.lowercased())").body) as? [String: Any])
            #expect((withResult["result"] as? [String: Any])?["path"] as? String == "/out/<b>7</b>.mp4")
            let busy = try #require(try await store.claim(queue: "default", limit: 1, worker: "w", lease: .seconds(30)).first)
            _ = try await store.heartbeat([(busy.id, busy.attempt)], lease: .seconds(30), progress: [busy.id: JobProgress(fraction: 0.5, note: "<i>half</i>")])
            let running = try #require(try decode(try await get("/api/jobs/\(busy.id.uuidString.lowercased())").body) as? [String: Any])
            #expect(running["progress"] as? Double == 0.5 && running["progress_note"] as? String == "<i>half</i>" && running["progress_at"] is String)
            let busyPage = try await get("/jobs/\(busy.id.uuidString.lowercased())")
            #expect(busyPage.body.contains("50 % &lt;i&gt;half&lt;/i&gt;"))
            let page = try await get("/jobs/\(done.id.uuidString.lowercased())")
            #expect(page.body.contains("<h2>Result</h2>") && page.body.contains("/out/&lt;b&gt;7&lt;/b&gt;.mp4") && !page.body.contains("<b>7</b>"))

            #expect(try await get("/api/jobs/\(UUID())").status == .notFound)
            let bad = try await get("/api/jobs?state=nope")
            #expect(bad.status == .badRequest && bad.body.contains("state nope is not one of"))
            #expect(try await TestHTTPClient.send(.GET, port: port, path: "/api/queues").status == .unauthorized)
        }
    }

    @Test("/schedules lists each schedule's last slot and next fire times, and who leads")
    func schedules() async throws {
        let clock = ManualClock(RFC3339.parse("2026-11-30T01:30:00Z")!)
        let schedules = [try Schedule(name: "ml.retrain-check", cron: "0 2 * * *", kind: "ml.retrain", queue: "ml")]
        try await Self.withDashboard(schedules: schedules, clock: clock) { port, store, _ in
            #expect(try await store.acquireLeadership("maintenance", holder: "worker-a", ttl: .seconds(60)))
            let page = try await TestHTTPClient.send(.GET, port: port, path: "/schedules")
            #expect(page.status == .ok)
            #expect(page.body.contains("ml.retrain-check") && page.body.contains("<code>0 2 * * *</code></td><td>UTC</td>"))
            #expect(page.body.contains(#"2026-11-30T02:00:00Z</span><br><span class="nowrap">2026-12-01T02:00:00Z</span><br><span class="nowrap">2026-12-02T02:00:00Z"#))
            #expect(page.body.contains("<td>maintenance</td><td>worker-a</td>"))
            #expect(page.body.contains("<td>scheduler</td><td><span class=\"state-dead\">none"))
        }
    }

    @Test("a request's path, query and form are percent-decoded, the path after splitting it")
    func parsing() {
        let request = HTTPRequest(method: .POST, uri: "/jobs/a%2Fb?kind=ml.retrain&state=dead&x", body: Array("reason=wrong+audience%21&by=".utf8))
        #expect(request.segments == ["jobs", "a/b"], "%2F stays inside its segment")
        #expect(request.query == ["kind": "ml.retrain", "state": "dead", "x": ""])
        #expect(request.form == ["reason": "wrong audience!", "by": ""])
        #expect(HTTPRequest(method: .GET, uri: "/%zz%4").path == "/%zz%4", "malformed escapes stay as written")
    }
}
