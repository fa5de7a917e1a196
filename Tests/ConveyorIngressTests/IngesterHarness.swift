import ConveyorCore
import ConveyorIngress
import ConveyorPostgres
import ConveyorRedis
import ConveyorTestSupport
import Foundation
import ServiceLifecycle

/// Runs ingesters in a `ServiceGroup` around a test body, then shuts them down gracefully.
enum IngesterHarness {
    static func run<T: Sendable>(_ ingesters: [EnvelopeIngester], _ body: @Sendable () async throws -> T) async throws -> T {
        let group = ServiceGroup(configuration: .init(services: ingesters.map { .init(service: $0) }, logger: TestDatabase.logger))
        return try await withThrowingTaskGroup(of: T?.self) { tasks in
            tasks.addTask {
                try await group.run()
                return nil
            }
            let result: T
            do {
                result = try await body()
            } catch {
                // Stop the services, or the group would keep the test waiting forever.
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            while let next = try await tasks.next() { _ = next }
            return result
        }
    }

    static func ingester(
        keys: IngressKeys, redis: RedisConfiguration, store: PostgresJobStore, probe: IngestProbe, id: String = EnvelopeIngester.randomID(),
        batchSize: Int = 100
    ) -> EnvelopeIngester {
        EnvelopeIngester(
            configuration: .init(keys: keys, ingesterID: id, batchSize: batchSize, blockTimeout: .milliseconds(200)),
            redis: redis, store: store, logger: TestDatabase.logger, onBatch: probe.observer)
    }

    /// `LPUSH`es envelopes (as producers do) in one pipeline.
    static func push(_ envelopes: [Data], keys: IngressKeys, redis: RedisConnection) async throws {
        _ = try await redis.pipeline(envelopes.map { [Data("LPUSH".utf8), Data(keys.ingress.utf8), $0] })
    }

    static func envelope(_ json: String) -> Data { Data(json.utf8) }
}
