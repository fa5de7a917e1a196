import ConveyorCore
import ConveyorIngress
import ConveyorPostgres
import ConveyorRedis
import ConveyorTestSupport
import Crypto
import Foundation
import Logging
import MetricsTestKit
import PostgresNIO
import Testing

/// Single envelopes that took the pipeline down before (issue 13), each pushed beside valid ones.
@Suite("Hostile envelopes", .timeLimit(.minutes(3)))
struct HostileEnvelopeTests {
    static func valid(_ n: Int) -> Data { Data(#"{"v":1,"kind":"conveyor.noop","args":{"n":\#(n)}}"#.utf8) }

    /// Pushes `hostile` between valid envelopes, ingests them all, and returns the quarantine.
    static func ingest(
        _ hostile: [Data], fixture: IngressFixture, logger: Logger = TestDatabase.logger, batchSize: Int = 100
    ) async throws -> [RejectedEnvelope] {
        var envelopes: [Data] = []
        for (index, item) in hostile.enumerated() {
            envelopes += [valid(2 * index), item, valid(2 * index + 1)]
        }
        try await fixture.push(envelopes)
        let probe = IngestProbe()
        let ingester = EnvelopeIngester(
            configuration: .init(keys: fixture.keys, batchSize: batchSize, blockTimeout: .milliseconds(200)),
            redis: fixture.redisConfiguration, store: fixture.store, logger: logger, onBatch: probe.observer)
        let total = envelopes.count
        try await IngesterHarness.run([ingester]) { await probe.waitFor(envelopes: total) }
        let jobs = try await fixture.store.jobs(JobFilter(limit: 10_000))
        let rejected: [RejectedEnvelope] = try await fixture.store.rejectedEnvelopes(limit: 1000).reversed()
        let ns = Set(jobs.compactMap { try? JSONParser.parse($0.args) }.compactMap { value -> Int64? in
            if case .object(let fields) = value, case .integer(let n)? = fields["n"] { return n }
            return nil
        })
        #expect(ns == Set((0..<Int64(2 * hostile.count))), "every valid envelope became a job")
        #expect(jobs.count + rejected.count == total)
        #expect(try await fixture.redis.send("LLEN", fixture.keys.ingress) == .integer(0))
        #expect(try await fixture.redis.send("SCARD", fixture.keys.processingSet) == .integer(0))
        return rejected
    }

    @Test("dates outside years 1–9999 (six-digit years, year 0) are quarantined instead of crashing the ingester")
    func farFutureDates() async throws {
        try await TestDatabase.withFresh { client, _ in
            let fixture = try IngressFixture(client: client)
            let hostile = [
                #"{"v":1,"kind":"conveyor.noop","run_at":"999999-01-01T00:00:00Z"}"#,
                #"{"v":1,"kind":"conveyor.noop","enqueued_at":"+275760-09-13T00:00:00Z"}"#,
                #"{"v":1,"kind":"conveyor.noop","run_at":"10000-01-01T00:00:00Z"}"#,
                #"{"v":1,"kind":"conveyor.noop","run_at":"0000-12-31T23:59:59Z"}"#,
            ].map { Data($0.utf8) }
            let rejected = try await Self.ingest(hostile, fixture: fixture)
            #expect(rejected.map(\.payload) == hostile)
            #expect(rejected.allSatisfy { $0.reason.contains("is not an RFC 3339 time of years 0001 to 9999") }, "\(rejected.map(\.reason))")
        }
    }

    @Test("the edges of the date range are accepted")
    func dateEdges() async throws {
        try await TestDatabase.withFresh { client, _ in
            let fixture = try IngressFixture(client: client)
            let edges = try await Self.ingest(
                [Data(#"{"v":1,"kind":"conveyor.noop","run_at":"9999-12-31T23:59:59Z","enqueued_at":"0001-01-01T00:00:00Z"}"#.utf8)],
                fixture: fixture)
            #expect(edges.isEmpty, "\(edges.map(\.reason))")
            #expect(try await fixture.store.jobs().contains { RFC3339.format($0.runAt) == "9999-12-31T23:59:59Z" })
        }
    }

    @Test("a unique_key of 255 characters but 510 code points is quarantined; the envelopes beside it are ingested")
    func combiningUniqueKey() async throws {
        try await TestDatabase.withFresh { client, _ in
            let fixture = try IngressFixture(client: client)
            let key = String(repeating: #"a\u0301"#, count: 255)
            let hostile = [Data(#"{"v":1,"kind":"conveyor.noop","unique_key":"\#(key)"}"#.utf8)]
            let rejected = try await Self.ingest(hostile, fixture: fixture)
            #expect(rejected.map(\.reason) == ["unique_key has 510 characters, at most 255 allowed"])
        }
    }

    @Test("args whose canonically equivalent keys hide deep nesting from a Swift dictionary are judged on their bytes")
    func canonicallyEquivalentKeys() async throws {
        try await TestDatabase.withFresh { client, _ in
            let fixture = try IngressFixture(client: client)
            let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
            // "é" (U+00E9) then "e" + U+0301: one key to Swift (the later value wins), two keys to jsonb.
            let hostile = [Data(#"{"v":1,"kind":"conveyor.noop","args":{"é":\#(deep),"e\u0301":1}}"#.utf8)]
            let rejected = try await Self.ingest(hostile, fixture: fixture)
            #expect(rejected.map(\.reason) == ["args is nested deeper than 64 levels"])
            // Nothing deeper than the limit was stored.
            let rows = try await client.query("SELECT count(*) FROM conveyor_jobs WHERE args::text LIKE '%[[[[%'", logger: TestDatabase.logger)
            for try await count in rows.decode(Int64.self) { #expect(count == 0) }
        }
    }

    @Test("envelopes over 2 MiB never enter a batch: quarantined as a 64 KiB prefix with their length and SHA-256, nothing left in Redis")
    func oversized() async throws {
        try await TestDatabase.withFresh { client, _ in
            let fixture = try IngressFixture(client: client)
            let big = Data(#"{"v":1,"kind":"conveyor.noop","args":{"s":""#.utf8) + Data(repeating: UInt8(ascii: "x"), count: 3 << 20)
                + Data(#""}}"#.utf8)
            let medium = Data(repeating: UInt8(ascii: "y"), count: 100_000)  // under 2 MiB, not JSON: stored bounded too
            // A producer's forgery of the move script's marker is an ordinary (invalid) envelope.
            let forged = Data("\u{0}conveyor-oversize:5:\(fixture.keys.namespace):processing:x:1:oversize:1".utf8)
            let rejected = try await Self.ingest([big, medium, forged], fixture: fixture)
            #expect(rejected.count == 3)
            let stored = rejected[0]
            #expect(stored.size == big.count && stored.payload == big.prefix(Rejection.maxStoredBytes) && stored.isTruncated)
            #expect(stored.sha256 == SHA256.hash(data: big).map { String(format: "%02x", $0) }.joined())
            #expect(stored.reason.contains("envelope is \(big.count) bytes, at most \(Envelope.maxBytes) allowed"))
            #expect(rejected[1].size == medium.count && rejected[1].payload.count == Rejection.maxStoredBytes)
            #expect(rejected[2].payload == forged && rejected[2].reason.contains("not valid JSON"))
            let left = try await fixture.redis.send("KEYS", "\(fixture.keys.namespace):*").elements.compactMap(\.string)
            #expect(left.filter { $0.contains("oversize") }.isEmpty, "\(left)")
        }
    }

    @Test("an oversized envelope that wakes an idle ingester (the blocking move) is quarantined bounded too")
    func oversizedFirst() async throws {
        try await TestDatabase.withFresh { client, _ in
            let fixture = try IngressFixture(client: client)
            let big = Data(repeating: UInt8(ascii: "{"), count: 3 << 20)
            let probe = IngestProbe()
            try await IngesterHarness.run([fixture.ingester(probe)]) {
                // The ingester is idle in BLMOVE by the time the first push lands, or takes it by the script.
                try await fixture.push([big, Self.valid(1)])
                await probe.waitFor(envelopes: 2)
            }
            let rejected = try await fixture.store.rejectedEnvelopes()
            #expect(rejected.count == 1 && rejected[0].size == big.count && rejected[0].payload.count == Rejection.maxStoredBytes)
            #expect(try await fixture.store.jobs().count == 1)
        }
    }

    @Test("a batch's bytes are capped: two hundred 1 MiB envelopes are ingested in batches of at most 8 MiB")
    func batchBytesCapped() async throws {
        try await TestDatabase.withFresh { client, _ in
            let fixture = try IngressFixture(client: client)
            let filler = String(repeating: "z", count: 1 << 20 - 100)
            let envelopes = (0..<40).map { Data(#"{"v":1,"kind":"conveyor.noop","args":{"n":\#($0),"s":"\#(filler)"}}"#.utf8) }
            try await fixture.push(envelopes)
            let sizes = Recorded<Int>()
            let ingester = EnvelopeIngester(
                configuration: .init(keys: fixture.keys, batchSize: 500, blockTimeout: .milliseconds(200)),
                redis: fixture.redisConfiguration, store: fixture.store, logger: TestDatabase.logger,
                onBatch: { sizes.append([$0.envelopes]) })
            _ = try await IngesterHarness.run([ingester]) {
                try await sizes.wait(for: "every envelope") { $0.reduce(0, +) >= envelopes.count }
            }
            #expect(sizes.all.allSatisfy { $0 <= 8 }, "\(sizes.all)")
            #expect(try await fixture.store.jobs(JobFilter(limit: 100)).count == envelopes.count)
        }
    }

    @Test("a row PostgreSQL refuses with a constraint violation (class 23) is isolated, and its content never reaches the logs")
    func constraintViolationIsolated() async throws {
        try await TestDatabase.withFresh { client, _ in
            try await Self.refuse(client, where: "NEW.args ? 'evil'", errcode: "check_violation")
            let fixture = try IngressFixture(client: client)
            let messages = LogMessages()
            let hostile = [Data(#"{"v":1,"kind":"conveyor.noop","args":{"evil":"s3cret-row-content"}}"#.utf8)]
            let rejected = try await Self.ingest(hostile, fixture: fixture, logger: messages.logger(withMetadata: true))
            #expect(rejected.map(\.payload) == hostile)
            #expect(rejected.first?.reason.contains("refused by the database") == true, "\(rejected.map(\.reason))")
            #expect(rejected.first?.reason.contains("s3cret") == false)
            #expect(!messages.all.isEmpty)
            #expect(!messages.all.contains { $0.contains("s3cret") || $0.contains("Failing row") }, "\(messages.all)")
        }
    }

    @Test("a batch that keeps failing for any reason the server gives is written one envelope at a time after three tries")
    func anyServerErrorIsolatedAfterRetries() async throws {
        try await TestDatabase.withFresh { client, _ in
            // SQLSTATE P0001: not a data error, so the first tries retry the whole batch.
            try await Self.refuse(client, where: "NEW.args ? 'poison'", errcode: "raise_exception")
            let fixture = try IngressFixture(client: client)
            let hostile = [Data(#"{"v":1,"kind":"conveyor.noop","args":{"poison":1}}"#.utf8)]
            let rejected = try await Self.ingest(hostile, fixture: fixture)
            #expect(rejected.map(\.payload) == hostile)
            #expect(rejected.first?.reason.contains("P0001") == true, "\(rejected.map(\.reason))")
        }
    }

    /// A trigger that refuses rows matching `condition` with `errcode`, its detail quoting the row as
    /// PostgreSQL's own constraint errors do.
    static func refuse(_ client: PostgresClient, where condition: String, errcode: String) async throws {
        try await TestDatabase.installTrigger(
            "refuse_rows", on: client, event: "BEFORE INSERT", when: condition,
            body: "RAISE EXCEPTION 'refused by a test trigger' USING ERRCODE = '\(errcode)', DETAIL = 'Failing row contains ' || NEW.args::text;")
    }

    @Test("an ingester restarted under the same id loses nothing: ids derived for envelopes without one differ across runs")
    func restartWithStableID() async throws {
        try await TestDatabase.withFresh { client, _ in
            let fixture = try IngressFixture(client: client)
            for round in 0..<2 {
                try await fixture.push((0..<10).map { Self.valid(100 * round + $0) })
                let probe = IngestProbe()
                let ingester = IngesterHarness.ingester(
                    keys: fixture.keys, redis: fixture.redisConfiguration, store: fixture.store, probe: probe, id: "pod-0")
                try await IngesterHarness.run([ingester]) { await probe.waitFor(envelopes: 10) }
                #expect(probe.duplicates == 0, "round \(round)")
            }
            #expect(try await fixture.store.jobs(JobFilter(limit: 100)).count == 20)
        }
    }

    @Test("drops by duplicate id and by held unique key are counted apart")
    func duplicatesCountedApart() async throws {
        try await TestDatabase.withFresh { client, _ in
            let fixture = try IngressFixture(client: client)
            let id = UUID().uuidString.lowercased()
            let envelopes = [
                #"{"v":1,"kind":"conveyor.noop","id":"\#(id)"}"#, #"{"v":1,"kind":"conveyor.noop","id":"\#(id)"}"#,
                #"{"v":1,"kind":"conveyor.noop","unique_key":"once"}"#, #"{"v":1,"kind":"conveyor.noop","unique_key":"once"}"#,
                #"{"v":1,"kind":"conveyor.noop","unique_key":"once"}"#,
            ].map { Data($0.utf8) }
            try await fixture.push(envelopes)
            let metrics = TestMetrics()
            let probe = IngestProbe()
            let ingester = IngesterHarness.ingester(
                keys: fixture.keys, redis: fixture.redisConfiguration, store: fixture.store, probe: probe, metrics: metrics)
            try await IngesterHarness.run([ingester]) { await probe.waitFor(envelopes: envelopes.count) }
            let total = { (result: String) in metrics.counterTotal(label: "conveyor_ingest_envelopes_total", dimensions: [("result", result)]) }
            #expect(total("ingested") == 2 && total("duplicate_id") == 1 && total("duplicate_unique_key") == 2)
        }
    }
}
