import Foundation

/// Where and how to reach Redis: parsed from `REDIS_URL` (`redis://[[user]:password@]host[:port][/db]`).
///
/// `description` never shows the password.
public struct RedisConfiguration: Sendable, CustomStringConvertible {
    /// The host name or address.
    public var host: String
    /// The port. Default 6379.
    public var port: Int
    /// The ACL user name, if any (`AUTH user password`).
    public var username: String?
    /// The password, if any.
    public var password: String?
    /// The database number. Default 0.
    public var database: Int
    /// How long connecting may take. Default 5 s.
    public var connectTimeout: Duration
    /// How long a non-blocking command may wait for its reply. Default 5 s.
    public var readTimeout: Duration

    /// `host:port/db`, safe to log.
    public var description: String { "\(host):\(port)/\(database)" }

    /// Why a `REDIS_URL` is not acceptable; never contains the password.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        /// What is wrong.
        public var reason: String
        public var description: String { reason }
    }

    /// Creates a configuration.
    public init(
        host: String = "127.0.0.1", port: Int = 6379, username: String? = nil, password: String? = nil, database: Int = 0,
        connectTimeout: Duration = .seconds(5), readTimeout: Duration = .seconds(5)
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.readTimeout = readTimeout
    }

    /// Parses a `redis://` URL.
    public init(url text: String) throws(ParseError) {
        let expected = "expected redis://[:password@]host:port[/db]"
        guard let components = URLComponents(string: text), let scheme = components.scheme else {
            throw ParseError(reason: "is not a URL; \(expected)")
        }
        guard scheme == "redis" else { throw ParseError(reason: "has scheme \(scheme.debugDescription); \(expected)") }
        guard let host = components.host, !host.isEmpty else { throw ParseError(reason: "has no host; \(expected)") }
        let port = components.port ?? 6379
        guard (1...65535).contains(port) else { throw ParseError(reason: "has port \(port) out of range") }
        var database = 0
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        if !path.isEmpty {
            guard let number = Int(path), (0...15_999).contains(number) else {
                throw ParseError(reason: "has database \(path.debugDescription); expected a number like /0")
            }
            database = number
        }
        let user = components.user.flatMap { $0.isEmpty ? nil : ($0.removingPercentEncoding ?? $0) }
        let password = components.password.map { $0.removingPercentEncoding ?? $0 }
        self.init(host: host, port: port, username: user, password: password, database: database)
    }
}
