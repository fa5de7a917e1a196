import AsyncHTTPClient
public import ConveyorCore
public import ConveyorRedis
import Crypto
import Foundation
import Logging
import NIOCore
import Synchronization
import NIOHTTP1

/// Where and how outcome callbacks are delivered: `CONVEYOR_CALLBACK_SECRET` signs them,
/// `CONVEYOR_CALLBACK_HOSTS` lists the hosts a `callback_url` may name, `REDIS_URL` serves `reply_to`.
public struct CallbackSettings: Sendable {
    /// The HMAC-SHA256 key. Without it nothing is delivered (the jobs retry until it is set).
    public var secret: String?
    /// Allowed `host` or `host:port` entries, lowercased. Empty: no URL is allowed.
    public var hosts: Set<String>
    /// The Redis that `reply_to` lists live in.
    public var redis: RedisConfiguration?
    /// How long one delivery may take. Default 10 s.
    public var timeout: Duration

    /// The largest body delivered: 512 KiB (a result is at most 256 KiB, an error message 8 KiB).
    public static let maxBodyBytes = 512 << 10
    /// The most of a receiver's response read (for the failure message): 2 KiB.
    public static let maxResponseBytes = 2 << 10

    public init(secret: String? = nil, hosts: Set<String> = [], redis: RedisConfiguration? = nil, timeout: Duration = .seconds(10)) {
        self.secret = secret
        self.hosts = hosts
        self.redis = redis
        self.timeout = timeout
    }

    /// Why a setting was refused.
    public struct SettingError: Error, Sendable, CustomStringConvertible {
        public var setting: String
        public var reason: String
        public var description: String { "\(setting): \(reason)" }
    }

    /// Parses `CONVEYOR_CALLBACK_HOSTS`: comma-separated `host` or `host:port` (`hooks.example.com`,
    /// `127.0.0.1:8080`, `[::1]:9000`), no scheme, no path, no wildcard.
    public static func parseHosts(_ text: String) throws(SettingError) -> Set<String> {
        var hosts: Set<String> = []
        for item in text.split(separator: ",") {
            let entry = item.trimmingCharacters(in: .whitespaces).lowercased()
            guard !entry.isEmpty else { continue }
            guard !entry.contains("/"), !entry.contains("*"), !entry.contains("@"),
                  let url = URLComponents(string: "http://\(entry)"), let host = url.host, !host.isEmpty,
                  url.path.isEmpty, url.query == nil
            else {
                throw SettingError(setting: "CONVEYOR_CALLBACK_HOSTS", reason: "\(entry.debugDescription) is not host or host:port")
            }
            hosts.insert(entry)
        }
        return hosts
    }

    /// Whether `url` may be called: http or https, no user info, its host (or host:port) listed.
    func refusal(of url: URL) -> String? {
        guard let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https" else {
            return "callback_url must be http or https"
        }
        guard url.user == nil, url.password == nil else { return "callback_url must not carry credentials" }
        guard var host = url.host?.lowercased(), !host.isEmpty else { return "callback_url has no host" }
        if host.contains(":") && !host.hasPrefix("[") { host = "[\(host)]" }
        let withPort = url.port.map { "\(host):\($0)" }
        if hosts.contains(host) || withPort.map(hosts.contains) == true { return nil }
        return "callback host \(withPort ?? host) is not in CONVEYOR_CALLBACK_HOSTS"
    }
}

/// `conveyor.callback`: delivers a finished job's outcome `{id, kind, state, result, error}` to the
/// `callback_url` (an HTTP POST) or the `reply_to` Redis list its producer named. PostgreSQL enqueues it
/// when the job ends (migration 0014's trigger), so it is itself a retried job: a receiver that is down
/// loses nothing. The body is signed: `X-Conveyor-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
/// "<t>.<body>">` with `CONVEYOR_CALLBACK_SECRET`. Redirects are not followed, hosts must be allowed,
/// and body and response are size-capped, so a producer cannot turn workers into a proxy.
public struct CallbackJob: JobHandler {
    public struct Args: Codable, Sendable {
        public var url: String?
        public var reply_to: String?
        public var body: JSONValue
    }

    public static let kind = "conveyor.callback"

    public var options: JobKindOptions {
        // About 19 hours over 20 attempts: 1 s doubling to an hour.
        JobKindOptions(timeout: .seconds(60), retry: RetryPolicy(maxAttempts: 20, backoff: RetryPolicy.exponential(base: .seconds(1), cap: .seconds(3600))))
    }

    let settings: CallbackSettings
    let clock: any ConveyorClock
    let redis: LazyRedis?

