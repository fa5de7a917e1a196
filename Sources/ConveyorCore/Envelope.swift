public import Foundation

/// The producers' wire format, version 1 (DESIGN §2): one JSON object per job pushed onto
/// `{conveyor}:ingress`.
///
/// ```json
/// {"v": 1, "kind": "ml.retrain", "args": {"model": "ctr"}, "id": "…uuid…", "queue": "ml",
///  "priority": 3, "run_at": "2026-11-25T02:00:00Z", "max_attempts": 5, "unique_key": "retrain-ctr",
///  "tags": ["daily"], "enqueued_at": "2026-11-24T09:00:00Z"}
/// ```
/// Only `v` and `kind` are required; unknown fields are ignored.
public enum Envelope {
    /// The largest envelope accepted before parsing: 2 MiB (args may be 1 MiB).
    public static let maxBytes = 2 << 20

    /// Why an envelope was rejected (stored with it in quarantine).
    public struct Rejection: Error, Sendable, Equatable, CustomStringConvertible {
        /// What is wrong, safe to show.
        public var reason: String
        /// A stable category for metrics: `too_large`, `invalid_utf8`, `invalid_json`, `not_object`,
        /// `unsupported_version` or `invalid_field`.
        public var code: String
        public var description: String { reason }

        public init(_ reason: String, code: String = "invalid_field") {
            self.reason = reason
            self.code = code
        }
    }

    /// Parses and validates one envelope into a job; `maxAttempts` is `nil` when the envelope leaves it
    /// to the kind's default, and the job gets `defaultID` when the envelope has no `id`.
    public static func decode(_ bytes: Data, defaultID: @autoclosure () -> UUID = UUID()) -> Result<NewJob, Rejection> {
        guard bytes.count <= maxBytes else {
            return .failure(Rejection("envelope is \(bytes.count) bytes, at most \(maxBytes) allowed", code: "too_large"))
        }
        guard String(validating: bytes, as: UTF8.self) != nil else {
            return .failure(Rejection("envelope is not valid UTF-8", code: "invalid_utf8"))
        }
        let parsed: (members: [String: JSONValue], raw: [String: Range<Int>])?
        do {
            parsed = try JSONParser.parseObjectKeepingRaw(bytes)
        } catch {
            return .failure(Rejection("envelope is not valid JSON: \(error)", code: "invalid_json"))
        }
        guard let parsed else {
            do {
                let value = try JSONParser.parse(bytes)
                return .failure(Rejection("envelope must be a JSON object, got \(value.typeName)", code: "not_object"))
            } catch {
                return .failure(Rejection("envelope is not valid JSON: \(error)", code: "invalid_json"))
            }
        }
        do {
            let rawArgs = parsed.raw["args"].map { range in
                String(decoding: bytes[(bytes.startIndex + range.lowerBound)..<(bytes.startIndex + range.upperBound)], as: UTF8.self)
            }
            return .success(try job(from: parsed.members, rawArgs: rawArgs, defaultID: defaultID()))
        } catch let rejection as Rejection {
            return .failure(rejection)
        } catch {
            return .failure(Rejection(describe(error)))
        }
    }

