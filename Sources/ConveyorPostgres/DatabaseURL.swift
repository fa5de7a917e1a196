import Foundation
import NIOSSL
public import PostgresNIO

/// A parsed `postgres://user[:password]@host[:port]/database[?sslmode=…]`.
///
/// Its `description` never shows the password.
public struct DatabaseURL: Sendable, CustomStringConvertible {
    /// TLS use, from the `sslmode` query item.
    public enum TLSMode: String, Sendable {
        case disable, prefer, require
    }

    /// Why a `DATABASE_URL` is not acceptable; the message never contains the password.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        /// What is wrong.
        public var reason: String
        public var description: String { reason }
    }

    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var tls: TLSMode

    /// `host:port/database`, safe to log.
    public var description: String { "\(host):\(port)/\(database)" }

    /// Parses `text`; `sslmode` accepts `disable` (default), `prefer`/`allow` and `require`/`verify-*`.
    public init(_ text: String) throws(ParseError) {
        let expected = "expected postgres://user:password@host:port/database"
        guard let components = URLComponents(string: text), let scheme = components.scheme else {
            throw ParseError(reason: "is not a URL; \(expected)")
        }
        guard scheme == "postgres" || scheme == "postgresql" else {
            throw ParseError(reason: "has scheme \(scheme.debugDescription); expected postgres://")
        }
        guard let host = components.host, !host.isEmpty else { throw ParseError(reason: "has no host; \(expected)") }
        guard let user = components.user, !user.isEmpty else { throw ParseError(reason: "has no user name; \(expected)") }
        let port = components.port ?? 5432
        guard (1...65535).contains(port) else { throw ParseError(reason: "has port \(port) out of range") }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        guard !path.isEmpty else { throw ParseError(reason: "names no database; \(expected)") }
        var tls = TLSMode.disable
        for item in components.queryItems ?? [] where item.name == "sslmode" {
            switch item.value {
            case "disable", nil: tls = .disable
            case "prefer", "allow": tls = .prefer
            case "require", "verify-ca", "verify-full": tls = .require
            case let other?: throw ParseError(reason: "has unsupported sslmode \(other.debugDescription)")
            }
        }
        self.host = host
        self.port = port
        self.username = user.removingPercentEncoding ?? user
        self.password = components.password.map { $0.removingPercentEncoding ?? $0 }
        self.database = path.removingPercentEncoding ?? path
        self.tls = tls
    }

    /// The pool configuration.
    public var clientConfiguration: PostgresClient.Configuration {
        let tls: PostgresClient.Configuration.TLS =
            switch self.tls {
            case .disable: .disable
            case .prefer: .prefer(.makeClientConfiguration())
            case .require: .require(.makeClientConfiguration())
            }
        return PostgresClient.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: tls)
    }

    /// A single connection's configuration (start-up checks), or a clear error when TLS cannot be set up.
    public func connectionConfiguration() throws -> PostgresConnection.Configuration {
        let tls: PostgresConnection.Configuration.TLS =
            switch self.tls {
            case .disable: .disable
            case .prefer: .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
            case .require: .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            }
        var configuration = PostgresConnection.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: tls)
        configuration.options.connectTimeout = .seconds(5)
        return configuration
    }

    /// Parses `text` into a pool configuration (shorthand for tests and tools).
    public static func parse(_ text: String) throws(ParseError) -> PostgresClient.Configuration {
        try DatabaseURL(text).clientConfiguration
    }
}
