public import ConveyorCore
public import ConveyorPostgres
public import Logging
public import Metrics
public import ServiceLifecycle
import Foundation

/// A worker: one ``QueueProducer`` per served queue and a shared batching completer, as a `Service`.
///
/// On graceful shutdown (DESIGN §5) it stops claiming, lets running jobs finish within
/// ``Configuration/gracePeriod``, stops the rest (back to `available`, attempt not spent), flushes
/// pending results and returns.
public struct Worker: Service {
    /// Worker settings; the defaults suit production.
    public struct Configuration: Sendable {
        /// The queues and their concurrency.
        public var queues: QueueConfiguration
        /// The name recorded in `locked_by`. Default: `hostname-pid-random`.
        public var workerID: String
        /// How often an idle producer looks for due jobs. Default 1 s.
        public var pollInterval: Duration
        /// How long a claim holds a job before it may be rescued, unless renewed. Default 30 s.
        public var lease: Duration
        /// How often the leases of running jobs are renewed (one statement for all). Default 10 s;
        /// must be well under ``lease``.
        public var heartbeatInterval: Duration
        /// How long running jobs may finish after a shutdown signal. Default 25 s.
        public var gracePeriod: Duration
        /// After the grace period, how long writing the last results is retried while the database is
        /// away before the worker gives up on them and stops with an error (their leases return the
        /// jobs). Default 10 s.
        public var flushDeadline: Duration = .seconds(10)
        /// The most results written per statement. Default 500.
        public var completionBatch: Int
        /// How long a partial batch of results waits before it is written. Default 5 ms.
        public var completionLinger: Duration
        /// The most results waiting to be written before finished jobs hold their slots (so producers
        /// stop claiming) until writes catch up. Default 10 × ``completionBatch``.
        public var maxPendingResults: Int?
        /// While jobs are running, the shortest time between two claims of a queue. Default 5 ms.
        public var claimCooldown: Duration
        /// How often running jobs are checked against their kind's timeout. Default 100 ms.
        public var timeoutCheckInterval: Duration
        /// Called after each write of results with the ones it wrote (not those fenced out because the
        /// job was no longer held at that attempt), in the order they were recorded: for applications
        /// that react to finished jobs, and for tests that await them. It runs on the completer's task
        /// between two writes, so it must return quickly (hand the results to a stream). Default none.
        public var onResultsWritten: (@Sendable ([WrittenResult]) -> Void)?
        /// Deploy-time overrides of the kinds' declared limits (`CONVEYOR_LIMITS`). Default none.
        public var limits = KindLimits()

        /// Creates a configuration.
        public init(
            queues: QueueConfiguration, workerID: String = Worker.defaultID(), pollInterval: Duration = .seconds(1),
            lease: Duration = .seconds(30), heartbeatInterval: Duration = .seconds(10), gracePeriod: Duration = .seconds(25), completionBatch: Int = 500,
            completionLinger: Duration = .milliseconds(5), claimCooldown: Duration = .milliseconds(5),
            timeoutCheckInterval: Duration = .milliseconds(100), onResultsWritten: (@Sendable ([WrittenResult]) -> Void)? = nil
        ) {
            self.queues = queues
            self.workerID = workerID
            self.pollInterval = pollInterval
            self.lease = lease
            self.heartbeatInterval = heartbeatInterval
            self.gracePeriod = gracePeriod
            self.completionBatch = completionBatch
            self.completionLinger = completionLinger
            self.claimCooldown = claimCooldown
            self.timeoutCheckInterval = timeoutCheckInterval
            self.onResultsWritten = onResultsWritten
        }
    }

    let configuration: Configuration
    let store: PostgresJobStore
    let registry: HandlerRegistry
    let random: any RandomSource
    let listener: JobNotificationListener?
    let metrics: WorkerMetrics
    let logger: Logger
    let inboxes: [String: ProducerInbox]
    let running: [String: RunningJobs]
    let slots: [String: QueueSlots]
    /// The cluster-wide limits in force: the kinds' declarations with the overrides applied.
    public let limits: [String: KindLimit]

    /// Hands ingesters of this process the slots they may fill with jobs inserted already claimed
    /// (pass it to `EnvelopeIngester`); see ``DirectStarts``.
    public let directStarts: DirectStarts

    /// Creates a worker.
    ///
    /// - Parameters:
    ///   - random: the source of backoff jitter. Default: the system generator.
    ///   - listener: wakes idle producers when jobs are inserted, and delivers cancellations at once;
    ///     without it producers find new jobs by polling and cancellations arrive with the next heartbeat.
    ///   - metrics: where the worker's instruments are made (see `docs/operations.md` for the list).
    ///     Default: the process's `MetricsSystem`.
    public init(
        configuration: Configuration, store: PostgresJobStore, registry: HandlerRegistry,
        random: any RandomSource = SystemRandomSource(), listener: JobNotificationListener? = nil,
        metrics: any MetricsFactory = MetricsSystem.factory, logger: Logger = Logger(label: "conveyor.worker")
    ) {
        self.listener = listener
        self.metrics = WorkerMetrics(factory: metrics, isKnownKind: { registry[$0] != nil })
        self.configuration = configuration
        self.store = store
        self.registry = registry
        self.random = random
        var logger = logger
        logger[metadataKey: "worker"] = "\(configuration.workerID)"
        self.logger = logger
        let queues = configuration.queues.queues
        var inboxes: [String: ProducerInbox] = [:], running: [String: RunningJobs] = [:], slots: [String: QueueSlots] = [:]
        for queue in queues {
            let jobs = RunningJobs()
            inboxes[queue.name] = ProducerInbox()
            running[queue.name] = jobs
            slots[queue.name] = QueueSlots(concurrency: queue.concurrency, running: jobs)
        }
        self.inboxes = inboxes
        self.running = running
        self.slots = slots
        let limits = configuration.limits.applied(to: registry.limits)
        self.limits = limits
        directStarts = DirectStarts(
            workerID: configuration.workerID, lease: configuration.lease,
            // A limited kind starts only through the claim, which counts its starts cluster-wide.
            claimOnly: Set(limits.keys),
            queues: inboxes.reduce(into: [:]) { result, entry in
                if let queueSlots = slots[entry.key] { result[entry.key] = (slots: queueSlots, inbox: entry.value) }
            })
    }

