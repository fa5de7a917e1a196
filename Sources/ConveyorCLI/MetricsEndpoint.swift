import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle

/// A small HTTP/1.1 server for Prometheus and health checks, as a `Service`:
///
/// - `GET /metrics`: every instrument of the process in the Prometheus text format (0.0.4);
/// - `GET /healthz`: `200 ok` while the process runs (a liveness probe: a process that cannot reach
///   PostgreSQL keeps retrying and says so in its log and in `conveyor_store_errors_total`).
///
/// It runs until the process's graceful shutdown reaches it; started first, it stops last, so a
/// worker draining its jobs is still scraped.
struct MetricsEndpoint: Service {
    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    let server: NIOAsyncChannel<Connection, Never>
    let registry: PrometheusCollectorRegistry
    let logger: Logger

    /// Listens on `host:port` (port 0: any free one; see ``port``).
    static func bind(host: String, port: Int, registry: PrometheusCollectorRegistry, logger: Logger) async throws -> MetricsEndpoint {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    return try Connection(wrappingChannelSynchronously: channel)
                }
            }
        return MetricsEndpoint(server: server, registry: registry, logger: logger)
    }

    /// The port it listens on.
    var port: Int? { server.channel.localAddress?.port }

    func run() async throws {
        logger.info(
            "metrics endpoint listening",
            metadata: ["host": "\(server.channel.localAddress?.ipAddress ?? "?")", "port": "\(port.map(String.init) ?? "?")"])
        do {
            try await cancelWhenGracefulShutdown {
                try await server.executeThenClose { connections in
                    await withDiscardingTaskGroup { group in
                        do {
                            for try await connection in connections {
                                group.addTask { await serve(connection) }
                            }
                        } catch {
                            if !Task.isCancelled { logger.warning("metrics endpoint stopped accepting", metadata: ["error": "\(error)"]) }
                        }
                        group.cancelAll()
                    }
                }
            }
        } catch is CancellationError {
            // The graceful shutdown reached the endpoint: stopping is its job.
        }
    }

    private func serve(_ connection: Connection) async {
        do {
            try await connection.executeThenClose { requests, responses in
                var head: HTTPRequestHead?
                for try await part in requests {
                    switch part {
                    case .head(let request):
                        head = request
                    case .body:
                        break
                    case .end:
                        guard let request = head else { continue }
                        head = nil
                        let (status, type, body) = respond(to: request)
                        var headers = HTTPHeaders([("Content-Type", type), ("Content-Length", "\(body.count)")])
                        if !request.isKeepAlive { headers.add(name: "Connection", value: "close") }
                        try await responses.write(.head(HTTPResponseHead(version: request.version, status: status, headers: headers)))
                        if request.method != .HEAD { try await responses.write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
                        try await responses.write(.end(nil))
                        if !request.isKeepAlive { return }
                    }
                }
            }
        } catch {
            if !Task.isCancelled { logger.debug("metrics connection ended", metadata: ["error": "\(error)"]) }
        }
    }

    private func respond(to request: HTTPRequestHead) -> (HTTPResponseStatus, String, [UInt8]) {
        guard request.method == .GET || request.method == .HEAD else {
            return (.methodNotAllowed, "text/plain; charset=utf-8", Array("only GET\n".utf8))
        }
        switch request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri {
        case "/metrics":
            return (.ok, "text/plain; version=0.0.4; charset=utf-8", registry.emitToBuffer())
        case "/healthz":
            return (.ok, "text/plain; charset=utf-8", Array("ok\n".utf8))
        default:
            return (.notFound, "text/plain; charset=utf-8", Array("not found: try /metrics or /healthz\n".utf8))
        }
    }
}
