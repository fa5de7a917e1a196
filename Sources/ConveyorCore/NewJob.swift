public import Foundation

/// A job to insert, with the fields of the producers' envelope (DESIGN §2).
///
/// Call ``validate()`` before inserting: the store trusts validated values.
public struct NewJob: Sendable, Equatable {
    /// The idempotency key; a second insert with the same id is dropped. Default: a fresh UUID.
    public var id: UUID
    /// Which handler runs it, `[a-z0-9_.-]{1,100}`.
    public var kind: String
    /// The handler's input as a JSON object text. Default `{}`.
    public var args: String
    /// Routing, `[a-z0-9_-]{1,64}`. Default `default`.
    public var queue: String
    /// 0 (first) to 9. Default 5.
    public var priority: Int
    /// The priorities a job may have (0 runs first), as the table's CHECK constraint allows.
    public static let priorities: ClosedRange<Int> = 0...9
    /// Not before this time, in years 1–9999 (``RFC3339/isSupported(_:)``). Default: now.
    public var runAt: Date?
    /// 1–1000; `nil` takes the kind's default (``RetryPolicy/defaultMaxAttempts`` when unknown).
    public var maxAttempts: Int?
    /// While an unfinished job has this key, another one with it is not inserted. At most 255
    /// characters as PostgreSQL counts them (Unicode scalars, not Swift's grapheme clusters).
    public var uniqueKey: String?
    /// The throttled key it counts against (`meta:act_123`): while the key is paused (a handler threw
    /// ``JobFailure/throttled(key:until:_:)``) no job with it starts, and a kind's rate limit counts starts
    /// per key. At most 255 characters, like ``uniqueKey``.
    public var limitKey: String?
    /// Where to POST the outcome when the job ends (completed, dead, cancelled): an http(s) URL whose
    /// host a worker's `CONVEYOR_CALLBACK_HOSTS` allows. At most 2048 characters.
    public var callbackURL: String?
    /// A Redis list to push the outcome onto when the job ends. At most 255 characters.
    public var replyTo: String?
    /// Free labels for search.
    public var tags: [String]
    /// The producer's clock, for latency metrics; years 1–9999.
    public var enqueuedAt: Date?

    /// The largest accepted `args` text, in bytes: 1 MiB.
    public static let maxArgsBytes = 1 << 20
    /// The deepest nesting of objects and arrays accepted in `args` (PostgreSQL's jsonb parser has a
    /// stack limit; the platform's payloads are a few levels deep).
    public static let maxArgsDepth = 64

    /// Creates a job description; only `kind` is required.
    public init(
        kind: String, args: String = "{}", queue: String = "default", priority: Int = 5,
        runAt: Date? = nil, maxAttempts: Int? = nil, uniqueKey: String? = nil,
        tags: [String] = [], id: UUID = UUID(), enqueuedAt: Date? = nil, limitKey: String? = nil,
        callbackURL: String? = nil, replyTo: String? = nil
    ) {
        self.callbackURL = callbackURL
        self.replyTo = replyTo
        self.id = id
        self.kind = kind
        self.args = args
        self.queue = queue
        self.priority = priority
        self.runAt = runAt
        self.maxAttempts = maxAttempts
        self.uniqueKey = uniqueKey
        self.limitKey = limitKey
        self.tags = tags
        self.enqueuedAt = enqueuedAt
    }

    /// Creates a job whose args are an encodable payload.
    public init<Args: Encodable>(
        kind: String, payload: Args, queue: String = "default", priority: Int = 5,
        runAt: Date? = nil, maxAttempts: Int? = nil, uniqueKey: String? = nil, tags: [String] = [],
        limitKey: String? = nil
    ) throws {
        let data = try JSONEncoder().encode(payload)
        self.init(
            kind: kind, args: String(decoding: data, as: UTF8.self), queue: queue, priority: priority,
            runAt: runAt, maxAttempts: maxAttempts, uniqueKey: uniqueKey, tags: tags, limitKey: limitKey)
    }

    /// Why a job description is not acceptable.
    public enum ValidationError: Error, Sendable, Equatable, CustomStringConvertible {
        case badKind(String)
        case badQueue(String)
        case priorityOutOfRange(Int)
        case maxAttemptsOutOfRange(Int)
        case uniqueKeyTooLong(Int)
        /// A `limit_key` that is empty or longer than 255 characters (its length).
        case limitKeyLength(Int)
        /// A `callback_url` that is not an http(s) URL of at most 2048 characters (why).
        case badCallbackURL(String)
        /// A `reply_to` that is empty or longer than 255 characters (its length).
        case replyToLength(Int)
        /// Args that parse, but not to an object (the JSON type they have).
        case argsNotAnObject(String)
        /// Args that are not JSON (where parsing stopped).
        case argsNotJSON(String)
        case argsTooLarge(Int)
        /// PostgreSQL text and jsonb cannot hold U+0000.
        case nulCharacter(field: String)
        /// Nested deeper than ``NewJob/maxArgsDepth``.
        case argsTooDeep
        /// A time outside years 1–9999 (``RFC3339/isSupported(_:)``).
        case timeOutOfRange(field: String)

