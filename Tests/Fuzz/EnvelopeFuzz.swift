// libFuzzer target for the envelope parser (`ops/fuzz`): compiled with ConveyorCore's parsing files
// alone, outside SwiftPM, with `-sanitize=fuzzer,address`.
//
// Whatever the bytes, `Envelope.decode` must return (no trap, no hang, no overflow) and:
// - a rejection has a reason and one of the documented codes;
// - an accepted job passes `NewJob.validate()`, its args are storable as jsonb judged on their text,
//   its dates lie in years 1–9999, and encoding it as an envelope and decoding that gives the same job.
import Foundation

private let codes: Set<String> = ["too_large", "invalid_utf8", "invalid_json", "not_object", "unsupported_version", "invalid_field"]

@_cdecl("LLVMFuzzerTestOneInput")
public func envelopeFuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let data = Data(bytes: start, count: count)
    let id = UUID(uuid: (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16))
    switch Envelope.decode(data, defaultID: id) {
    case .failure(let rejection):
        precondition(!rejection.reason.isEmpty, "a rejection without a reason")
        precondition(codes.contains(rejection.code), "unknown rejection code \(rejection.code)")
    case .success(let job):
        do { try job.validate() } catch { preconditionFailure("accepted but invalid: \(error)") }
        precondition(JSONStorageCheck.problem(in: job.args, maxDepth: NewJob.maxArgsDepth) == nil, "args not storable")
        precondition(job.uniqueKey.map { $0.unicodeScalars.count <= 255 } ?? true)
        for date in [job.runAt, job.enqueuedAt].compactMap({ $0 }) { precondition(RFC3339.isSupported(date), "date out of range") }
        var stamped = job
        stamped.enqueuedAt = job.enqueuedAt ?? Date(timeIntervalSince1970: 0)
        guard let encoded = try? Envelope.encode(stamped) else { preconditionFailure("an accepted job does not encode") }
        switch Envelope.decode(encoded, defaultID: id) {
        case .success(let again):
            precondition(again.kind == job.kind && again.queue == job.queue && again.priority == job.priority, "round trip changed the job")
            precondition(again.uniqueKey == job.uniqueKey && again.tags == job.tags && again.maxAttempts == job.maxAttempts)
        case .failure(let rejection):
            preconditionFailure("an accepted job's own envelope is rejected: \(rejection.reason)")
        }
    }
    return 0
}
