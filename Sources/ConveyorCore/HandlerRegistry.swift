import Foundation

/// The handlers a worker knows, by kind, with their payload decoding erased.
public struct HandlerRegistry: Sendable {
    /// One registered kind.
    public struct Entry: Sendable {
        /// The kind's timeout and retry policy.
        public var options: JobKindOptions
        /// Decodes the args and runs the handler; decoding failures throw ``ArgumentsError``.
        public var run: @Sendable (_ args: String, _ context: JobContext) async throws -> JobOutcome
    }

    /// The args of a job did not decode into its handler's payload type.
    public struct ArgumentsError: Error, Sendable, CustomStringConvertible {
        /// The decoding error, described.
        public var message: String
        public var description: String { "args do not decode: \(message)" }
    }

    private var entries: [String: Entry] = [:]

    /// Creates an empty registry.
    public init() {}

    /// Registers `handler` for its kind, replacing any earlier one.
    public mutating func register<H: JobHandler>(_ handler: H) {
        let options = handler.options
        entries[H.kind] = Entry(options: options) { args, context in
            let payload: H.Args
            do {
                payload = try JSONDecoder().decode(H.Args.self, from: Data(args.utf8))
            } catch {
                throw ArgumentsError(message: String(describing: error))
            }
            return try await handler.run(payload, context: context)
        }
    }

    /// The entry for `kind`, if one is registered.
    public subscript(kind: String) -> Entry? { entries[kind] }

    /// The registered kinds, sorted.
    public var kinds: [String] { entries.keys.sorted() }

    /// The cluster-wide limits the registered kinds declare (``JobKindOptions/concurrencyLimit`` and
    /// ``JobKindOptions/rateLimit``), for the kinds that declare one.
    public var limits: [String: KindLimit] {
        entries.compactMapValues { entry in
            let limit = KindLimit(concurrency: entry.options.concurrencyLimit, rate: entry.options.rateLimit)
            return limit.isEmpty ? nil : limit
        }
    }

    /// The default max attempts for `kind`: its policy's, or ``RetryPolicy/defaultMaxAttempts``.
    public func defaultMaxAttempts(for kind: String) -> Int {
        entries[kind]?.options.retry.maxAttempts ?? RetryPolicy.defaultMaxAttempts
    }
}
