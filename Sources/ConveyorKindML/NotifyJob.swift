public import ConveyorCore
import ConveyorHTTPClient
import Foundation
import Logging

/// `ml.notify`: one message to `ML_RETRAIN_NOTIFY_URL`, a Slack-compatible incoming webhook
/// (`POST {"text": …}`), as its own job so a Slack outage retries without touching the check.
///
/// The URL is a secret (the webhook's path is its credential): it is never logged nor in an error,
/// which name the upstream `ml-notify` only. 2xx: done; 429: retried after `Retry-After`; 5xx and
/// timeouts: retried with backoff; other 4xx (`no_service`, `invalid_payload`): dead with the status.
public struct NotifyJob: JobHandler {
    public struct Args: Codable, Sendable {
        public var text: String
    }

    public static let kind = "ml.notify"
    let upstream: Upstream?

    public init(settings: MLSettings, clock: any ConveyorClock = SystemClock()) {
        upstream = settings.notifyURL.map {
            Upstream(Upstream.Settings(name: "ml-notify", baseURL: $0, requestTimeout: .seconds(10), maxResponseBytes: 64 << 10), clock: clock, logger: Logger(label: "conveyor.ml"))
        }
    }

    public var options: JobKindOptions {
        JobKindOptions(timeout: .seconds(30), retry: RetryPolicy(maxAttempts: 10, backoff: RetryPolicy.exponential(base: .seconds(30), cap: .seconds(3600))))
    }

    public func run(_ args: Args, context: JobContext) async throws -> JobOutcome {
        guard let upstream else { throw JobFailure.permanent("ML_RETRAIN_NOTIFY_URL is not set: nowhere to send the message") }
        let body = MLJSON.encode(.object(["text": .string(String(args.text.prefix(3000)))]))
        let response: UpstreamResponse
        do {
            response = try await upstream.send(.json(path: "", body: Array(body.utf8)))
        } catch .circuitOpen(_, let until) {
            return .snooze(.milliseconds(Int64(max(until.timeIntervalSinceNow, 0.1) * 1000)))
        } catch {
            throw JobFailure.retryAfter(.seconds(30), "the notification webhook did not answer: \(error.kind)")
        }
        switch response.status {
        case 200..<300: return .completed
        case 429:
            let wait = response.header("Retry-After").flatMap(Int.init) ?? 60
            throw JobFailure.retryAfter(.seconds(min(max(wait, 1), 3600)), "the notification webhook throttled (HTTP 429)")
        case 500...: throw JobFailure.retryAfter(.seconds(60), "the notification webhook answered HTTP \(response.status)")
        default: throw JobFailure.permanent("the notification webhook refused the message: HTTP \(response.status) \(response.excerpt)")
        }
    }
}

extension UpstreamError {
    /// What went wrong without the URL.
    var kind: String {
        switch self {
        case .circuitOpen: "its circuit breaker is open"
        case .timeout(_, let after): "no answer within \(after)"
        case .transport: "the connection failed"
        case .responseTooLarge(_, let limit): "an answer over \(limit) bytes"
        }
    }
}
