public import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
public import ServiceLifecycle

/// A small HTTP/1.1 server on SwiftNIO, as a `Service`: each connection is served in a child task of
/// the server's task group, each request by `handler`. It runs until the graceful shutdown reaches it.
public struct HTTPServer: Service {
    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    /// The largest request body read; a larger one is answered `413`. 64 KiB (forms only).
    public static let maxBodyBytes = 64 * 1024

    let server: NIOAsyncChannel<Connection, Never>
    let handler: @Sendable (HTTPRequest) async -> HTTPResponse
    let logger: Logger

    /// Listens on `host:port` (port 0: any free one; see ``port``); throws when it cannot bind. A
    /// connection that sends nothing for `idleTimeout` (default 60 s) is closed, so clients cannot hold
    /// connections open forever.
    public static func bind(
        host: String, port: Int, idleTimeout: Duration = .seconds(60), logger: Logger,
        handler: @escaping @Sendable (HTTPRequest) async -> HTTPResponse
    ) async throws -> HTTPServer {
        let idle = TimeAmount.nanoseconds(idleTimeout.components.seconds * 1_000_000_000 + idleTimeout.components.attoseconds / 1_000_000_000)
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(IdleStateHandler(readTimeout: idle), CloseOnIdle())
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    return try Connection(wrappingChannelSynchronously: channel)
                }
            }
        return HTTPServer(server: server, handler: handler, logger: logger)
    }

    /// The port it listens on.
    public var port: Int? { server.channel.localAddress?.port }

    /// The address it listens on, e.g. `127.0.0.1:8080`.
    public var address: String {
        "\(server.channel.localAddress?.ipAddress ?? "?"):\(port.map(String.init) ?? "?")"
    }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                try await server.executeThenClose { connections in
                    await withDiscardingTaskGroup { group in
                        do {
                            for try await connection in connections {
                                group.addTask { await serve(connection) }
                            }
                        } catch {
                            if !Task.isCancelled { logger.warning("HTTP server stopped accepting", metadata: ["error": "\(error)"]) }
                        }
                        group.cancelAll()
                    }
                }
            }
        } catch is CancellationError {
            // The graceful shutdown reached the server: stopping is its job.
        }
    }

    private func serve(_ connection: Connection) async {
        do {
            try await connection.executeThenClose { parts, responses in
                var head: HTTPRequestHead?
                var body: [UInt8] = []
                var tooLarge = false
                for try await part in parts {
                    switch part {
                    case .head(let request):
                        (head, body, tooLarge) = (request, [], false)
                    case .body(var buffer):
                        if body.count + buffer.readableBytes > Self.maxBodyBytes {
                            tooLarge = true
                        } else if let bytes = buffer.readBytes(length: buffer.readableBytes) {
                            body += bytes
                        }
                    case .end:
                        guard let request = head else { continue }
                        head = nil
                        let response =
                            tooLarge
                            ? HTTPResponse.text("request body over \(Self.maxBodyBytes) bytes\n", status: .payloadTooLarge)
                            : await handler(HTTPRequest(method: request.method, uri: request.uri, headers: request.headers, body: body))
                        var headers = response.headers
                        headers.replaceOrAdd(name: "Content-Length", value: "\(response.body.count)")
                        let keepAlive = request.isKeepAlive && !tooLarge
                        if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
                        try await responses.write(.head(HTTPResponseHead(version: request.version, status: response.status, headers: headers)))
                        if request.method != .HEAD && !response.body.isEmpty {
                            try await responses.write(.body(.byteBuffer(ByteBuffer(bytes: response.body))))
                        }
                        try await responses.write(.end(nil))
                        if !keepAlive { return }
                    }
                }
            }
        } catch {
            if !Task.isCancelled { logger.debug("HTTP connection ended", metadata: ["error": "\(error)"]) }
        }
    }
}

/// Closes a connection when `IdleStateHandler` reports it idle.
private final class CloseOnIdle: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
