import AsyncHTTPClient
public import ConveyorCore
public import Foundation
public import Logging
import Metrics
import NIOCore
import NIOHTTP1
import Synchronization

/// One HTTP API a kind calls (HubSpot's CRM, Meta's Graph API): a base URL, its timeouts, a cap on what
/// it may answer, pooled keep-alive connections and a ``CircuitBreaker``. Every kind that calls an API
/// goes through one, so timeouts, the breaker, size limits and secret-free errors are the same everywhere.
///
/// Errors name the upstream, the method and the path, never the query (where Meta's access token
/// travels) or a header.
public final class Upstream: Sendable {
    public struct Settings: Sendable, Equatable {
        /// A short name for metrics and errors (`meta`, `hubspot`).
        public var name: String
        /// `https://graph.facebook.com`; a path given to ``Upstream/send(_:)`` is appended.
        public var baseURL: String
        /// Connecting may take this long. Default 2 s.
        public var connectTimeout: Duration
        /// The whole request (connect, send, answer) may take this long. Default 10 s.
        public var requestTimeout: Duration
        /// The most bytes of an answer read; a larger one is a failure. Default 4 MiB.
        public var maxResponseBytes: Int
        /// The breaker's thresholds.
        public var breaker: CircuitBreaker.Configuration

        public init(
            name: String, baseURL: String, connectTimeout: Duration = .seconds(2), requestTimeout: Duration = .seconds(10),
            maxResponseBytes: Int = 4 << 20, breaker: CircuitBreaker.Configuration = CircuitBreaker.Configuration()
        ) {
            self.name = name
            self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
            self.connectTimeout = connectTimeout
            self.requestTimeout = requestTimeout
            self.maxResponseBytes = maxResponseBytes
            self.breaker = breaker
        }
    }

    public let settings: Settings
    public let breaker: CircuitBreaker
    private let client: HTTPClient
    private let requests: @Sendable (String) -> Void

    /// Creates an upstream; its breaker reads `clock`. Its state is the `conveyor_circuit_state{upstream}`
    /// gauge (0 closed, 1 half-open, 2 open), and each transition is logged.
    public init(_ settings: Settings, clock: any ConveyorClock = SystemClock(), logger: Logger = Logger(label: "conveyor.http")) {
        self.settings = settings
        let gauge = Gauge(label: "conveyor_circuit_state", dimensions: [("upstream", settings.name)])
        gauge.record(0)
        let name = settings.name
        let coolDown = settings.breaker.coolDown.seconds
        CircuitBoard.enter(name, at: clock.now())
        breaker = CircuitBreaker(name: name, configuration: settings.breaker, clock: clock) { state in
            gauge.record(state.gaugeValue)
            let now = clock.now()
            CircuitBoard.report(name, state: state, at: now, openUntil: now.addingTimeInterval(coolDown))
            logger.warning("circuit breaker changed state", metadata: ["upstream": "\(name)", "state": "\(state.rawValue)"])
        }
        client = Self.client(connectTimeout: settings.connectTimeout)
        requests = { outcome in
            Counter(label: "conveyor_upstream_requests_total", dimensions: [("upstream", name), ("outcome", outcome)]).increment()
        }
    }

    /// Sends `request` unless the breaker is open, and reads the answer (at most the cap). A 5xx, a
    /// timeout or a failed connection counts against the breaker; any answer below 500 counts for it.
    public func send(_ request: UpstreamRequest) async throws(UpstreamError) -> UpstreamResponse {
        let what = "\(settings.name) \(request.method) \(request.path)"
        let trial: Bool
        switch breaker.acquire() {
        case .rejected(let until):
            requests("circuit_open")
            throw .circuitOpen(upstream: settings.name, until: until)
        case .allowed(let isTrial):
            trial = isTrial
        }
        var outgoing = HTTPClientRequest(url: settings.baseURL + request.path + Self.queryString(request.query))
        outgoing.method = HTTPMethod(rawValue: request.method)
        for (name, value) in request.headers { outgoing.headers.add(name: name, value: value) }
        if let body = request.body { outgoing.body = .bytes(ByteBuffer(bytes: body)) }
        let deadline = TimeAmount.nanoseconds(Int64((request.timeout ?? settings.requestTimeout).seconds * 1e9))
        do {
            let response = try await client.execute(outgoing, timeout: deadline)
            let body: ByteBuffer
            do {
                body = try await response.body.collect(upTo: settings.maxResponseBytes)
            } catch is NIOTooManyBytesError {
                breaker.record(success: true, trial: trial)
                requests("too_large")
                throw UpstreamError.responseTooLarge(what: what, limit: settings.maxResponseBytes)
            }
            let status = Int(response.status.code)
            breaker.record(success: status < 500, trial: trial)
            requests(status < 500 ? "\(status / 100)xx" : "5xx")
            return UpstreamResponse(
                status: status, headers: response.headers.map { ($0.name, $0.value) }, body: Array(buffer: body))
        } catch let error as UpstreamError {
            throw error
        } catch {
            breaker.record(success: false, trial: trial)
            if let error = error as? HTTPClientError, error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout {
                requests("timeout")
                throw .timeout(what: what, after: request.timeout ?? settings.requestTimeout)
            }
            requests("transport")
            throw .transport(what: what, message: Self.describe(error))
        }
    }

