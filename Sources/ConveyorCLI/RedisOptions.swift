import ArgumentParser
import ConveyorIngress
import ConveyorRedis
import Foundation

/// `--redis-url` / `REDIS_URL`, for the ingress and Redis enqueueing.
struct RedisOptions: ParsableArguments {
    @Option(name: .customLong("redis-url"), help: "redis://[:password@]host:port[/db] (env: REDIS_URL)")
    var redisURL: String?

    @Option(name: .customLong("redis-namespace"), help: "Hash tag every Redis key starts with (env: CONVEYOR_REDIS_NAMESPACE; default {conveyor}).")
    var namespace: String?

    /// The ingress keys under the configured namespace.
    func keys() throws -> IngressKeys {
        guard let namespace = Settings.string(namespace, env: "CONVEYOR_REDIS_NAMESPACE") else { return IngressKeys() }
        guard namespace.count > 2, namespace.hasPrefix("{"), namespace.hasSuffix("}"),
            !namespace.dropFirst().dropLast().contains(where: { "{}".contains($0) })
        else {
            throw CommandError.configuration(
                setting: self.namespace == nil ? "CONVEYOR_REDIS_NAMESPACE" : "--redis-namespace",
                reason: "\(namespace.debugDescription) must be a Redis hash tag like {conveyor}")
        }
        return IngressKeys(namespace: namespace)
    }

    /// The validated configuration; a one-line error names the setting when it is missing or malformed.
    func configuration(purpose: String) throws -> RedisConfiguration {
        let setting = redisURL == nil ? "REDIS_URL" : "--redis-url"
        guard let text = Settings.string(redisURL, env: "REDIS_URL") else {
            throw CommandError.configuration(setting: "REDIS_URL", reason: "is not set (\(purpose)); expected redis://host:port/db")
        }
        do {
            return try RedisConfiguration(url: text)
        } catch {
            throw CommandError.configuration(setting: setting, reason: error.reason)
        }
    }

    /// Connects and pings, failing with one line (never the password) when Redis does not answer.
    static func check(_ configuration: RedisConfiguration) async throws -> RedisConnection {
        let connection = RedisConnection(configuration: configuration)
        do {
            let reply = try await connection.send("PING")
            if case .error(let message) = reply { throw RedisError.commandFailed(message) }
        } catch {
            await connection.close()
            throw CommandError.unavailable("REDIS_URL: \(error)")
        }
        return connection
    }
}