    /// `3`, `30/60s`, or `3+30/60s`: a limit as the start-up log line shows it.
    static func describe(_ limit: KindLimit) -> String {
        let rate = limit.rate.map { "\($0.starts)/\($0.window.seconds)s" }
        return [limit.concurrency.map(String.init), rate].compactMap { $0 }.joined(separator: "+")
    }

    /// `hostname-pid-xxxx`: unique per process, readable in `locked_by`.
    public static func defaultID() -> String {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
        let suffix = String(UInt16.random(in: 0...UInt16.max), radix: 16)
        return "\(host)-\(ProcessInfo.processInfo.processIdentifier)-\(suffix)"
    }

    public func run() async throws {
        let stop = StopSignal()
        let completer = JobCompleter(
            store: store,
            configuration: .init(
                maxBatch: configuration.completionBatch, linger: configuration.completionLinger,
                maxBacklog: configuration.maxPendingResults, flushDeadline: configuration.flushDeadline,
                onWritten: configuration.onResultsWritten),
            metrics: metrics, logger: logger)
        let progress = ProgressBuffer()
        let executor = JobExecutor(
            registry: registry, random: random, metrics: metrics, logger: logger, progress: progress,
            enqueuer: StoreEnqueuer(store: store, registry: registry))
        var started: Logger.Metadata = ["queues": "\(configuration.queues.queues.map { "\($0.name)=\($0.concurrency)" }.joined(separator: ","))"]
        if !limits.isEmpty {
            started["limits"] = "\(limits.sorted { $0.key < $1.key }.map { "\($0.key)=\(Self.describe($0.value))" }.joined(separator: ","))"
        }
        logger.info("worker started", metadata: started)
        do {
            let unlimited = registry.kinds.filter { limits[$0] == nil }
            try await store.declareLimits(limits, unlimited: unlimited, by: configuration.workerID)
        } catch {
            // Only what `conveyor limits` shows: every claim carries the limits it enforces.
            logger.warning("recording this worker's concurrency limits failed", metadata: ["error": "\(error)"])
        }
        let inboxes = self.inboxes
        let leases = LeaseKeeper(
            store: store, running: Array(running.values), finished: { completer.held() }, progress: progress,
            lease: configuration.lease, interval: configuration.heartbeatInterval, metrics: metrics, logger: logger)
        let (cancelChecks, cancelCheck) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let unwritten = await withGracefulShutdownHandler {
            await withTaskGroup(of: Int.self) { group -> Int in
                group.addTask { await completer.run() }
                await withTaskGroup(of: Void.self) { helpers in
                    helpers.addTask { await leases.run(triggers: cancelChecks) }
                    if let listener {
                        helpers.addTask {
                            await listener.run { event in
                                switch event {
                                case .available(let queues):
                                    // nil: (re)connected, notifications may have been missed; look everywhere.
                                    for name in queues ?? Array(inboxes.keys) { inboxes[name]?.deliver(.poll) }
                                case .cancelRequested:
                                    cancelCheck.yield()
                                }
                            }
                        }
                    }
                    await withTaskGroup(of: Void.self) { producers in
                        for queue in configuration.queues.queues {
                            guard let inbox = inboxes[queue.name], let jobs = running[queue.name], let slots = slots[queue.name] else { continue }
                            let producer = QueueProducer(
                                queue: queue, store: store, executor: executor, completer: completer,
                                settings: configuration, limits: limits, slots: slots, starts: directStarts, metrics: metrics, logger: logger)
                            producers.addTask { await producer.run(stop: stop, inbox: inbox, running: jobs) }
                        }
                    }
                    helpers.cancelAll()
                }
                completer.finish()
                return await group.reduce(0, +)
            }
        } onGracefulShutdown: {
            completer.stopping(grace: configuration.gracePeriod)
            stop.trigger()
            logger.info("shutdown requested: no more claims")
        }
        if unwritten > 0 {
            logger.error("worker stopped with results it could not record; their leases return the jobs", metadata: ["unwritten": "\(unwritten)"])
            throw Error.resultsNotRecorded(unwritten)
        }
        logger.info("worker stopped")
    }

    /// Why a worker stopped with an error.
    public enum Error: Swift.Error, Sendable, Equatable, CustomStringConvertible {
        /// Shutdown gave up writing this many results at the flush deadline (the database was away);
        /// the jobs stay `running` until their leases expire and they are rescued.
        case resultsNotRecorded(Int)

        public var description: String {
            switch self {
            case .resultsNotRecorded(let count):
                "\(count) job results could not be recorded before the flush deadline; their leases will return the jobs"
            }
        }
    }
}
