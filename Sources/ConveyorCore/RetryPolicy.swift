/// How a kind retries failed attempts: how many attempts, and how long to wait between them.
public struct RetryPolicy: Sendable {
    /// The default number of attempts before a job is dead-lettered: 25.
    public static let defaultMaxAttempts = 25

    /// Attempts before dead-letter when the job does not set its own. Default 25.
    public var maxAttempts: Int
    /// The wait after failed attempt `n` (1-based), given a uniform random value in `0..<1`.
    public var backoff: @Sendable (_ attempt: Int, _ random: Double) -> Duration

    /// Creates a policy; by default the long-horizon ``polynomialBackoff(attempt:random:)`` schedule.
    public init(
        maxAttempts: Int = RetryPolicy.defaultMaxAttempts,
        backoff: @escaping @Sendable (_ attempt: Int, _ random: Double) -> Duration = RetryPolicy.polynomialBackoff
    ) {
        self.maxAttempts = maxAttempts
        self.backoff = backoff
    }

    /// The default policy: 25 attempts over about three weeks.
    public static let standard = RetryPolicy()

    /// The default schedule (Sidekiq's): `attempt⁴ + 15 + random·10·(attempt + 1)` seconds.
    ///
    /// Attempt 1 waits 16–36 s, attempt 5 about 11 min, attempt 10 about 2.8 h, attempt 24 about 3.8 days;
    /// the 24 waits of a 25-attempt job add up to about 20 days.
    @Sendable public static func polynomialBackoff(attempt: Int, random: Double) -> Duration {
        let n = Double(max(attempt, 1))
        let seconds = n * n * n * n + 15 + (random * 10).rounded(.down) * (n + 1)
        return .seconds(seconds)
    }

    /// Exponential backoff `base·2^(attempt-1)` capped at `cap`, plus up to `jitter` of itself at random.
    public static func exponential(
        base: Duration = .seconds(1), cap: Duration = .seconds(3600), jitter: Double = 0.1
    ) -> @Sendable (Int, Double) -> Duration {
        { attempt, random in
            let exponent = min(max(attempt - 1, 0), 62)
            let raw = base.seconds * Double(UInt64(1) << UInt64(exponent))
            let capped = min(raw, cap.seconds)
            return .seconds(capped * (1 + jitter * random))
        }
    }
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    public var seconds: Double {
        let (whole, fraction) = components
        return Double(whole) + Double(fraction) / 1e18
    }
}
