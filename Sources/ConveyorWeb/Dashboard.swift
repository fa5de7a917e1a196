public import ConveyorCore
public import ConveyorPostgres
import Crypto
import Foundation
import Synchronization
public import Logging
import NIOHTTP1
public import Prometheus

/// The web dashboard (DESIGN §1, `conveyor web`): queues, jobs and quarantined envelopes, admin actions
/// (retry, discard, cancel, pause, resume), `/metrics` and `/healthz`. Hand ``respond(to:)`` to an
/// ``HTTPServer``.
///
/// With a token every page but `/healthz` asks for it, as `Authorization: Bearer …` or through
/// `/login`, which sets a signed session cookie (`HttpOnly`, `SameSite=Strict`, `Max-Age` 12 h, `Secure`
/// off loopback; the token itself never leaves the server) and `/logout`, which clears it; five wrong
/// tokens from one address in five minutes lock it out for the rest of them (429). Without a token
/// (loopback only) only loopback host names are answered (421 otherwise), so a DNS-rebinding page
/// cannot reach it. Actions are `POST`s that must come from the dashboard's own pages (their `Origin`
/// or `Referer` names its host; `X-Forwarded-Host` only from a trusted proxy) or carry the bearer
/// token, and each is logged with the client's address.
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
        /// Peers whose `X-Forwarded-Host` and `X-Forwarded-Proto` are believed (a TLS-terminating proxy).
        public var trustedProxies: Set<String>
        /// Session cookies carry `Secure` (on when the dashboard listens beyond loopback).
        public var secureCookies: Bool
        /// How long a session lasts. Default 12 hours.
        public var sessionLifetime: Duration
        /// `/healthz` answers 503 when the database has not answered within this. Default 2 s.
        public var healthTimeout: Duration
        /// Sessions' expiry and the login lockout read this clock.
        public var clock: any ConveyorClock
        /// Pages the shipped kinds add (``DashboardPanel``), linked from the queues page. Default none.
        public var panels: [any DashboardPanel]

        /// Creates a configuration.
        public init(
            token: String?, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), pageSize: Int = 50, schedules: [Schedule] = [],
            trustedProxies: Set<String> = [], secureCookies: Bool = false, sessionLifetime: Duration = .seconds(12 * 3600),
            healthTimeout: Duration = .seconds(2), clock: any ConveyorClock = SystemClock(), panels: [any DashboardPanel] = []
        ) {
            self.panels = panels
            self.token = token
            self.registry = registry
            self.pageSize = pageSize
            self.schedules = schedules
            self.trustedProxies = trustedProxies
            self.secureCookies = secureCookies
            self.sessionLifetime = sessionLifetime
            self.healthTimeout = healthTimeout
            self.clock = clock
        }
    }

    let store: PostgresJobStore
    let configuration: Configuration
    let logger: Logger
    let failedLogins = LoginThrottle()

    static let cookieName = "conveyor_session"

    /// Creates a dashboard on `store`.
    public init(store: PostgresJobStore, configuration: Configuration, logger: Logger = Logger(label: "conveyor.web")) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
    }

    /// Answers one request.
    public func respond(to request: HTTPRequest) async -> HTTPResponse {
        if request.segments == ["healthz"] && (request.method == .GET || request.method == .HEAD) { return await health() }
        if configuration.token == nil && !Self.isLoopback(host: request.headers.first(name: "Host")) {
            // Without a token only loopback is served: a foreign page whose name was rebound to 127.0.0.1
            // sends its own name as Host.
            return .text("this dashboard has no token and answers only loopback host names\n", status: .misdirectedRequest)
        }
        let response = await authorizeAndRoute(request)
        if request.method == .POST {
            logger.notice(
                "dashboard action",
                metadata: ["path": "\(request.path)", "client": "\(clientDescription(request))", "status": "\(response.status.code)"])
        }
        return response
    }

    private func authorizeAndRoute(_ request: HTTPRequest) async -> HTTPResponse {
        switch (request.method, request.segments) {
        case (.GET, ["login"]):
            return Self.loginPage()
        case (.POST, ["login"]):
            return login(request)
        case (.POST, ["logout"]):
            guard hasValidBearer(request) || fromOwnPage(request) else {
                return .text("actions must come from the dashboard's own pages\n", status: .forbidden)
            }
            var response = HTTPResponse.redirect(configuration.token == nil ? "/" : "/login")
            response.headers.add(name: "Set-Cookie", value: "\(Self.cookieName)=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict\(cookieSecurity(request))")
            return response
        default:
            break
        }
        let bearer = hasValidBearer(request)
        guard bearer || hasValidCookie(request) else {
            if request.segments == ["metrics"] || request.segments.first == "api" || request.method != .GET {
                return HTTPResponse(status: .unauthorized, headers: ["WWW-Authenticate": "Bearer"], body: Array("token required\n".utf8))
            }
            return .redirect("/login")
        }
        if request.method == .POST && !bearer && !fromOwnPage(request) {
            return .text("actions must come from the dashboard's own pages\n", status: .forbidden)
        }
        do {
            return try await route(request, client: clientDescription(request))
        } catch {
            let reason = ConveyorStoreError.describe(error)
            logger.warning("dashboard request failed", metadata: ["path": "\(request.path)", "error": "\(reason)"])
            return .html(HTML.page("Error", "<p>\(HTML.escape(reason))</p>"), status: .internalServerError)
        }
    }

    private func route(_ request: HTTPRequest, client: String) async throws -> HTTPResponse {
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
        case (.GET, 2, "panels"): return try await panelPage(second, flash: request.query["done"])
        case (.POST, 3, "panels"): return try await panelAction(second, third, form: request.form, client: client)
        case (.GET, 2, "api") where second == "queues": return try await apiQueues()
        case (.GET, 2, "api") where second == "limits": return try await apiLimits()
        case (.GET, 2, "api") where second == "circuits": return try await apiCircuits()
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
                    Self.isValidSession(String(parts[1]), token: token, now: configuration.clock.now())
                {
                    return true
                }
            }
        }
        return false
    }

    /// A session: `v1.EXPIRY.HMAC`, the HMAC-SHA256 of `v1.EXPIRY` keyed by a key derived from the token
    /// (a new token ends every session); the token itself is never sent.
    static func session(token: String, expires: Date) -> String {
        let payload = "v1.\(Int64(expires.timeIntervalSince1970))"
        return payload + "." + sessionMAC(payload, token: token)
    }

    static func isValidSession(_ value: String, token: String, now: Date) -> Bool {
        let parts = value.split(separator: ".")
        guard parts.count == 3, parts[0] == "v1", let expires = Int64(parts[1]) else { return false }
        guard constantTimeEqual(String(parts[2]), sessionMAC("v1.\(parts[1])", token: token)) else { return false }
        return Double(expires) > now.timeIntervalSince1970
    }

    private static func sessionMAC(_ payload: String, token: String) -> String {
        let key = SymmetricKey(data: SHA256.hash(data: Array("conveyor-session-v1:\(token)".utf8)))
        return HMAC<SHA256>.authenticationCode(for: Array(payload.utf8), using: key).map { String(format: "%02x", $0) }.joined()
    }

    /// Whether `Host` names loopback: `localhost`, `127.0.0.1` or `[::1]`, any port.
    static func isLoopback(host: String?) -> Bool {
        guard var host = host?.lowercased() else { return false }
        if host.hasPrefix("[") {
            host = String(host.dropFirst().prefix { $0 != "]" })
        } else if let colon = host.firstIndex(of: ":") {
            host = String(host[..<colon])
        }
        return host == "localhost" || host == "127.0.0.1" || host == "::1"
    }

    /// The request came through a trusted proxy.
    private func isProxied(_ request: HTTPRequest) -> Bool { configuration.trustedProxies.contains(request.client) }

    private func clientDescription(_ request: HTTPRequest) -> String {
        if isProxied(request), let forwarded = request.headers.first(name: "X-Forwarded-For") { return "\(forwarded) via \(request.client)" }
        return request.client.isEmpty ? "?" : request.client
    }

    private func cookieSecurity(_ request: HTTPRequest) -> String {
        let https = isProxied(request) && request.headers.first(name: "X-Forwarded-Proto")?.lowercased() == "https"
        return configuration.secureCookies || https ? "; Secure" : ""
    }

    /// Whether a `POST` came from a page of this host (browsers send `Origin` on form posts). Behind a
    /// trusted proxy that rewrites `Host`, the public host is its `X-Forwarded-Host`.
    private func fromOwnPage(_ request: HTTPRequest) -> Bool {
        let forwarded = isProxied(request) ? request.headers.first(name: "X-Forwarded-Host") : nil
        guard let host = forwarded ?? request.headers.first(name: "Host") else { return false }
        guard let source = request.headers.first(name: "Origin") ?? request.headers.first(name: "Referer"),
            let components = URLComponents(string: source), let sourceHost = components.host
        else { return false }
        return (components.port.map { "\(sourceHost):\($0)" } ?? sourceHost) == host
    }

    private func login(_ request: HTTPRequest) -> HTTPResponse {
        guard let token = configuration.token else { return .redirect("/") }
        let now = configuration.clock.now()
        let client = clientDescription(request)
        if let wait = failedLogins.lockedOut(client, now: now) {
            logger.warning("dashboard login locked out", metadata: ["client": "\(client)"])
            var response = Self.loginPage(error: "Too many wrong tokens from your address; try again in \(Int(wait.rounded(.up))) s.", status: .tooManyRequests)
            response.headers.add(name: "Retry-After", value: "\(Int(wait.rounded(.up)))")
            return response
        }
        guard Self.constantTimeEqual(request.form["token"] ?? "", token) else {
            failedLogins.failed(client, now: now)
            logger.warning("dashboard login refused", metadata: ["client": "\(client)"])
            return Self.loginPage(error: "That is not the token.", status: .unauthorized)
        }
        var response = HTTPResponse.redirect("/")
        let lifetime = Int64(configuration.sessionLifetime.seconds)
        let session = Self.session(token: token, expires: now.addingTimeInterval(Double(lifetime)))
        response.headers.add(
            name: "Set-Cookie", value: "\(Self.cookieName)=\(session); Path=/; Max-Age=\(lifetime); HttpOnly; SameSite=Strict\(cookieSecurity(request))")
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

    /// `ok` when the database answers within ``Configuration/healthTimeout``, 503 otherwise.
    private func health() async -> HTTPResponse {
        let store = self.store
        let timeout = configuration.healthTimeout
        let answer: String? = await withTaskGroup(of: String?.self) { group in
            group.addTask {
                do {
                    _ = try await store.now()
                    return ""
                } catch {
                    return ConveyorStoreError.describe(error)
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        switch answer {
        case ""?: return .text("ok\n")
        case let reason?: return .text("database unreachable: \(reason)\n", status: .serviceUnavailable)
        case nil: return .text("database did not answer within \(timeout)\n", status: .serviceUnavailable)
        }
    }
}

/// Wrong tokens per client address: five within five minutes lock the address out until the oldest
/// of them is five minutes old.
final class LoginThrottle: Sendable {
    static let limit = 5
    static let window: TimeInterval = 300
    private let failures = Mutex<[String: [Date]]>([:])

    func failed(_ client: String, now: Date) {
        failures.withLock { failures in
            failures[client, default: []].append(now)
            if failures.count > 10_000 { failures = failures.filter { ($0.value.last ?? .distantPast) > now.addingTimeInterval(-Self.window) } }
        }
    }

    /// Seconds left in the lockout, or nil when `client` may try.
    func lockedOut(_ client: String, now: Date) -> TimeInterval? {
        failures.withLock { failures in
            let recent = (failures[client] ?? []).filter { $0 > now.addingTimeInterval(-Self.window) }
            failures[client] = recent.isEmpty ? nil : recent
            guard recent.count >= Self.limit, let oldest = recent.first else { return nil }
            return oldest.addingTimeInterval(Self.window).timeIntervalSince(now)
        }
    }
}
