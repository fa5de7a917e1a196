import ConveyorBuiltinKinds
import ConveyorCore
import ConveyorIngress
import ConveyorTestSupport
import ConveyorWorker
import Foundation
import Testing

/// Thousands of malformed and hostile envelopes mixed with valid ones, generated from a seed.
enum AdversarialStream {
    /// One malformed envelope of kind `index % 14`, varied by `random`.
    static func malformed(_ index: Int, random: inout SeededGenerator) -> Data {
        let n = Int(random.next() % 1000)
        switch index % 14 {
        case 0: return Data((0..<(1 + n % 64)).map { _ in UInt8(truncatingIfNeeded: random.next()) } + [0xFF])  // random bytes, never UTF-8
        case 1: return Data((String(repeating: "[", count: 5000 + n) + String(repeating: "]", count: 5000 + n)).utf8)  // array bomb
        case 2:  // args nested past the limit, valid JSON otherwise
            let depth = NewJob.maxArgsDepth + 1 + n % 200
            return Data((#"{"v":1,"kind":"conveyor.noop","args":"# + String(repeating: #"{"a":"#, count: depth) + "1"
                + String(repeating: "}", count: depth) + "}").utf8)
        case 3: return Data(#"{"v":1,"kind":"conveyor.noop","args":{"s":"nul\u0000here"}}"#.utf8)  // NUL escape in args
        case 4: return Data(#"{"v":1,"kind":"conveyor.noop","unique_key":"k\u0000\#(n)"}"#.utf8)  // NUL in a text column
        case 5: return Data(#"{"v":1,"kind":"conveyor.noop","args":{"\u0000":1}}"#.utf8)  // NUL in a key
        case 6: return Data(("{\"v\":1,\"kind\":\"conveyor.noop\",\"args\":{\"s\":\"" + String(repeating: "x", count: NewJob.maxArgsBytes + n) + "\"}}").utf8)  // huge string
        case 7: return Data(#"{"v":"1","kind":"conveyor.noop"}"#.utf8)  // wrong type
        case 8: return Data(#"{"v":1,"kind":["conveyor.noop"]}"#.utf8)
        case 9: return Data(#"{"v":1,"kind":"conveyor.noop","priority":1e400}"#.utf8)
        case 10: return Data(#"{"v":1,"kind":"conveyor.noop","tags":["ok",\#(n)]}"#.utf8)
        case 11: return Data(#"{"v":1,"kind":"conveyor.noop","max_attempts":99999999999999999999999}"#.utf8)
        case 12: return Data([0x7B, 0x00, 0x7D])  // a raw NUL byte
        default: return Data(#"{"v":1,"kind":"conveyor.noop","id":"\#(n)"}"#.utf8)
        }
    }
}

/// A small deterministic generator (SplitMix64).
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("Adversarial input at scale")
struct AdversarialInputTests {
    @Test("thousands of malformed and hostile envelopes are quarantined with a reason; the valid ones around them complete")
    func adversarialStream() async throws {
        try await TestDatabase.withFresh { client, _ in
            let fixture = try IngressFixture(client: client)
            var random = SeededGenerator(state: 42)
            var envelopes: [Data] = []
            var valid: [UUID] = []
            let malformedCount = 1400
            for index in 0..<malformedCount {
                envelopes.append(AdversarialStream.malformed(index, random: &random))
                let id = UUID()
                valid.append(id)
                // Valid envelopes with the awkward-but-legal content: unicode, escapes, deep-enough nesting.
                let body = index % 3 == 0 ? #"{"emoji":"🚀\"quoted\"","deep":{"a":{"b":{"c":[1,2,{"d":null}]}}}}"# : #"{"n":\#(index)}"#
                envelopes.append(Data(#"{"v":1,"kind":"conveyor.noop","id":"\#(id)","args":\#(body),"tags":["ok"]}"#.utf8))
            }
            try await fixture.push(envelopes)
            let (total, validCount) = (envelopes.count, valid.count)

            var registry = HandlerRegistry()
            registry.registerBuiltinKinds()
            let results = WrittenResults()
            var configuration = WorkerConfiguration.fast()
            configuration.onResultsWritten = results.callback
            let worker = Worker(configuration: configuration, store: fixture.store, registry: registry, logger: TestDatabase.logger)
            let probe = IngestProbe()
            let ingesters = [fixture.ingester(probe), fixture.ingester(probe)]
            try await withRunningServices(ingesters + [worker], logger: TestDatabase.logger) { _ in
                await probe.waitFor(envelopes: total)
                try await results.wait(for: "every valid job completes") { $0.filter { $0.resolution == .complete }.count >= validCount }
            }
            let stats = try await fixture.store.queueStatistics()
            #expect(stats.map(\.state) == [.completed], "\(stats)")
            let rejected = try await fixture.store.rejectedEnvelopes(limit: 10_000)
            #expect(rejected.count == malformedCount)
            #expect(rejected.allSatisfy { !$0.reason.isEmpty })
            #expect(Set(rejected.map(\.reason)).count >= 10, "each kind of bad input gets its own reason")
            #expect(try await fixture.redis.send("LLEN", fixture.keys.ingress) == .integer(0))
        }
    }
}

@Suite("Values the database refuses")
struct DatabaseRefusalTests {
    @Test("an envelope PostgreSQL refuses despite validation is isolated and quarantined; the rest of its batch goes in")
    func isolation() async throws {
        try await TestDatabase.withFresh { client, _ in
            // Stand-in for whatever validation may miss: a trigger that refuses one value with a data
            // exception (SQLSTATE 22023), as PostgreSQL does for values it cannot store.
            try await TestDatabase.installTrigger(
                "refuse_evil", on: client, event: "BEFORE INSERT", when: "NEW.args ? 'evil'",
                body: "RAISE EXCEPTION 'cannot store this value' USING ERRCODE = 'invalid_parameter_value';")
            let fixture = try IngressFixture(client: client)
            var envelopes = (0..<20).map { Data(#"{"v":1,"kind":"conveyor.noop","args":{"n":\#($0)}}"#.utf8) }
            envelopes.insert(Data(#"{"v":1,"kind":"conveyor.noop","args":{"evil":true}}"#.utf8), at: 7)
            envelopes.append(Data("not json".utf8))
            try await fixture.push(envelopes)
            let probe = IngestProbe()
            let total = envelopes.count
            try await IngesterHarness.run([fixture.ingester(probe)]) { await probe.waitFor(envelopes: total) }

            #expect(try await fixture.store.jobs(JobFilter(limit: 100)).count == 20)
            let rejected = try await fixture.store.rejectedEnvelopes()
            #expect(rejected.count == 2)
            let refused = try #require(rejected.first { $0.payload == envelopes[7] })
            #expect(refused.reason.contains("refused by the database") && refused.reason.contains("cannot store this value"), "\(refused.reason)")
            #expect(try await fixture.redis.send("LLEN", fixture.keys.ingress) == .integer(0))
        }
    }
}

enum WorkerConfiguration {
    static func fast() -> Worker.Configuration {
        Worker.Configuration(
            queues: QueueConfiguration(queues: [.init(name: "default", concurrency: 50)]), pollInterval: .milliseconds(20),
            completionLinger: .milliseconds(2))
    }
}