    /// The client for every delivery of the process: redirects are refused, connections time out. It
    /// lives as long as the process (never shut down; AsyncHTTPClient requires that only before deinit).
    private static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow)
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(10))
        configuration.decompression = .disabled
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    public init(settings: CallbackSettings, clock: any ConveyorClock = SystemClock()) {
        self.settings = settings
        self.clock = clock
        self.redis = settings.redis.map(LazyRedis.init)
    }

    /// `t=<seconds>,v1=<hex>`: the signature header of `body` at `timestamp`.
    public static func signature(body: [UInt8], timestamp: Int, secret: String) -> String {
        var signed = Array("\(timestamp).".utf8)
        signed += body
        let code = HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: Array(secret.utf8)))
        return "t=\(timestamp),v1=" + code.map { String(format: "%02x", $0) }.joined()
    }

    public func run(_ args: Args, context: JobContext) async throws -> JobOutcome {
        let body = Array(try JSONEncoder().encode(args.body))
        guard body.count <= CallbackSettings.maxBodyBytes else {
            throw JobFailure.permanent("callback body is \(body.count) bytes, at most \(CallbackSettings.maxBodyBytes) allowed")
        }
        // Not a bug of this job: retried until a deployment sets it.
        guard let secret = settings.secret, !secret.isEmpty else {
            throw CallbackError("CONVEYOR_CALLBACK_SECRET is not set on this worker: callbacks are not delivered unsigned")
        }
        let timestamp = Int(clock.now().timeIntervalSince1970)
        let signature = Self.signature(body: body, timestamp: timestamp, secret: secret)
        if let text = args.url {
            return try await post(text, body: body, signature: signature, context: context)
        }
        if let list = args.reply_to {
            return try await push(list, body: body, signature: signature, timestamp: timestamp)
        }
        throw JobFailure.permanent("a callback needs url or reply_to")
    }

    private func post(_ text: String, body: [UInt8], signature: String, context: JobContext) async throws -> JobOutcome {
        guard let url = URL(string: text) else { throw JobFailure.permanent("callback_url is not a URL") }
        if let refusal = settings.refusal(of: url) { throw JobFailure.permanent(refusal) }
        var request = HTTPClientRequest(url: text)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "conveyor-callback/1")
        request.headers.add(name: "X-Conveyor-Signature", value: signature)
        request.body = .bytes(ByteBuffer(bytes: body))
        let response: HTTPClientResponse
        do {
            response = try await Self.client.execute(request, timeout: .nanoseconds(Int64(settings.timeout.seconds * 1e9)))
        } catch {
            throw CallbackError("delivery to \(url.host ?? "?") failed: \(error)")
        }
        var excerpt = ByteBuffer()
        for try await chunk in response.body {
            if excerpt.readableBytes < CallbackSettings.maxResponseBytes {
                var chunk = chunk
                excerpt.writeBuffer(&chunk)
            }
        }
        let said = FailureRecord.storable(String(buffer: excerpt), limit: CallbackSettings.maxResponseBytes)
        let code = Int(response.status.code)
        context.logger.debug("callback delivered", metadata: ["status": "\(code)", "host": "\(url.host ?? "?")"])
        switch code {
        case 200..<300:
            return try .completed(result: ["status": code])
        case 300..<400:
            throw JobFailure.permanent("the receiver answered \(code) (redirects are not followed)")
        case 408, 429, 500...:
            if let retryAfter = response.headers.first(name: "Retry-After").flatMap(Double.init), retryAfter >= 0 {
                throw JobFailure.retryAfter(.seconds(min(retryAfter, 3600)), "the receiver answered \(code): \(said)")
            }
            throw CallbackError("the receiver answered \(code): \(said)")
        default:
            throw JobFailure.permanent("the receiver refused the callback with \(code): \(said)")
        }
    }

    private func push(_ list: String, body: [UInt8], signature: String, timestamp: Int) async throws -> JobOutcome {
        guard let redis = redis?.connection else { throw CallbackError("reply_to needs REDIS_URL on this worker") }
        // The body travels as a string, so the signed bytes arrive exactly as signed.
        let message: JSONValue = .object(["body": .string(String(decoding: body, as: UTF8.self)), "signature": .string(signature)])
        let reply = try await redis.send([Data("LPUSH".utf8), Data(list.utf8), try JSONEncoder().encode(message)])
        if case .error(let message) = reply { throw CallbackError("LPUSH to reply_to failed: \(message)") }
        return try .completed(result: ["reply_to": list])
    }
}

/// The Redis connection for `reply_to`, opened (with its thread) on first use only: most processes that
/// build the registry never deliver a callback.
final class LazyRedis: Sendable {
    private let configuration: RedisConfiguration
    private let opened = Mutex<RedisConnection?>(nil)

    init(_ configuration: RedisConfiguration) { self.configuration = configuration }

    var connection: RedisConnection {
        opened.withLock { opened in
            if let opened { return opened }
            let connection = RedisConnection(configuration: configuration, name: "conveyor-callback")
            opened = connection
            return connection
        }
    }
}

/// A delivery that failed and is retried.
struct CallbackError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
