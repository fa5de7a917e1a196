import ConveyorCore
import ConveyorIngress
import ConveyorPostgres
import ConveyorRedis
import ConveyorTestSupport
import Foundation
import MetricsTestKit
import Testing

@Suite("Redis ingress", .timeLimit(.minutes(2)))
struct IngesterTests {
    @Test("valid envelopes become jobs in push order; malformed ones are quarantined with a reason")
    func flowAndQuarantine() async throws {
        try await TestDatabase.withFresh { client, _ in
            let fixture = try IngressFixture(client: client)
            let (keys, redisConfiguration, redis, store) = (fixture.keys, fixture.redisConfiguration, fixture.redis, fixture.store)
            let probe = IngestProbe()
            let bad: [(Data, String)] = [
                (Data("not json".utf8), "not valid JSON"),
                (Data(#"{"kind":"a"}"#.utf8), "missing required field v"),
                (Data(#"{"v":1,"kind":"a","priority":42}"#.utf8), "priority 42 must be between 0 and 9"),
                (Data([0xC3, 0x28]), "not valid UTF-8"),
                (Data(#"{"v":1,"kind":"a","run_at":"soon"}"#.utf8), "not an RFC 3339 time"),
            ]
            var envelopes: [Data] = []
            for index in 0..<250 {
                envelopes.append(IngesterHarness.envelope(#"{"v":1,"kind":"conveyor.noop","args":{"n":\#(index)},"tags":["t\#(index)"]}"#))
                if index % 50 == 0 { envelopes.append(bad[index / 50].0) }
            }
            try await IngesterHarness.push(envelopes, keys: keys, redis: redis)
            let ingester = IngesterHarness.ingester(keys: keys, redis: redisConfiguration, store: store, probe: probe)
            let total = envelopes.count
            try await IngesterHarness.run([ingester]) { await probe.waitFor(envelopes: total) }

            let jobs = try await store.jobs(JobFilter(limit: 1000)).reversed()
            #expect(jobs.count == 250)
            #expect(jobs.map(\.tags) == (0..<250).map { ["t\($0)"] })
            let rejected = try await store.rejectedEnvelopes(limit: 100).reversed()
            #expect(rejected.map(\.payload) == bad.map(\.0))
            for (record, expected) in zip(rejected, bad) { #expect(record.reason.contains(expected.1), "\(record.reason)") }
            #expect(try await redis.send("LLEN", keys.ingress) == .integer(0))
            #expect(try await redis.send("SCARD", keys.processingSet) == .integer(0))
        }
    }

    @Test("the ingester counts envelopes ingested, dropped as duplicates and quarantined by reason, its batches and the backlog")
    func metrics() async throws {
        try await TestDatabase.withFresh { client, _ in
            let fixture = try IngressFixture(client: client)
            let clock = ManualClock()
            let store = PostgresJobStore(client: client, clock: clock)
            let probe = IngestProbe()
            let metrics = TestMetrics()
            let id = UUID().uuidString.lowercased()
            var envelopes = (0..<10).map { IngesterHarness.envelope(#"{"v":1,"kind":"conveyor.noop","args":{"n":\#($0)}}"#) }
            // Two stamped by their producer 1.5 s and 20 s before the ingester's (manual) clock.
            for seconds in [1.5, 20.0] {
                let stamp = RFC3339.formatPrecise(clock.now().addingTimeInterval(-seconds))
                envelopes.append(IngesterHarness.envelope(#"{"v":1,"kind":"conveyor.noop","enqueued_at":"\#(stamp)"}"#))
            }
            envelopes += Array(repeating: IngesterHarness.envelope(#"{"v":1,"kind":"conveyor.noop","id":"\#(id)"}"#), count: 3)
            envelopes += [Data("{".utf8), Data([0xFF]), Data(#"{"v":2,"kind":"a"}"#.utf8), Data(#"{"v":1,"kind":"a","priority":10}"#.utf8)]
            // Pushed before the ingester starts, so one batch takes them all and leaves an empty ingress.
            try await fixture.push(envelopes)
            let ingester = IngesterHarness.ingester(
                keys: fixture.keys, redis: fixture.redisConfiguration, store: store, probe: probe, metrics: metrics)
            let total = envelopes.count
            try await IngesterHarness.run([ingester]) { await probe.waitFor(envelopes: total) }

            let results = ["ingested": 13, "duplicate_id": 2, "rejected": 4]
            for (result, count) in results {
                #expect(metrics.counterTotal(label: "conveyor_ingest_envelopes_total", dimensions: [("result", result)]) == Int64(count), "\(result)")
            }
            for reason in ["invalid_json", "invalid_utf8", "unsupported_version", "invalid_field"] {
                #expect(metrics.counterTotal(label: "conveyor_ingest_rejected_total", dimensions: [("reason", reason)]) == 1, "\(reason)")
            }
            #expect(try metrics.expectRecorder("conveyor_ingest_batch_size").values == [Double(total)])
            #expect(try metrics.expectTimer("conveyor_ingest_batch_seconds").values.count == 1)
            #expect(try metrics.expectGauge("conveyor_ingress_backlog").lastValue == 0)
            #expect(try metrics.expectTimer("conveyor_ingest_lag_seconds").values.sorted() == [1_500_000_000, 20_000_000_000])
            #expect(metrics.counterTotal(label: "conveyor_ingest_errors_total") == 0)
        }
    }

    @Test("the same id pushed twice is one job")
    func sameIDOnce() async throws {
        try await TestDatabase.withFresh { client, _ in
            let fixture = try IngressFixture(client: client)
            let (keys, redisConfiguration, redis, store) = (fixture.keys, fixture.redisConfiguration, fixture.redis, fixture.store)
            let probe = IngestProbe()
            let id = UUID().uuidString.lowercased()
            let envelope = IngesterHarness.envelope(#"{"v":1,"kind":"a","id":"\#(id)"}"#)
            let ingester = IngesterHarness.ingester(keys: keys, redis: redisConfiguration, store: store, probe: probe)
            try await IngesterHarness.run([ingester]) {
                try await IngesterHarness.push([envelope, envelope], keys: keys, redis: redis)
                await probe.waitFor(envelopes: 2)
                try await IngesterHarness.push([envelope], keys: keys, redis: redis)
                await probe.waitFor(envelopes: 3)
            }
            #expect(try await store.jobs().map { $0.id.uuidString.lowercased() } == [id])
        }
    }

    @Test("a unique key held by an unfinished job drops the second envelope, counted as a duplicate")
    func uniqueKeyHonoured() async throws {
        try await TestDatabase.withFresh { client, _ in
            let fixture = try IngressFixture(client: client)
            let probe = IngestProbe()
            try await IngesterHarness.run([fixture.ingester(probe)]) {
                try await fixture.push([
                    IngesterHarness.envelope(#"{"v":1,"kind":"ml.retrain","unique_key":"retrain-ctr","tags":["first"]}"#),
                    IngesterHarness.envelope(#"{"v":1,"kind":"ml.retrain","unique_key":"retrain-ctr","tags":["second"]}"#),
                ])
                await probe.waitFor(envelopes: 2)
            }
            #expect(try await fixture.store.jobs().map(\.tags) == [["first"]])
            #expect(probe.duplicates == 1)
        }
    }

    @Test("a batch moved by an ingester that died before committing is ingested once by a survivor")
    func recoversDeadIngester() async throws {
        try await TestDatabase.withFresh { client, _ in
            let fixture = try IngressFixture(client: client)
            let (keys, redisConfiguration, redis, store) = (fixture.keys, fixture.redisConfiguration, fixture.redis, fixture.store)
            // The dead ingester: it moved a batch (no id in most envelopes, one malformed) and never committed.
            let dead = keys.batch(ingester: "dead", number: 7)
            let contents = (0..<20).map { IngesterHarness.envelope(#"{"v":1,"kind":"conveyor.noop","args":{"n":\#($0)}}"#) }
                + [Data("garbage".utf8)]
            try await IngesterHarness.push(contents, keys: keys, redis: redis)
            let moved = try await redis.send(
                ["EVAL", IngressMoveScriptSource.text, "3", keys.ingress, dead, keys.processingSet, "100"].map { Data($0.utf8) })
            #expect(moved.elements.count == 22)
            #expect(try await redis.send("LLEN", keys.ingress) == .integer(0))

            let probe = IngestProbe()
            try await IngesterHarness.run([IngesterHarness.ingester(keys: keys, redis: redisConfiguration, store: store, probe: probe)]) {
                await probe.waitFor(envelopes: 21)
            }
            #expect(try await store.jobs(JobFilter(limit: 100)).count == 20)
            #expect(try await store.rejectedEnvelopes().count == 1)
            #expect(try await redis.send("EXISTS", dead) == .integer(0))

            // The same batch again, as if the commit happened but deleting the list did not: nothing doubles.
            _ = try await redis.pipeline(
                [["RPUSH", dead].map { Data($0.utf8) } + contents, ["SADD", keys.processingSet, dead].map { Data($0.utf8) }])
            let again = IngestProbe()
            try await IngesterHarness.run([IngesterHarness.ingester(keys: keys, redis: redisConfiguration, store: store, probe: again)]) {
                await again.waitFor(envelopes: 21)
            }
            #expect(try await store.jobs(JobFilter(limit: 100)).count == 20)
            #expect(try await store.rejectedEnvelopes().count == 1)
        }
    }

    @Test("a live ingester's processing list is left alone")
    func leavesLiveIngesters() async throws {
        try await TestDatabase.withFresh { client, _ in
            let fixture = try IngressFixture(client: client)
            let (keys, redisConfiguration, redis, store) = (fixture.keys, fixture.redisConfiguration, fixture.redis, fixture.store)
            let busy = keys.batch(ingester: "alive", number: 1)
            try await redis.send("SET", keys.heartbeat(ingester: "alive"), "alive", "EX", "60")
            _ = try await redis.pipeline([
                ["RPUSH", busy, #"{"v":1,"kind":"a"}"#].map { Data($0.utf8) }, ["SADD", keys.processingSet, busy].map { Data($0.utf8) },
            ])
            let probe = IngestProbe()
            try await IngesterHarness.run([IngesterHarness.ingester(keys: keys, redis: redisConfiguration, store: store, probe: probe)]) {
                // One envelope of its own proves the ingester ran its recovery pass (it runs before the first batch).
                try await IngesterHarness.push([IngesterHarness.envelope(#"{"v":1,"kind":"b"}"#)], keys: keys, redis: redis)
                await probe.waitFor(envelopes: 1)
            }
            #expect(try await store.jobs().map(\.kind) == ["b"])
            #expect(try await redis.send("LLEN", busy) == .integer(1))
        }
    }
}
