public import ConveyorCore
public import ConveyorPostgres
import Foundation
public import Logging
import NIOHTTP1
public import Prometheus

/// The web dashboard (DESIGN §1, `conveyor web`): queues, jobs and quarantined envelopes, admin actions
/// (retry, discard, cancel, pause, resume), `/metrics` and `/healthz`. Hand ``respond(to:)`` to an
/// ``HTTPServer``.
///
/// With a token every page but `/healthz` asks for it, as `Authorization: Bearer …` or through
/// `/login`, which sets an `HttpOnly`, `SameSite=Strict` cookie. Actions are `POST`s that must come
/// from the dashboard's own pages (their `Origin` or `Referer` names its host) or carry the bearer
/// token, so another site cannot trigger them through an operator's browser.
public struct Dashboard: Sendable {
    /// Dashboard settings.
    public struct Configuration: Sendable {
        /// The access token; nil: no login (only for a loopback address, which `conveyor web` enforces).
        public var token: String?
        /// The registry of this process's own metrics, served on `/metrics` with the queue gauges. Default: a new one.
        public var registry: PrometheusCollectorRegistry
        /// Rows per page of a listing. Default 50.
        public var pageSize: Int
        /// The schedules in effect (declared in code, overridden by configuration), for `/schedules`. Default none.
        public var schedules: [Schedule]

