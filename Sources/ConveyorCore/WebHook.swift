/// A receiver of an upstream's HTTP deliveries (HubSpot's webhooks), served by `conveyor web` on its
/// hooks address. The kind that owns the hook implements it; the server knows only this protocol.
public protocol WebHook: Sendable {
    /// The path it answers `POST`s on, e.g. `/hooks/hubspot`.
    var path: String { get }
    /// The largest body accepted; a larger one is answered 413 from its `Content-Length`, unread.
    var maxBodyBytes: Int { get }
    /// Answers one delivery.
    func receive(_ request: WebHookRequest) async -> WebHookResponse
}

/// One delivery, as the server read it.
public struct WebHookRequest: Sendable {
    public var method: String
    /// The URL the sender called: scheme, host, path and query as the sender saw them (rebuilt from
    /// `X-Forwarded-Proto`/`X-Forwarded-Host` only when the peer is a trusted proxy).
    public var publicURL: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// The peer's address, for logs.
    public var client: String

    public init(method: String, publicURL: String, headers: [(name: String, value: String)], body: [UInt8], client: String) {
        self.method = method
        self.publicURL = publicURL
        self.headers = headers
        self.body = body
        self.client = client
    }

    /// The first value of header `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

/// What a hook answers.
public struct WebHookResponse: Sendable, Equatable {
    public var status: Int
    public var body: String

    public init(status: Int, body: String = "") {
        self.status = status
        self.body = body
    }
}
