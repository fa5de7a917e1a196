public import Hummingbird
import HummingbirdCore
import HTTPTypes
public import Logging
public import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOPosix

/// The HTTP server of `conveyor web` and of the processes' `--metrics-address`, on Hummingbird 2: every
/// request goes to one handler (the dashboard, or the metrics endpoint) as an ``HTTPRequest``.
///
/// Hardened for public traffic:
/// - the request head must arrive within ``Limits/headDeadline`` of the connection opening or of the
///   previous answer (a client that trickles a header line every 20 s is cut off, idle or not);
/// - at most ``Limits/maxConnections`` connections at once; more wait in the kernel's backlog, so a
///   crowd of slow clients cannot starve `/healthz`;
/// - a body over ``Limits/maxBodyBytes`` is answered 413 from its `Content-Length`, unread.
public enum WebServer {
    public struct Limits: Sendable {
        /// Time for a request head to arrive. Default 10 s.
        public var headDeadline: Duration
        /// An open connection with no request in progress closes after this. Default 60 s.
        public var idleTimeout: Duration
        /// Connections served at once. Default 256.
        public var maxConnections: Int
        /// The largest request body read. Default 64 KiB (forms only).
        public var maxBodyBytes: Int

        public init(headDeadline: Duration = .seconds(10), idleTimeout: Duration = .seconds(60), maxConnections: Int = 256, maxBodyBytes: Int = 64 << 10) {
            self.headDeadline = headDeadline
            self.idleTimeout = idleTimeout
            self.maxConnections = max(1, maxConnections)
            self.maxBodyBytes = maxBodyBytes
        }
    }

    /// An application serving `handler` on `host:port` (0: any free port); `onRunning` hears the bound port.
    public static func application(
        host: String, port: Int, limits: Limits = Limits(), logger: Logger,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in },
        handler: @escaping @Sendable (HTTPRequest) async -> HTTPResponse
    ) -> some ApplicationProtocol {
        let deadline = TimeAmount.nanoseconds(Int64(limits.headDeadline.seconds * 1e9))
        return Application(
            responder: Responder(handler: handler, maxBodyBytes: limits.maxBodyBytes),
            server: .http1(
                configuration: .init(
                    additionalChannelHandlers: [HeadDeadlineHandler(deadline: deadline)],
                    idleTimeout: .nanoseconds(Int64(limits.idleTimeout.seconds * 1e9)))),
            configuration: .init(
                address: .hostname(host, port: port), serverName: "conveyor",
                availableConnectionsDelegate: MaximumAvailableConnections(limits.maxConnections, logger: logger)),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) }, logger: logger)
    }

    /// Binds `host:port` and closes it again: a taken or foreign address fails here, at start, with the
    /// error, rather than inside the running service.
    public static func checkBind(host: String, port: Int) async throws {
        guard port != 0 else { return }
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port).get()
        try await channel.close()
    }

    struct Responder: HTTPResponder {
        typealias Context = WebRequestContext
        let handler: @Sendable (HTTPRequest) async -> HTTPResponse
        let maxBodyBytes: Int

        func respond(to request: Request, context: WebRequestContext) async throws -> Response {
            var headers = HTTPHeaders()
            for field in request.headers { headers.add(name: field.name.rawName, value: field.value) }
            if let length = request.headers[.contentLength].flatMap(Int.init), length > maxBodyBytes {
                return Self.convert(.text("request body over \(maxBodyBytes) bytes\n", status: .payloadTooLarge), closing: true)
            }
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: maxBodyBytes)
            } catch {
                return Self.convert(.text("request body over \(maxBodyBytes) bytes\n", status: .payloadTooLarge), closing: true)
            }
            var converted = HTTPRequest(method: NIOHTTP1.HTTPMethod(rawValue: request.method.rawValue), uri: request.uri.string, headers: headers, body: Array(buffer: body))
            converted.client = context.remoteAddress?.ipAddress ?? ""
            if converted.headers.first(name: "Host") == nil, let authority = request.head.authority {
                converted.headers.add(name: "Host", value: authority)
            }
            let answer = await handler(converted)
            var response = Self.convert(answer, closing: false)
            if request.method == .head { response.body = .init() }
            return response
        }

        static func convert(_ response: HTTPResponse, closing: Bool) -> Response {
            var fields = HTTPFields()
            for (name, value) in response.headers {
                if let field = HTTPField.Name(name) { fields.append(HTTPField(name: field, value: value)) }
            }
            if closing { fields[.connection] = "close" }
            return Response(
                status: .init(code: Int(response.status.code), reasonPhrase: response.status.reasonPhrase), headers: fields,
                body: .init(byteBuffer: ByteBuffer(bytes: response.body)))
        }
    }
}

/// Knows the peer's address (for logs, the login rate limit and trusted proxies).
public struct WebRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    public var maxUploadSize: Int { 1 << 20 }

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}

/// Closes a connection whose next request head has not fully arrived within `deadline` of the
/// connection opening or of the previous answer's end. Hummingbird's idle timeout counts from the
/// last byte read, so a client trickling header lines would hold a connection forever without this.
/// Runs on the channel's event loop, like every channel handler.
final class HeadDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let deadline: TimeAmount
    private var timer: Scheduled<Void>?

    init(deadline: TimeAmount) {
        self.deadline = deadline
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) {
            timer?.cancel()
            timer = nil
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { arm(context) }
        context.write(data, promise: promise)
    }

    private func arm(_ context: ChannelHandlerContext) {
        timer?.cancel()
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: deadline) { bound.value.close(promise: nil) }
    }
}
