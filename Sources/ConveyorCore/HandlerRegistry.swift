public import Foundation

/// The handlers a worker knows, by kind, with their payload decoding erased.
public struct HandlerRegistry: Sendable {
    /// One registered kind.
    public struct Entry: Sendable {
        /// The kind's timeout and retry policy.
        public var options: JobKindOptions
        /// Decodes the args and runs the handler; decoding failures throw ``ArgumentsError``.
        public var run: @Sendable (_ args: String, _ context: JobContext) async throws -> JobOutcome
        /// For a ``ChunkHandler``: its sizes, and the call that runs a chunk of jobs (id, attempt, args)
        /// whose args decoded; each job that did not decode is in the second list with why.
        public var chunk: ChunkOptions? = nil
        public var runChunk: (@Sendable (_ jobs: [(id: UUID, attempt: Int, args: String)], _ context: ChunkContext) async throws
            -> (results: [UUID: ChunkResult], undecodable: [UUID: String]))? = nil
    }

    /// A chunk handler's `.failed` for a job run alone.
    struct ChunkJobFailure: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
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

    /// Registers a chunk handler for its kind: the worker gathers its jobs into chunks. Run alone (as a
    /// chunk of one) wherever a single job is run.
    public mutating func register<H: ChunkHandler>(chunk handler: H) {
        let runChunk: @Sendable ([(id: UUID, attempt: Int, args: String)], ChunkContext) async throws
            -> (results: [UUID: ChunkResult], undecodable: [UUID: String]) = { jobs, context in
            var items: [ChunkItem<H.Args>] = [], undecodable: [UUID: String] = [:]
            for job in jobs {
                do {
                    items.append(ChunkItem(id: job.id, attempt: job.attempt, args: try JSONDecoder().decode(H.Args.self, from: Data(job.args.utf8))))
                } catch {
                    undecodable[job.id] = String(describing: error)
                }
            }
            guard !items.isEmpty else { return ([:], undecodable) }
            return (try await handler.run(items, context: context), undecodable)
        }
        var entry = Entry(options: handler.options) { args, context in
            let (results, undecodable) = try await runChunk(
                [(id: context.id, attempt: context.attempt, args: args)],
                ChunkContext(kind: context.kind, queue: context.queue, logger: context.logger, enqueuer: context.enqueuer))
            if let message = undecodable[context.id] { throw ArgumentsError(message: message) }
            switch results[context.id] ?? .failed("no outcome: the chunk handler returned none for this job") {
            case .outcome(let outcome): return outcome
            case .failed(let message, let retryAfter?): throw JobFailure.retryAfter(retryAfter, message)
            case .failed(let message, nil): throw ChunkJobFailure(message: message)
            case .permanent(let message): throw JobFailure.permanent(message)
            case .throttled(let key, let until, let message): throw JobFailure.throttled(key: key, until: until, message)
            }
        }
        entry.chunk = handler.chunk
        entry.runChunk = runChunk
        entries[H.kind] = entry
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