        public var description: String {
            switch self {
            case .badKind(let kind):
                "kind \(kind.debugDescription.prefix(120)) must match [a-z0-9_.-]{1,100}"
            case .badQueue(let queue):
                "queue \(queue.debugDescription.prefix(80)) must match [a-z0-9_-]{1,64}"
            case .priorityOutOfRange(let priority): "priority \(priority) must be between 0 and 9"
            case .maxAttemptsOutOfRange(let value): "max_attempts \(value) must be between 1 and 1000"
            case .uniqueKeyTooLong(let count): "unique_key has \(count) characters, at most 255 allowed"
            case .limitKeyLength(let count): "limit_key has \(count) characters, 1 to 255 allowed"
            case .badCallbackURL(let why): "callback_url \(why)"
            case .replyToLength(let count): "reply_to has \(count) characters, 1 to 255 allowed"
            case .argsNotAnObject(let type): "args must be a JSON object, got \(type)"
            case .argsNotJSON(let reason): "args are not valid JSON: \(reason)"
            case .argsTooLarge(let bytes): "args is \(bytes) bytes, at most \(NewJob.maxArgsBytes) allowed"
            case .nulCharacter(let field): "\(field) contains a NUL character (U+0000), which PostgreSQL cannot store"
            case .argsTooDeep: "args is nested deeper than \(NewJob.maxArgsDepth) levels"
            case .timeOutOfRange(let field): "\(field) is outside years 0001 to 9999"
            }
        }
    }

    /// Checks every field against the envelope rules, throwing the first violation.
    ///
    /// - Parameter argsKnownToBeObject: skip parsing `args` again when the caller built it from a JSON
    ///   object itself (the envelope decoder does); its size is still checked.
    public func validate(argsKnownToBeObject: Bool = false) throws(ValidationError) {
        guard Self.isValidKind(kind) else { throw .badKind(kind) }
        guard Self.isValidQueue(queue) else { throw .badQueue(queue) }
        guard Self.priorities.contains(priority) else { throw .priorityOutOfRange(priority) }
        if let maxAttempts, !(1...1000).contains(maxAttempts) { throw .maxAttemptsOutOfRange(maxAttempts) }
        // PostgreSQL's char_length counts code points: "a\u{301}" is one Swift Character but two there.
        if let uniqueKey, uniqueKey.unicodeScalars.count > 255 { throw .uniqueKeyTooLong(uniqueKey.unicodeScalars.count) }
        if let uniqueKey, uniqueKey.utf8.contains(0) { throw .nulCharacter(field: "unique_key") }
        if let limitKey, !(1...255).contains(limitKey.unicodeScalars.count) { throw .limitKeyLength(limitKey.unicodeScalars.count) }
        if let limitKey, limitKey.utf8.contains(0) { throw .nulCharacter(field: "limit_key") }
        if let callbackURL {
            guard (1...2048).contains(callbackURL.unicodeScalars.count) else { throw .badCallbackURL("has \(callbackURL.unicodeScalars.count) characters, 1 to 2048 allowed") }
            guard !callbackURL.utf8.contains(0) else { throw .nulCharacter(field: "callback_url") }
            guard let url = URL(string: callbackURL), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
                  url.host?.isEmpty == false
            else { throw .badCallbackURL("must be an http or https URL with a host") }
        }
        if let replyTo, !(1...255).contains(replyTo.unicodeScalars.count) { throw .replyToLength(replyTo.unicodeScalars.count) }
        if let replyTo, replyTo.utf8.contains(0) { throw .nulCharacter(field: "reply_to") }
        if tags.contains(where: { $0.utf8.contains(0) }) { throw .nulCharacter(field: "tags") }
        if let runAt, !RFC3339.isSupported(runAt) { throw .timeOutOfRange(field: "run_at") }
        if let enqueuedAt, !RFC3339.isSupported(enqueuedAt) { throw .timeOutOfRange(field: "enqueued_at") }
        let size = args.utf8.count
        guard size <= Self.maxArgsBytes else { throw .argsTooLarge(size) }
        if argsKnownToBeObject { return }
        let value: JSONValue
        do {
            value = try JSONParser.parse(args)
        } catch {
            throw .argsNotJSON(error.description)
        }
        guard case .object = value else { throw .argsNotAnObject(value.typeName) }
        // On the text PostgreSQL stores, not the parsed value (which merges canonically equivalent keys).
        if let problem = JSONStorageCheck.problem(in: args, maxDepth: Self.maxArgsDepth) { throw problem }
    }

    /// Whether `kind` matches `[a-z0-9_.-]{1,100}`.
    public static func isValidKind(_ kind: String) -> Bool {
        (1...100).contains(kind.utf8.count) && kind.utf8.allSatisfy { isNameByte($0) || $0 == UInt8(ascii: ".") }
    }

    /// Whether `queue` matches `[a-z0-9_-]{1,64}`.
    public static func isValidQueue(_ queue: String) -> Bool {
        (1...64).contains(queue.utf8.count) && queue.utf8.allSatisfy(isNameByte)
    }

    private static func isNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }
}
