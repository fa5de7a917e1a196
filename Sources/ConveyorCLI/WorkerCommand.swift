import ArgumentParser
import ConveyorCore
import ConveyorIngress
import ConveyorMaintenance
import ConveyorPostgres
import ConveyorRedis
import ConveyorWorker
import Foundation
import Logging
import ServiceLifecycle

/// `conveyor worker`: claims and runs jobs of the given queues until SIGTERM/SIGINT.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run jobs from the given queues until SIGTERM/SIGINT (graceful), or a second signal (at once).")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var redis: RedisOptions

    @Flag(name: .customLong("no-ingest"), help: "Do not move envelopes from Redis into PostgreSQL in this process.")
    var noIngest = false

    @Flag(
        name: .customLong("no-direct-start"),
        help: "Insert every ingested job `available`, to be claimed, instead of starting the ones this worker has room for at once (env: CONVEYOR_DIRECT_START=0).")
    var noDirectStart = false

    @Option(help: "Ingesters in this process, each with its own Redis connection (env: CONVEYOR_INGESTERS; default 2).")
    var ingesters: Int?

    @Option(help: "Queues and their concurrency, e.g. default=20,render=2 (env: CONVEYOR_QUEUES; default: default).")
    var queues: String?

    @Option(help: "Concurrency of a queue listed without =N (env: CONVEYOR_CONCURRENCY; default 1000).")
    var concurrency: Int?

    @Option(name: .customLong("grace-period"), help: "Seconds running jobs may finish after SIGTERM (env: CONVEYOR_GRACE_PERIOD; default 25).")
    var gracePeriod: Double?

    @Option(name: .customLong("poll-interval"), help: "Seconds between looks for due jobs when idle (env: CONVEYOR_POLL_INTERVAL; default 1).")
    var pollInterval: Double?

    @Option(help: "Seconds a claimed job stays held without a heartbeat; renewed every third of it (env: CONVEYOR_LEASE; default 30).")
    var lease: Double?

    @Option(name: .customLong("heartbeat-interval"), help: "Seconds between lease renewals; must be under the lease (env: CONVEYOR_HEARTBEAT_INTERVAL; default a third of the lease).")
    var heartbeatInterval: Double?

    @Option(name: .customLong("ingest-batch"), help: "Most envelopes an ingester moves per batch (env: CONVEYOR_INGEST_BATCH; default 500).")
    var ingestBatch: Int?

    @Option(name: .customLong("completion-batch"), help: "Most job results written per statement (env: CONVEYOR_COMPLETION_BATCH; default 500).")
    var completionBatch: Int?

    @Option(
        name: .customLong("flush-deadline"),
        help: "Seconds after the grace period that writing the last results is retried before the worker exits non-zero (env: CONVEYOR_FLUSH_DEADLINE; default 10).")
    var flushDeadline: Double?

    @OptionGroup var maintenanceOptions: MaintenanceOptions
    @OptionGroup var metrics: MetricsOptions

    @Option(
        help: #"Cluster-wide limits per kind, overriding the kinds' own, as JSON: {"video.render": {"concurrency": 4}} (env: CONVEYOR_LIMITS)."#)
    var limits: String?

    @Option(name: .customLong("worker-id"), help: "Name recorded on claimed jobs (env: CONVEYOR_WORKER_ID; default host-pid-random).")
    var workerID: String?

    func run() async throws {
        let configuration = try workerConfiguration()
        _ = try ConveyorKinds.callbackSettings()
        try ConveyorKinds.checkIntegrationSettings()
        _ = try metrics.address()
        let directStart = try !noDirectStart && Settings.bool(env: "CONVEYOR_DIRECT_START", default: true)
        let maintenanceConfiguration = try maintenanceOptions.configuration(holder: configuration.workerID)
        let url = try database.url()
        let ingesterCount = noIngest ? 0 : try Settings.int(ingesters, env: "CONVEYOR_INGESTERS", flagName: "--ingesters", default: 2, range: 0...16)
        let batchSize = try Settings.int(ingestBatch, env: "CONVEYOR_INGEST_BATCH", flagName: "--ingest-batch", default: 500, range: 1...5000)
        _ = try database.statementTimeoutSetting()
        let redisConfiguration = ingesterCount > 0 ? try redis.configuration(purpose: "the worker ingests from Redis; pass --no-ingest to run without") : nil
        let keys = try redis.keys()
        let logger = Logger(label: "conveyor.worker")
        if let redisConfiguration { try await RedisOptions.check(redisConfiguration).close() }
        let endpoint = try await metrics.endpoint(logger: logger)
        try await database.withClient(logger: logger) { client in
            let store = PostgresJobStore(client: client)
            let registry = ConveyorKinds.registry(store: store)
            let worker = Worker(
                configuration: configuration, store: store, registry: registry,
                listener: JobNotificationListener(url: url, logger: logger), logger: logger)
            // Every worker takes part in the leader election; the leader rescues expired leases and prunes.
            let maintenance = Maintenance(configuration: maintenanceConfiguration, store: store)
            // Started first, stopped last: the endpoint is scraped while the worker drains.
            var services: [any Service] = (endpoint.map { [$0] } ?? []) + [maintenance, worker]
            services.append(CircuitPublisher(store: store, worker: configuration.workerID, logger: logger))
            if let redisConfiguration {
                for _ in 0..<ingesterCount {
                    services.append(
                        EnvelopeIngester(
                            configuration: EnvelopeIngester.Configuration(keys: keys, batchSize: batchSize), redis: redisConfiguration, store: store,
                            maxAttempts: { registry.defaultMaxAttempts(for: $0) },
                            starter: directStart ? worker.directStarts : nil, logger: Logger(label: "conveyor.ingest")))
                }
            }
            // The group stops services in reverse order: ingesters first, then the worker drains, then
            // maintenance resigns its leadership.
            // After a signal: the grace period, the flush deadline, and a margin for the ingesters and the
            // leadership to let go. Past that the process exits non-zero, whatever hangs (a black-holed
            // connection): the leases make that safe.
            let deadline = configuration.gracePeriod + configuration.flushDeadline + .seconds(5)
            try await ServiceRunner.run(services, logger: logger, shutdownDeadline: deadline)
        }
    }

    /// Validates every setting before connecting, so bad configuration fails fast with one line.
    func workerConfiguration() throws -> Worker.Configuration {
        let defaultConcurrency = try Settings.int(
            concurrency, env: "CONVEYOR_CONCURRENCY", flagName: "--concurrency", default: 1000, range: 1...10_000)
        let queueText = Settings.string(queues, env: "CONVEYOR_QUEUES") ?? "default"
        let queueConfiguration: QueueConfiguration
        do {
            queueConfiguration = try QueueConfiguration.parse(queueText, defaultConcurrency: defaultConcurrency)
        } catch {
            throw CommandError.configuration(setting: queues == nil ? "CONVEYOR_QUEUES" : "--queues", reason: error.description)
        }
        var configuration = Worker.Configuration(queues: queueConfiguration)
        configuration.gracePeriod = try Settings.seconds(
            gracePeriod, env: "CONVEYOR_GRACE_PERIOD", flagName: "--grace-period", default: 25, range: 0...3600)
        configuration.pollInterval = try Settings.seconds(
            pollInterval, env: "CONVEYOR_POLL_INTERVAL", flagName: "--poll-interval", default: 1, range: 0.01...3600)
        if let id = Settings.string(workerID, env: "CONVEYOR_WORKER_ID") { configuration.workerID = id }
        configuration.lease = try Settings.seconds(lease, env: "CONVEYOR_LEASE", flagName: "--lease", default: 30, range: 1...86_400)
        configuration.heartbeatInterval = try Settings.seconds(
            heartbeatInterval, env: "CONVEYOR_HEARTBEAT_INTERVAL", flagName: "--heartbeat-interval",
            default: configuration.lease.seconds / 3, range: 0.01...86_400)
        if configuration.heartbeatInterval >= configuration.lease {
            throw CommandError.configuration(
                setting: heartbeatInterval != nil ? "--heartbeat-interval" : "CONVEYOR_HEARTBEAT_INTERVAL",
                reason: "\(configuration.heartbeatInterval.seconds) s must be shorter than the lease (\(configuration.lease.seconds) s), or every job's lease lapses between renewals")
        }
        configuration.completionBatch = try Settings.int(
            completionBatch, env: "CONVEYOR_COMPLETION_BATCH", flagName: "--completion-batch", default: 500, range: 1...5000)
        configuration.flushDeadline = try Settings.seconds(
            flushDeadline, env: "CONVEYOR_FLUSH_DEADLINE", flagName: "--flush-deadline", default: 10, range: 0...600)
        if let text = Settings.string(limits, env: "CONVEYOR_LIMITS") {
            do {
                configuration.limits = try KindLimits.parse(text)
            } catch {
                throw CommandError.configuration(setting: limits != nil ? "--limits" : "CONVEYOR_LIMITS", reason: error.description)
            }
        }
        return configuration
    }
}
