import ConveyorRedis
import Foundation

/// The throwaway Redis that `ops/test` starts; tests fail loudly without it.
public enum TestRedis {
    /// The test server's URL.
    public static func url() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["CONVEYOR_TEST_REDIS_URL"], !url.isEmpty else {
            throw TestDatabase.NotConfigured(variable: "CONVEYOR_TEST_REDIS_URL")
        }
        return url
    }

    /// The test server's configuration.
    public static func configuration() throws -> RedisConfiguration {
        try RedisConfiguration(url: url())
    }

    /// A key namespace of its own for one test (`{conveyor-test-xxxxxxxx}`), so parallel tests never share keys.
    public static func namespace() -> String {
        "{conveyor-test-\(UUID().uuidString.prefix(8).lowercased())}"
    }
}
