import ConveyorCore
import Foundation
import Testing

@Suite("Envelope v1")
struct EnvelopeTests {
    private func decode(_ text: String) -> Result<NewJob, Envelope.Rejection> { Envelope.decode(Data(text.utf8)) }

    @Test("a minimal envelope gets the documented defaults")
    func minimal() throws {
        let job = try decode(#"{"v":1,"kind":"conveyor.noop"}"#).get()
        #expect(job.kind == "conveyor.noop" && job.args == "{}" && job.queue == "default" && job.priority == 5)
        #expect(job.runAt == nil && job.maxAttempts == nil && job.uniqueKey == nil && job.tags.isEmpty)
    }

    @Test("every field is read; unknown fields are ignored")
    func allFields() throws {
        let id = UUID()
        let job = try decode("""
            {"v":1,"kind":"ml.retrain","args":{"model":"ctr","n":[1,2]},"id":"\(id.uuidString.lowercased())",
             "queue":"ml","priority":0,"run_at":"2026-11-25T02:00:00Z","max_attempts":5,"unique_key":"retrain-ctr",
             "tags":["daily","ml"],"enqueued_at":"2026-11-24T09:00:00.250+01:00","future_field":{"x":1}}
            """).get()
        #expect(job.id == id && job.queue == "ml" && job.priority == 0 && job.maxAttempts == 5)
        #expect(job.uniqueKey == "retrain-ctr" && job.tags == ["daily", "ml"])
        #expect(job.runAt == RFC3339.parse("2026-11-25T02:00:00Z"))
        #expect(job.enqueuedAt == RFC3339.parse("2026-11-24T08:00:00.250Z"))
        #expect(job.enqueuedAt.map { $0.timeIntervalSince1970.truncatingRemainder(dividingBy: 1) } == 0.25)
        let args = try JSONSerialization.jsonObject(with: Data(job.args.utf8)) as? [String: Any]
        #expect(args?["model"] as? String == "ctr")
    }

    @Test("args are kept as sent: numbers beyond Double keep their digits, nothing is re-encoded")
    func argsVerbatim() throws {
        let job = try decode(#"{"v":1,"kind":"a","args":{"big":123456789012345678901234567890,"price":1.10}}"#).get()
        #expect(job.args == #"{"big":123456789012345678901234567890,"price":1.10}"#)
    }

    static let malformed: [(String, Data, String)] = [
        ("bad JSON", Data(#"{"v":1,"kind":"#.utf8), "not valid JSON"),
        ("not an object", Data("[1,2]".utf8), "must be a JSON object, got an array"),
        ("invalid UTF-8", Data([0x7B, 0x22, 0xFF, 0xFE, 0x22, 0x7D]), "not valid UTF-8"),
        ("missing v", Data(#"{"kind":"a"}"#.utf8), "missing required field v"),
        ("v as string", Data(#"{"v":"1","kind":"a"}"#.utf8), "v must be an integer, got a string"),
        ("unsupported version", Data(#"{"v":2,"kind":"a"}"#.utf8), "unsupported envelope version 2"),
        ("missing kind", Data(#"{"v":1}"#.utf8), "missing required field kind"),
        ("kind as number", Data(#"{"v":1,"kind":7}"#.utf8), "kind must be a string, got a number"),
        ("bad kind", Data(#"{"v":1,"kind":"Has Spaces"}"#.utf8), "must match [a-z0-9_.-]{1,100}"),
        ("args as array", Data(#"{"v":1,"kind":"a","args":[1]}"#.utf8), "args must be an object, got an array"),
        ("priority out of range", Data(#"{"v":1,"kind":"a","priority":10}"#.utf8), "priority 10 must be between 0 and 9"),
        ("priority as string", Data(#"{"v":1,"kind":"a","priority":"high"}"#.utf8), "priority must be an integer, got a string"),
        ("bad run_at", Data(#"{"v":1,"kind":"a","run_at":"tomorrow"}"#.utf8), "run_at \"tomorrow\" is not an RFC 3339 time"),
        ("bad id", Data(#"{"v":1,"kind":"a","id":"42"}"#.utf8), "is not a UUID"),
        ("bad queue", Data(#"{"v":1,"kind":"a","queue":"Q!"}"#.utf8), "queue \"Q!\" must match"),
        ("max_attempts 0", Data(#"{"v":1,"kind":"a","max_attempts":0}"#.utf8), "max_attempts 0 must be between 1 and 1000"),
        ("tags of numbers", Data(#"{"v":1,"kind":"a","tags":[1]}"#.utf8), "tags must be strings"),
        ("long unique_key", Data(("{\"v\":1,\"kind\":\"a\",\"unique_key\":\"" + String(repeating: "k", count: 256) + "\"}").utf8), "unique_key has 256 characters"),
        ("oversize args", Data(("{\"v\":1,\"kind\":\"a\",\"args\":{\"x\":\"" + String(repeating: "a", count: 1 << 20) + "\"}}").utf8), "at most 1048576 allowed"),
        ("deep nesting", Data((String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)).utf8), "not valid JSON"),
        ("empty", Data(), "not valid JSON"),
    ]

    @Test("malformed envelopes are rejected with a reason", arguments: malformed)
    func rejects(name: String, bytes: Data, reason: String) {
        switch Envelope.decode(bytes) {
        case .success(let job): Issue.record("\(name) was accepted as \(job)")
        case .failure(let rejection): #expect(rejection.reason.contains(reason), "\(name): \(rejection.reason)")
        }
    }

    @Test("encode and decode round-trip")
    func roundTrip() throws {
        let job = NewJob(
            kind: "video.render", args: #"{"id":7}"#, queue: "render", priority: 2, runAt: Date(timeIntervalSince1970: 1_800_000_000.5),
            maxAttempts: 3, uniqueKey: "r-7", tags: ["t"])
        let decoded = try Envelope.decode(try Envelope.encode(job)).get()
        #expect(decoded.id == job.id && decoded.kind == job.kind && decoded.queue == job.queue && decoded.priority == 2)
        #expect(decoded.runAt == job.runAt && decoded.maxAttempts == 3 && decoded.uniqueKey == "r-7" && decoded.tags == ["t"])
        #expect(decoded.args == #"{"id":7}"#)
    }
}
