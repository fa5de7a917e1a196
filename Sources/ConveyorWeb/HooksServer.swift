public import ConveyorCore
import Foundation
public import Hummingbird
import HTTPTypes
import HummingbirdCore
public import Logging
import NIOCore

/// The public listener of `conveyor web` for upstreams' deliveries (`POST /hooks/hubspot`), apart from
/// the admin pages, on Hummingbird. It serves only the hooks it is given, a `GET /healthz`, and 404
/// otherwise.
///
/// - A body over the hook's limit is answered 413 from `Content-Length`, before it is read.
/// - The URL a hook sees is the one the sender called: `X-Forwarded-Proto`/`X-Forwarded-Host` are used
///   only when the peer is one of `trustedProxies`; otherwise `http://` and the `Host` header.
/// - As ``WebServer``: the request head must arrive within 10 s, at most 256 connections at once; idle
///   connections close after 30 s.
public enum HooksServer {
    /// The application; `onRunning` hears the bound port.
    public static func application(
        host: String, port: Int, hooks: [any WebHook], trustedProxies: Set<String> = [], logger: Logger,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = Router(context: HookRequestContext.self)
        router.get("/healthz") { _, _ in Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "ok\n"))) }
        for hook in hooks {
            router.post(RouterPath(hook.path)) { request, context in
                await serve(request, context: context, hook: hook, trustedProxies: trustedProxies)
            }
        }
        return Application(
            router: router,
            server: .http1(configuration: .init(additionalChannelHandlers: [HeadDeadlineHandler(deadline: .seconds(10))], idleTimeout: .seconds(30))),
            configuration: .init(
                address: .hostname(host, port: port), serverName: "conveyor-hooks",
                availableConnectionsDelegate: MaximumAvailableConnections(256, logger: logger)),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) }, logger: logger)
    }

    static func serve(_ request: Request, context: HookRequestContext, hook: any WebHook, trustedProxies: Set<String>) async -> Response {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > hook.maxBodyBytes {
            return text(HTTPTypes.HTTPResponse.Status.contentTooLarge, "body over \(hook.maxBodyBytes) bytes\n")
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: hook.maxBodyBytes)
        } catch {
            return text(HTTPTypes.HTTPResponse.Status.contentTooLarge, "body over \(hook.maxBodyBytes) bytes\n")
        }
        let peer = context.remoteAddress?.ipAddress ?? "?"
        let proxied = trustedProxies.contains(peer)
        let scheme = (proxied ? request.headers[HTTPField.Name("X-Forwarded-Proto")!] : nil) ?? "http"
        let authority = (proxied ? request.headers[HTTPField.Name("X-Forwarded-Host")!] : nil) ?? request.head.authority ?? "localhost"
        let url = "\(scheme)://\(authority)\(request.uri.string)"
        let client = proxied ? (request.headers[HTTPField.Name("X-Forwarded-For")!].map { "\($0) via \(peer)" } ?? peer) : peer
        let delivery = WebHookRequest(
            method: request.method.rawValue, publicURL: url, headers: request.headers.map { ($0.name.canonicalName, $0.value) },
            body: Array(buffer: body), client: client)
        let answer = await hook.receive(delivery)
        return text(HTTPTypes.HTTPResponse.Status(code: answer.status), answer.body)
    }

    static func text(_ status: HTTPTypes.HTTPResponse.Status, _ body: String) -> Response {
        var headers: HTTPFields = [.contentType: "text/plain; charset=utf-8"]
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

/// A request context that knows the peer's address.
public struct HookRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    public var maxUploadSize: Int { 1 << 20 }

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}
