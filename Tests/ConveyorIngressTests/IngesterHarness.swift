import ConveyorCore
import ConveyorIngress
import ConveyorPostgres
import ConveyorRedis
import ConveyorTestSupport
import PostgresNIO
import ConveyorWorker
import Foundation
import Metrics
import ServiceLifecycle

/// Runs ingesters in a `ServiceGroup` around a test body, then shuts them down gracefully.
enum IngesterHarness {
    static func run<T: Sendable>(_ ingesters: [EnvelopeIngester], _ body: @Sendable () async throws -> T) async throws -> T {
        try await withRunningServices(ingesters, logger: TestDatabase.logger) { _ in try await body() }
    }

    static func ingester(
        keys: IngressKeys, redis: RedisConfiguration, store: PostgresJobStore, probe: IngestProbe, id: String = EnvelopeIngester.randomID(),
        batchSize: Int = 100, metrics: any MetricsFactory = NOOPMetricsHandler.instance
    ) -> EnvelopeIngester {
        EnvelopeIngester(
            configuration: .init(keys: keys, ingesterID: id, batchSize: batchSize, blockTimeout: .milliseconds(200)),
            redis: redis, store: store, metrics: metrics, logger: TestDatabase.logger, onBatch: probe.observer)
    }

    /// `LPUSH`es envelopes (as producers do) in one pipeline.
    static func push(_ envelopes: [Data], keys: IngressKeys, redis: RedisConnection) async throws {
        _ = try await redis.pipeline(envelopes.map { [Data("LPUSH".utf8), Data(keys.ingress.utf8), $0] })
    }

    static func envelope(_ json: String) -> Data { Data(json.utf8) }
}

/// What every ingress test starts from: its own Redis namespace, a producer connection, a store.
struct IngressFixture {
    let keys = IngressKeys(namespace: TestRedis.namespace())
    let redisConfiguration: RedisConfiguration
    let redis: RedisConnection
    let store: PostgresJobStore

    init(client: PostgresClient) throws {
        redisConfiguration = try TestRedis.configuration()
        redis = RedisConnection(configuration: redisConfiguration)
        store = PostgresJobStore(client: client)
    }

    func ingester(_ probe: IngestProbe) -> EnvelopeIngester {
        IngesterHarness.ingester(keys: keys, redis: redisConfiguration, store: store, probe: probe)
    }

    func push(_ envelopes: [Data]) async throws {
        try await IngesterHarness.push(envelopes, keys: keys, redis: redis)
    }
}