    /// `rawArgs` is the envelope's own text of `args`: stored as it came (PostgreSQL normalises it into
    /// `jsonb`), which saves encoding the parsed value again.
    private static func job(from fields: [String: JSONValue], rawArgs: String?, defaultID: UUID) throws -> NewJob {
        guard let version = fields["v"] else { throw Rejection("missing required field v") }
        guard case .integer(let number) = version else { throw Rejection("v must be an integer, got \(version.typeName)") }
        guard number == 1 else {
            throw Rejection("unsupported envelope version \(number); this worker reads v 1", code: "unsupported_version")
        }
        guard let kindValue = fields["kind"] else { throw Rejection("missing required field kind") }
        guard case .string(let kind) = kindValue else { throw Rejection("kind must be a string, got \(kindValue.typeName)") }

        var job = NewJob(kind: kind, id: defaultID)
        switch fields["args"] {
        case nil, .null?:
            job.args = "{}"
        case .object(let args)?:
            // PostgreSQL's jsonb rejects U+0000 and very deep nesting; reject them here, with a reason,
            // instead of failing the whole batch's insert. Checked on the bytes PostgreSQL will store, not
            // on the parsed value: a Swift dictionary merges canonically equivalent keys ("é" and
            // "e\u{301}"), so the value can hide a member that jsonb keeps.
            if let rawArgs {
                if let problem = JSONStorageCheck.problem(in: rawArgs, maxDepth: NewJob.maxArgsDepth) {
                    throw Rejection(problem.description)
                }
                job.args = rawArgs
            } else {
                if let problem = JSONValue.object(args).storageProblem(maxDepth: NewJob.maxArgsDepth) {
                    throw Rejection(problem.description)
                }
                job.args = String(decoding: try JSONEncoder().encode(JSONValue.object(args)), as: UTF8.self)
            }
        case let other?:
            throw Rejection("args must be an object, got \(other.typeName)")
        }
        if let id = try optionalString(fields, "id") {
            guard let uuid = UUID(uuidString: id) else { throw Rejection("id \(id.debugDescription.prefix(60)) is not a UUID") }
            job.id = uuid
        }
        if let queue = try optionalString(fields, "queue") { job.queue = queue }
        if let priority = try optionalInteger(fields, "priority") { job.priority = priority }
        if let runAt = try optionalTime(fields, "run_at") { job.runAt = runAt }
        if let maxAttempts = try optionalInteger(fields, "max_attempts") { job.maxAttempts = maxAttempts }
        job.uniqueKey = try optionalString(fields, "unique_key")
        job.limitKey = try optionalString(fields, "limit_key")
        job.callbackURL = try optionalString(fields, "callback_url")
        job.replyTo = try optionalString(fields, "reply_to")
        job.enqueuedAt = try optionalTime(fields, "enqueued_at")
        switch fields["tags"] {
        case nil, .null?:
            break
        case .array(let items)?:
            job.tags = try items.map { item in
                guard case .string(let tag) = item else { throw Rejection("tags must be strings, got \(item.typeName)") }
                return tag
            }
        case let other?:
            throw Rejection("tags must be an array of strings, got \(other.typeName)")
        }
        do {
            // args is the text of a JSON object just parsed and checked: do not parse it a second time.
            try job.validate(argsKnownToBeObject: true)
        } catch {
            throw Rejection(error.description)
        }
        return job
    }

    private static func optionalString(_ fields: [String: JSONValue], _ name: String) throws -> String? {
        switch fields[name] {
        case nil, .null?: return nil
        case .string(let value)?: return value
        case let other?: throw Rejection("\(name) must be a string, got \(other.typeName)")
        }
    }

    private static func optionalInteger(_ fields: [String: JSONValue], _ name: String) throws -> Int? {
        switch fields[name] {
        case nil, .null?: return nil
        case .integer(let value)?:
            guard let int = Int(exactly: value) else { throw Rejection("\(name) \(value) is out of range") }
            return int
        case let other?: throw Rejection("\(name) must be an integer, got \(other.typeName)")
        }
    }

    private static func optionalTime(_ fields: [String: JSONValue], _ name: String) throws -> Date? {
        guard let text = try optionalString(fields, name) else { return nil }
        guard let date = RFC3339.parse(text) else {
            throw Rejection("\(name) \(text.debugDescription.prefix(60)) is not an RFC 3339 time of years 0001 to 9999")
        }
        return date
    }

    private static func describe(_ error: any Error) -> String {
        if let decoding = error as? DecodingError {
            switch decoding {
            case .dataCorrupted(let context): return context.debugDescription
            case .typeMismatch(_, let context), .valueNotFound(_, let context), .keyNotFound(_, let context):
                return context.debugDescription
            @unknown default: return "\(decoding)"
            }
        }
        return "\(error)"
    }

    /// Encodes `job` as a version 1 envelope (what ``ConveyorClient`` pushes).
    public static func encode(_ job: NewJob) throws -> Data {
        var object: [String: JSONValue] = [
            "v": .integer(1), "kind": .string(job.kind), "id": .string(job.id.uuidString.lowercased()),
            "queue": .string(job.queue), "priority": .integer(Int64(job.priority)),
        ]
        object["args"] = try JSONParser.parse(job.args)
        if let runAt = job.runAt { object["run_at"] = .string(RFC3339.formatPrecise(runAt)) }
        if let maxAttempts = job.maxAttempts { object["max_attempts"] = .integer(Int64(maxAttempts)) }
        if let uniqueKey = job.uniqueKey { object["unique_key"] = .string(uniqueKey) }
        if let limitKey = job.limitKey { object["limit_key"] = .string(limitKey) }
        if let callbackURL = job.callbackURL { object["callback_url"] = .string(callbackURL) }
        if let replyTo = job.replyTo { object["reply_to"] = .string(replyTo) }
        if !job.tags.isEmpty { object["tags"] = .array(job.tags.map(JSONValue.string)) }
        object["enqueued_at"] = .string(RFC3339.formatPrecise(job.enqueuedAt ?? Date()))
        return try JSONEncoder().encode(JSONValue.object(object))
    }
}
