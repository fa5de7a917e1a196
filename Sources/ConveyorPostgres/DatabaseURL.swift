public import PostgresNIO
import Foundation
import NIOSSL

/// Parses `postgres://user[:password]@host[:port]/database[?sslmode=…]` into a client configuration.
public enum DatabaseURL {
    /// Why a `DATABASE_URL` is not acceptable; the message never contains the password.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        /// What is wrong.
        public var reason: String
        public var description: String { reason }
    }

    /// Parses `text`; the `sslmode` query item accepts `disable` (default), `prefer` and `require`.
    public static func parse(_ text: String) throws(ParseError) -> PostgresClient.Configuration {
        guard let components = URLComponents(string: text), let scheme = components.scheme else {
            throw ParseError(reason: "is not a URL; expected postgres://user:password@host:port/database")
        }
        guard scheme == "postgres" || scheme == "postgresql" else {
            throw ParseError(reason: "has scheme \(scheme.debugDescription); expected postgres://")
        }
        guard let host = components.host, !host.isEmpty else {
            throw ParseError(reason: "has no host; expected postgres://user:password@host:port/database")
        }
        guard let user = components.user, !user.isEmpty else {
            throw ParseError(reason: "has no user name; expected postgres://user:password@host:port/database")
        }
        let port = components.port ?? 5432
        guard (1...65535).contains(port) else { throw ParseError(reason: "has port \(port) out of range") }
        let database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        guard !database.isEmpty else {
            throw ParseError(reason: "names no database; expected postgres://user:password@host:port/database")
        }
        var tls = PostgresClient.Configuration.TLS.disable
        for item in components.queryItems ?? [] where item.name == "sslmode" {
            switch item.value {
            case "disable", nil: tls = .disable
            case "prefer", "allow": tls = .prefer(.makeClientConfiguration())
            case "require", "verify-ca", "verify-full": tls = .require(.makeClientConfiguration())
            case let other?: throw ParseError(reason: "has unsupported sslmode \(other.debugDescription)")
            }
        }
        return PostgresClient.Configuration(
            host: host, port: port, username: user.removingPercentEncoding ?? user,
            password: components.password.map { $0.removingPercentEncoding ?? $0 },
            database: database.removingPercentEncoding ?? database, tls: tls)
    }
}
