public import ConveyorPostgres
public import Logging
public import Metrics
import Synchronization

/// Elects one leader among all Conveyor processes for a role (e.g. `maintenance`), through a lease row
/// in `conveyor_leaders`: the holder renews it every ``Configuration/renewInterval``; any other process
/// takes it once it has expired. No session state is involved, so it works through a
/// transaction-pooling PgBouncer.
///
/// While this process leads, ``run(leading:)`` runs the given body; the body is cancelled the moment
/// leadership is lost: a renewal that fails or finds the row taken, or a lease that lapses by this
/// process's clock before a renewal succeeds (measured from when the last successful renewal was sent,
/// so the local view lapses no later than the database's).
public struct LeaderElection: Sendable {
    /// Election settings.
    public struct Configuration: Sendable {
        /// The role, the row's name. Default `maintenance`.
        public var name: String
        /// This process's name in the row.
        public var holder: String
        /// How long a lease lasts without renewal. Default 15 s.
        public var ttl: Duration
        /// How often the leader renews, and how often followers try to take over. Default 5 s.
        public var renewInterval: Duration

        /// Creates a configuration.
        public init(name: String = "maintenance", holder: String, ttl: Duration = .seconds(15), renewInterval: Duration = .seconds(5)) {
            self.name = name
            self.holder = holder
            self.ttl = ttl
            self.renewInterval = renewInterval
        }
    }

    let configuration: Configuration
    let store: PostgresJobStore
    let metrics: any MetricsFactory
    let logger: Logger

    /// Creates an election; `metrics` makes its `conveyor_leader` gauge (default: the process's `MetricsSystem`).
    public init(configuration: Configuration, store: PostgresJobStore, metrics: any MetricsFactory = MetricsSystem.factory, logger: Logger) {
        self.configuration = configuration
        self.store = store
        self.metrics = metrics
        var logger = logger
        logger[metadataKey: "role"] = "\(configuration.name)"
        self.logger = logger
    }

    /// Takes part in the election until `stopped` returns (or the task is cancelled), running `leading`
    /// whenever this process leads. When stopped, a leader stops its work and resigns, so another
    /// process takes over without waiting for the lease to lapse.
    public func run(until stopped: @escaping @Sendable () async -> Void, leading: @escaping @Sendable () async -> Void) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await campaign(leading) }
            group.addTask { await stopped() }
            _ = await group.next()
            group.cancelAll()
        }
        // Not cancelled here (unless the caller is): the resignation can still reach the database.
        do {
            try await store.resignLeadership(configuration.name, holder: configuration.holder)
        } catch {
            logger.warning("could not resign leadership; it lapses with its lease", metadata: ["error": "\(error)"])
        }
    }

    private func campaign(_ leading: @escaping @Sendable () async -> Void) async {
        while !Task.isCancelled {
            let attempt = ContinuousClock.now
            if await tryAcquire() {
                logger.notice("became leader", metadata: ["holder": "\(configuration.holder)", "ttl": "\(configuration.ttl.readable)"])
                Gauge(label: "conveyor_leader", dimensions: [("role", configuration.name)], factory: metrics).record(1)
                await lead(acquiredAt: attempt, body: leading)
                Gauge(label: "conveyor_leader", dimensions: [("role", configuration.name)], factory: metrics).record(0)
                if Task.isCancelled {
                    logger.notice("stepping down")
                    return
                }
                logger.warning("lost leadership: stopped its work")
            }
            try? await Task.sleep(for: configuration.renewInterval)
        }
    }

    private func tryAcquire() async -> Bool {
        do {
            return try await store.acquireLeadership(configuration.name, holder: configuration.holder, ttl: configuration.ttl)
        } catch {
            if !Task.isCancelled {
                logger.warning("leader election failed; retrying", metadata: ["error": "\(error)"])
            }
            return false
        }
    }

    /// Runs `body` while the lease holds; returns when it is lost or the task is cancelled.
    private func lead(acquiredAt: ContinuousClock.Instant, body: @escaping @Sendable () async -> Void) async {
        let renewed = LastRenewal(acquiredAt)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await body() }
            // Renewer: returns when a renewal fails or finds the row taken.
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: configuration.renewInterval)
                    if Task.isCancelled { return }
                    let sent = ContinuousClock.now
                    guard await tryAcquire() else { return }
                    renewed.set(sent)
                }
            }
            // Watchdog: returns when the lease lapsed by the local clock (a renewal hanging on a dead
            // connection must not keep a stale leader working).
            group.addTask {
                while !Task.isCancelled {
                    let deadline = renewed.get() + configuration.ttl
                    if ContinuousClock.now >= deadline { return }
                    try? await Task.sleep(until: min(deadline, ContinuousClock.now + configuration.renewInterval))
                }
            }
            // The first child to return (or the caller's cancellation) ends the leadership.
            _ = await group.next()
            group.cancelAll()
        }
    }
}

/// When the last successful renewal was sent.
private final class LastRenewal: Sendable {
    private let value: Mutex<ContinuousClock.Instant>
    init(_ instant: ContinuousClock.Instant) { value = Mutex(instant) }
    func set(_ instant: ContinuousClock.Instant) { value.withLock { $0 = max($0, instant) } }
    func get() -> ContinuousClock.Instant { value.withLock { $0 } }
}
