import Conveyor
import ConveyorCore
import ConveyorIngress
import ConveyorPostgres
import ConveyorRedis
import ConveyorTestSupport
import Foundation
import PostgresNIO
import Testing

@Suite("ConveyorClient")
struct ConveyorClientTests {
    @Test("enqueue pushes one v1 envelope per job onto the ingress list, oldest at the right end")
    func enqueuePushesEnvelopes() async throws {
        let keys = IngressKeys(namespace: TestRedis.namespace())
        let configuration = try TestRedis.configuration()
        let conveyor = ConveyorClient(redis: configuration, keys: keys)
        let jobs = [
            NewJob(kind: "ml.retrain", args: #"{"model":"ctr"}"#, queue: "ml", priority: 1, uniqueKey: "retrain-ctr"),
            NewJob(kind: "conveyor.noop"),
        ]
        try await conveyor.enqueue(jobs)
        let redis = RedisConnection(configuration: configuration)
        let stored = try await redis.send("LRANGE", keys.ingress, "0", "-1").elements.compactMap { reply -> Data? in
            if case .bulk(let data) = reply { return data }
            return nil
        }
        let decoded = try stored.reversed().map { try Envelope.decode($0).get() }
        #expect(decoded.map(\.id) == jobs.map(\.id))
        #expect(decoded[0].queue == "ml" && decoded[0].priority == 1 && decoded[0].uniqueKey == "retrain-ctr")
        #expect(decoded.allSatisfy { $0.enqueuedAt != nil })
        try await redis.send("DEL", keys.ingress)
    }

    @Test("enqueue validates every job before pushing any")
    func enqueueValidates() async throws {
        let keys = IngressKeys(namespace: TestRedis.namespace())
        let configuration = try TestRedis.configuration()
        let conveyor = ConveyorClient(redis: configuration, keys: keys)
        await #expect(throws: NewJob.ValidationError.badQueue("Bad")) {
            try await conveyor.enqueue([NewJob(kind: "a"), NewJob(kind: "b", queue: "Bad")])
        }
        #expect(try await RedisConnection(configuration: configuration).send("LLEN", keys.ingress) == .integer(0))
    }

    @Test("insert writes inside the caller's transaction: rolled back with it, committed with it")
    func transactionalInsert() async throws {
        try await TestDatabase.withFresh { client, _ in
            let conveyor = ConveyorClient(postgres: client)
            struct Rollback: Error {}
            let rolledBack = NewJob(kind: "a")
            await #expect {
                try await client.withTransaction(logger: TestDatabase.logger) { connection in
                    try await conveyor.insert(rolledBack, on: connection)
                    throw Rollback()
                }
            } throws: { error in
                (error as? PostgresTransactionError)?.closureError is Rollback
            }
            let committed = NewJob(kind: "b")
            _ = try await client.withTransaction(logger: TestDatabase.logger) { connection in
                try await conveyor.insert(committed, on: connection)
            }
            let store = PostgresJobStore(client: client)
            #expect(try await store.job(id: rolledBack.id) == nil)
            #expect(try await store.job(id: committed.id) != nil)
        }
    }

    @Test("insert validates before writing anything")
    func insertValidates() async throws {
        try await TestDatabase.withFresh { client, _ in
            let conveyor = ConveyorClient(postgres: client)
            await #expect(throws: NewJob.ValidationError.priorityOutOfRange(12)) {
                try await conveyor.insert([NewJob(kind: "a"), NewJob(kind: "b", priority: 12)])
            }
            let jobs = try await PostgresJobStore(client: client).jobs()
            #expect(jobs.isEmpty)
        }
    }
}