        /// Creates a configuration.
        public init(
            token: String?, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), pageSize: Int = 50, schedules: [Schedule] = []
        ) {
            self.token = token
            self.registry = registry
            self.pageSize = pageSize
            self.schedules = schedules
        }
    }

    let store: PostgresJobStore
    let configuration: Configuration
    let logger: Logger

    static let cookieName = "conveyor_token"

    /// Creates a dashboard on `store`.
    public init(store: PostgresJobStore, configuration: Configuration, logger: Logger = Logger(label: "conveyor.web")) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
    }

    /// Answers one request.
    public func respond(to request: HTTPRequest) async -> HTTPResponse {
        switch (request.method, request.path) {
        case (.GET, "/healthz"), (.HEAD, "/healthz"):
            return await health()
        case (.GET, "/login"):
            return Self.loginPage()
        case (.POST, "/login"):
            return login(request)
        default:
            break
        }
        let bearer = hasValidBearer(request)
        guard bearer || hasValidCookie(request) else {
            if request.path == "/metrics" || request.path.hasPrefix("/api/") || request.method != .GET {
                return HTTPResponse(status: .unauthorized, headers: ["WWW-Authenticate": "Bearer"], body: Array("token required\n".utf8))
            }
            return .redirect("/login")
        }
        if request.method == .POST && !bearer && !fromOwnPage(request) {
            return .text("actions must come from the dashboard's own pages\n", status: .forbidden)
        }
        do {
            return try await route(request)
        } catch {
            let reason = ConveyorStoreError.describe(error)
            logger.warning("dashboard request failed", metadata: ["path": "\(request.path)", "error": "\(reason)"])
            return .html(HTML.page("Error", "<p>\(HTML.escape(reason))</p>"), status: .internalServerError)
        }
    }

    private func route(_ request: HTTPRequest) async throws -> HTTPResponse {
        let segments = request.segments
        let second = segments.count > 1 ? segments[1] : "", third = segments.count > 2 ? segments[2] : ""
        switch (request.method, segments.count, segments.first ?? "") {
        case (.GET, 0, _): return try await queuesPage(flash: request.query["done"])
        case (.GET, 1, "jobs"): return try await jobsPage(request.query)
        case (.GET, 2, "jobs"): return try await jobPage(second, flash: request.query["done"])
        case (.POST, 3, "jobs"): return try await jobAction(second, third, form: request.form)
        case (.POST, 2, "dead") where second == "retry": return try await retryDead(kind: request.form["kind"])
        case (.POST, 3, "queues"): return try await queueAction(second, third)
        case (.GET, 1, "rejected"): return try await rejectedPage(request.query)
        case (.GET, 2, "rejected"): return try await rejectedEnvelopePage(second)
        case (.GET, 1, "metrics"): return try await metrics()
        case (.GET, 1, "schedules"): return try await schedulesPage()
        case (.GET, 2, "api") where second == "queues": return try await apiQueues()
        case (.GET, 2, "api") where second == "limits": return try await apiLimits()
        case (.GET, 2, "api") where second == "jobs": return try await apiJobs(request.query)
        case (.GET, 3, "api") where second == "jobs": return try await apiJob(third)
        default: return .html(HTML.page("Not found", "<p>Nothing at \(HTML.escape(request.path)).</p>"), status: .notFound)
        }
    }

    // MARK: - Access

    private func hasValidBearer(_ request: HTTPRequest) -> Bool {
        guard let token = configuration.token else { return false }
        guard let value = request.headers.first(name: "Authorization"), value.hasPrefix("Bearer ") else { return false }
        return Self.constantTimeEqual(String(value.dropFirst(7)), token)
    }

    private func hasValidCookie(_ request: HTTPRequest) -> Bool {
        guard let token = configuration.token else { return true }
        for header in request.headers[canonicalForm: "Cookie"] {
            for pair in header.split(separator: ";") {
                let parts = pair.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
                if parts.count == 2, parts[0] == Self.cookieName,
                    Self.constantTimeEqual(HTTPRequest.percentDecoded(String(parts[1]), plusIsSpace: false), token)
                {
                    return true
                }
            }
        }
        return false
    }

    /// Whether a `POST` came from a page of this host (browsers send `Origin` on form posts). Behind a
    /// proxy that rewrites `Host`, the public host is its `X-Forwarded-Host` (a cross-site form cannot
    /// set that header).
    private func fromOwnPage(_ request: HTTPRequest) -> Bool {
        guard let host = request.headers.first(name: "X-Forwarded-Host") ?? request.headers.first(name: "Host") else { return false }
        guard let source = request.headers.first(name: "Origin") ?? request.headers.first(name: "Referer"),
            let components = URLComponents(string: source), let sourceHost = components.host
        else { return false }
        return (components.port.map { "\(sourceHost):\($0)" } ?? sourceHost) == host
    }

    private func login(_ request: HTTPRequest) -> HTTPResponse {
        guard let token = configuration.token else { return .redirect("/") }
        guard Self.constantTimeEqual(request.form["token"] ?? "", token) else {
            return Self.loginPage(error: "That is not the token.", status: .unauthorized)
        }
        var response = HTTPResponse.redirect("/")
        // Secure when the browser reached us over HTTPS (a TLS-terminating proxy says so).
        let secure = request.headers.first(name: "X-Forwarded-Proto")?.lowercased() == "https" ? "; Secure" : ""
        response.headers.add(name: "Set-Cookie", value: "\(Self.cookieName)=\(HTML.query(token)); Path=/; HttpOnly; SameSite=Strict\(secure)")
        return response
    }

    static func loginPage(error: String? = nil, status: HTTPResponseStatus = .ok) -> HTTPResponse {
        let body = """
            \(error.map { "<p class=\"state-dead\">\(HTML.escape($0))</p>" } ?? "")
            <form method="post" action="/login"><label>Access token (CONVEYOR_WEB_TOKEN)
            <input type="password" name="token" autofocus></label> <button>Sign in</button></form>
            """
        return .html(HTML.page("Sign in", body), status: status)
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let (x, y) = (Array(a.utf8), Array(b.utf8))
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for index in 0..<max(x.count, y.count) {
            difference |= (index < x.count ? x[index] : 0) ^ (index < y.count ? y[index] : 0)
        }
        return difference == 0
    }

    private func health() async -> HTTPResponse {
        do {
            _ = try await store.now()
            return .text("ok\n")
        } catch {
            return .text("database unreachable: \(ConveyorStoreError.describe(error))\n", status: .serviceUnavailable)
        }
    }
}
