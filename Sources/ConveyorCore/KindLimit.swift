/// How a kind's starts are limited across the cluster: at most ``concurrency`` running at once, and at
/// most ``rate`` starts per window per limit key. Built from ``JobKindOptions`` and `CONVEYOR_LIMITS`.
public struct KindLimit: Sendable, Equatable {
    /// The most running jobs of the kind across every worker; `nil` for no limit.
    public var concurrency: Int?
    /// The most starts per window and limit key; `nil` for no limit.
    public var rate: RateLimit?

    /// Creates a limit.
    public init(concurrency: Int? = nil, rate: RateLimit? = nil) {
        self.concurrency = concurrency
        self.rate = rate
    }

    /// Neither limit is set.
    public var isEmpty: Bool { concurrency == nil && rate == nil }
}

/// At most ``starts`` jobs of a kind start per ``window`` for each limit key (``NewJob/limitKey``): 30
/// per minute per ad account. Windows are fixed and aligned to the Unix epoch (Sidekiq Enterprise's
/// window limiter): up to twice the rate can start around a window's boundary, never more within one.
/// Jobs without a limit key are not rate-limited.
public struct RateLimit: Sendable, Equatable {
    /// Starts allowed per window and key, 1 or more.
    public var starts: Int
    /// The window, from 1 ms to a day.
    public var window: Duration

    /// Creates a rate limit.
    public init(starts: Int, per window: Duration) {
        self.starts = starts
        self.window = window
    }
}