    /// `?a=1&b=2`, percent-encoded, or "" for none.
    static func queryString(_ query: [(String, String)]) -> String {
        guard !query.isEmpty else { return "" }
        return "?" + query.map { "\(formEncode($0.0))=\(formEncode($0.1))" }.joined(separator: "&")
    }

    /// Percent-encodes everything but unreserved characters (RFC 3986), for queries and form bodies.
    public static func formEncode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics.intersection(CharacterSet(charactersIn: Unicode.Scalar(0)...Unicode.Scalar(127)))
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    /// An error's description without anything a URL could carry (AsyncHTTPClient's errors name no URL;
    /// NIO's connection errors name the host and port only).
    static func describe(_ error: any Error) -> String {
        let text = String(describing: error)
        return text.count > 300 ? String(text.prefix(300)) + "…" : text
    }

    /// One pooled client per connect timeout, for the life of the process (AsyncHTTPClient asks for a
    /// shutdown only before a client is freed, and these never are).
    private static let clients = Mutex<[Int64: HTTPClient]>([:])

    static func client(connectTimeout: Duration) -> HTTPClient {
        let key = Int64(connectTimeout.seconds * 1000)
        return clients.withLock { clients in
            if let client = clients[key] { return client }
            var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow)
            configuration.timeout = .init(connect: .milliseconds(key))
            configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 16)
            configuration.decompression = .disabled
            let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
            clients[key] = client
            return client
        }
    }
}

/// A request to an ``Upstream``.
public struct UpstreamRequest: Sendable {
    public var method: String
    /// Appended to the base URL: `/crm/v3/objects/deals/42`.
    public var path: String
    /// Query parameters, encoded by the upstream (never shown in errors).
    public var query: [(String, String)]
    public var headers: [(String, String)]
    public var body: [UInt8]?
    /// Overrides the upstream's request timeout.
    public var timeout: Duration?

    public init(
        method: String = "GET", path: String, query: [(String, String)] = [], headers: [(String, String)] = [], body: [UInt8]? = nil,
        timeout: Duration? = nil
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.timeout = timeout
    }

    /// A JSON POST.
    public static func json(_ method: String = "POST", path: String, query: [(String, String)] = [], headers: [(String, String)] = [], body: [UInt8])
        -> UpstreamRequest
    {
        UpstreamRequest(method: method, path: path, query: query, headers: headers + [("Content-Type", "application/json")], body: body)
    }
}

/// What an ``Upstream`` answered.
public struct UpstreamResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The first value of header `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    /// The body decoded as a JSON object, or nil when it is not one (HTML, NUL bytes, truncated text).
    public var jsonObject: [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
    }

    /// A storable excerpt of the body for error messages: at most 300 characters, control bytes removed.
    public var excerpt: String {
        FailureRecord.storable(String(decoding: body.prefix(600), as: UTF8.self), limit: 300)
    }
}

/// Why an ``Upstream`` call did not get an answer.
public enum UpstreamError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The breaker is open: no call was made. Wait until `until` (a snooze, no attempt spent).
    case circuitOpen(upstream: String, until: Date)
    case timeout(what: String, after: Duration)
    case transport(what: String, message: String)
    case responseTooLarge(what: String, limit: Int)

    public var description: String {
        switch self {
        case .circuitOpen(let upstream, let until): "the \(upstream) circuit breaker is open until \(RFC3339.format(until)): no call made"
        case .timeout(let what, let after): "\(what): no answer within \(after)"
        case .transport(let what, let message): "\(what): \(message)"
        case .responseTooLarge(let what, let limit): "\(what): the answer is over \(limit) bytes"
        }
    }
}
