import ConveyorCore
import Foundation
import Testing

@Suite("Job validation")
struct NewJobTests {
    @Test("accepts a well-formed job")
    func accepts() throws {
        try NewJob(kind: "ml.retrain", args: #"{"model":"ctr"}"#, queue: "ml-jobs", priority: 0, maxAttempts: 1000).validate()
    }

    static let invalid: [(NewJob, NewJob.ValidationError)] = [
        (NewJob(kind: "ML"), .badKind("ML")),
        (NewJob(kind: ""), .badKind("")),
        (NewJob(kind: String(repeating: "a", count: 101)), .badKind(String(repeating: "a", count: 101))),
        (NewJob(kind: "a", queue: "a.b"), .badQueue("a.b")),
        (NewJob(kind: "a", priority: 10), .priorityOutOfRange(10)),
        (NewJob(kind: "a", priority: -1), .priorityOutOfRange(-1)),
        (NewJob(kind: "a", maxAttempts: 0), .maxAttemptsOutOfRange(0)),
        (NewJob(kind: "a", uniqueKey: String(repeating: "k", count: 256)), .uniqueKeyTooLong(256)),
        (NewJob(kind: "a", args: "[1]"), .argsNotAnObject("an array")),
        (NewJob(kind: "a", args: "{"), .argsNotJSON("unexpected end of input, expected an object key at byte 1")),
        // PostgreSQL counts code points: 255 Characters of "a" + combining acute are 510.
        (NewJob(kind: "a", uniqueKey: String(repeating: "a\u{301}", count: 255)), .uniqueKeyTooLong(510)),
        (NewJob(kind: "a", runAt: Date(timeIntervalSince1970: 1e13)), .timeOutOfRange(field: "run_at")),
        (NewJob(kind: "a", runAt: Date(timeIntervalSince1970: -1e12)), .timeOutOfRange(field: "run_at")),
        (NewJob(kind: "a", enqueuedAt: Date.distantFuture.addingTimeInterval(1e12)), .timeOutOfRange(field: "enqueued_at")),
        // The depth and NUL checks read the text, so keys a Swift dictionary merges cannot hide nesting.
        (NewJob(kind: "a", args: #"{"é":"# + String(repeating: "[", count: 80) + String(repeating: "]", count: 80) + #","e\u0301":1}"#), .argsTooDeep),
        (NewJob(kind: "a", args: #"{"k":"a\u0000b"}"#), .nulCharacter(field: "args")),
    ]

    @Test("rejects each field out of bounds", arguments: invalid)
    func rejects(job: NewJob, error: NewJob.ValidationError) {
        #expect(throws: error) { try job.validate() }
    }

    @Test("rejects args over 1 MiB")
    func oversize() {
        let big = "{\"x\":\"" + String(repeating: "a", count: NewJob.maxArgsBytes) + "\"}"
        #expect(throws: NewJob.ValidationError.argsTooLarge(big.utf8.count)) { try NewJob(kind: "a", args: big).validate() }
    }
}
