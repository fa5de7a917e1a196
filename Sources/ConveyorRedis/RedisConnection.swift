import CHiredis
public import Foundation

/// One Redis connection through hiredis, confined to a thread of its own.
///
/// Every hiredis call blocks, so the actor runs on a ``ThreadExecutor``: callers `await` it from the
/// cooperative pool and the blocking happens on the connection's thread. Connects on first use and again
/// after a failure (the failed command throws ``RedisError/connectionLost(_:)``; callers retry with
/// backoff). A blocking command (`BLMOVE`) needs a connection of its own.
public actor RedisConnection {
    private let executor: ThreadExecutor
    /// Runs the actor on the connection's own thread.
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    /// Where it connects.
    public nonisolated let configuration: RedisConfiguration
    private var context: UnsafeMutablePointer<redisContext>?
    private var closed = false

    /// Creates a connection (it connects on first use); `name` names its thread.
    public init(configuration: RedisConfiguration, name: String = "conveyor-redis") {
        self.configuration = configuration
        self.executor = ThreadExecutor(name: name)
    }

    isolated deinit {
        if let context { redisFree(context) }
        executor.shutdown()
    }

    /// Connects now if not connected (commands do it on their own; this surfaces errors early).
    public func connect() throws {
        _ = try connected()
    }

    /// Runs one command; an error reply is returned as ``RedisReply/error(_:)``, not thrown.
    @discardableResult
    public func send(_ arguments: [Data]) throws -> RedisReply {
        let context = try connected()
        let reply = Self.withArgv(arguments) { argc, argv, lengths in
            redisCommandArgv(context, argc, argv, lengths)
        }
        guard let reply else { throw lost(context) }
        defer { freeReplyObject(reply) }
        return Self.convert(reply.assumingMemoryBound(to: redisReply.self))
    }

    /// Runs one command given as strings.
    @discardableResult
    public func send(_ arguments: String...) throws -> RedisReply {
        try send(arguments.map { Data($0.utf8) })
    }

    /// Runs a blocking command (`BLMOVE … timeout`): the read timeout is stretched past `timeout` for it.
    public func sendBlocking(_ arguments: [Data], timeout: Duration) throws -> RedisReply {
        let context = try connected()
        redisSetTimeout(context, Self.timeval(timeout + configuration.readTimeout))
        defer { if self.context != nil { redisSetTimeout(context, Self.timeval(configuration.readTimeout)) } }
        return try send(arguments)
    }

    /// Sends all commands in one write and reads all replies (pipelining).
    public func pipeline(_ commands: [[Data]]) throws -> [RedisReply] {
        guard !commands.isEmpty else { return [] }
        let context = try connected()
        for command in commands {
            let status = Self.withArgv(command) { argc, argv, lengths in
                redisAppendCommandArgv(context, argc, argv, lengths)
            }
            guard status == REDIS_OK else { throw lost(context) }
        }
        var replies: [RedisReply] = []
        replies.reserveCapacity(commands.count)
        for _ in commands {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(context, &raw) == REDIS_OK, let raw else { throw lost(context) }
            replies.append(Self.convert(raw.assumingMemoryBound(to: redisReply.self)))
            freeReplyObject(raw)
        }
        return replies
    }

    /// Closes the connection; later commands throw ``RedisError/closed``.
    public func close() {
        closed = true
        if let context { redisFree(context) }
        context = nil
    }

    // MARK: - Connection management

    private func connected() throws -> UnsafeMutablePointer<redisContext> {
        guard !closed else { throw RedisError.closed }
        if let context { return context }
        guard let fresh = redisConnectWithTimeout(configuration.host, Int32(configuration.port), Self.timeval(configuration.connectTimeout)) else {
            throw RedisError.connectFailed("\(configuration): out of memory")
        }
        if fresh.pointee.err != 0 {
            let reason = Self.errorString(fresh)
            redisFree(fresh)
            throw RedisError.connectFailed("\(configuration): \(reason)")
        }
        redisSetTimeout(fresh, Self.timeval(configuration.readTimeout))
        context = fresh
        do {
            if let password = configuration.password {
                let auth = [configuration.username, password].compactMap { $0 }
                if case .error(let message) = try send(["AUTH"] .map { Data($0.utf8) } + auth.map { Data($0.utf8) }) {
                    throw RedisError.setupFailed("AUTH: \(message)")
                }
            }
            if configuration.database != 0, case .error(let message) = try send("SELECT", String(configuration.database)) {
                throw RedisError.setupFailed("SELECT \(configuration.database): \(message)")
            }
        } catch {
            if let context { redisFree(context) }
            context = nil
            throw error
        }
        return fresh
    }

    /// Drops a broken context and describes what broke.
    private func lost(_ broken: UnsafeMutablePointer<redisContext>) -> RedisError {
        let reason = broken.pointee.err != 0 ? Self.errorString(broken) : "no reply"
        redisFree(broken)
        context = nil
        return .connectionLost("\(configuration): \(reason)")
    }

    // MARK: - hiredis plumbing

    private static func errorString(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    private static func timeval(_ duration: Duration) -> Glibc.timeval {
        let (seconds, attoseconds) = duration.components
        return Glibc.timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }

    /// Calls `body` with hiredis' argv/argvlen arrays over one contiguous copy of the arguments.
    private static func withArgv<R>(
        _ arguments: [Data],
        _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafeMutablePointer<Int>) -> R
    ) -> R {
        var buffer = Data()
        var offsets: [Int] = []
        var lengths: [Int] = []
        for argument in arguments {
            offsets.append(buffer.count)
            lengths.append(argument.count)
            buffer.append(argument)
        }
        buffer.append(0)  // never empty, so the base address exists even for empty arguments
        return buffer.withUnsafeBytes { raw in
            let base = raw.baseAddress!.assumingMemoryBound(to: CChar.self)
            var pointers: [UnsafePointer<CChar>?] = offsets.map { UnsafePointer(base + $0) }
            return pointers.withUnsafeMutableBufferPointer { argv in
                lengths.withUnsafeMutableBufferPointer { argvlen in
                    body(Int32(arguments.count), argv.baseAddress!, argvlen.baseAddress!)
                }
            }
        }
    }

    private static func convert(_ reply: UnsafeMutablePointer<redisReply>) -> RedisReply {
        let value = reply.pointee
        switch value.type {
        case REDIS_REPLY_STRING:
            return .bulk(value.str.map { Data(bytes: $0, count: value.len) } ?? Data())
        case REDIS_REPLY_STATUS:
            return .status(value.str.map { String(decoding: Data(bytes: $0, count: value.len), as: UTF8.self) } ?? "")
        case REDIS_REPLY_ERROR:
            return .error(value.str.map { String(decoding: Data(bytes: $0, count: value.len), as: UTF8.self) } ?? "")
        case REDIS_REPLY_INTEGER:
            return .integer(Int(value.integer))
        case REDIS_REPLY_ARRAY:
            return .array((0..<value.elements).compactMap { index in value.element[index].map(convert) })
        default:
            return .null
        }
    }
}
