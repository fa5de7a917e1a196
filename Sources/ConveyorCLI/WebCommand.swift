import ArgumentParser
import ConveyorPostgres
import ConveyorWeb
import Foundation
import Logging
import Metrics
import Prometheus

/// `conveyor web`: the dashboard, its admin actions, `/metrics` and `/healthz`, until SIGTERM/SIGINT.
struct WebCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "web",
        abstract: "Serve the dashboard (queues, jobs, dead jobs, quarantined envelopes, admin actions), /metrics and /healthz.")

    @OptionGroup var database: DatabaseOptions

    @Option(help: "HOST:PORT to listen on (env: CONVEYOR_WEB_ADDRESS; default 127.0.0.1:8080).")
    var address: String?

    @Option(help: "Access token every page but /healthz asks for (env: CONVEYOR_WEB_TOKEN; required unless listening on loopback).")
    var token: String?

    func run() async throws {
        let setting = address == nil ? "CONVEYOR_WEB_ADDRESS" : "--address"
        let (host, port) = try Settings.address(address, env: "CONVEYOR_WEB_ADDRESS", flagName: "--address") ?? ("127.0.0.1", 8080)
        let token = Settings.string(token, env: "CONVEYOR_WEB_TOKEN")
        if let token, token.utf8.count < 16 {
            throw CommandError.configuration(
                setting: self.token == nil ? "CONVEYOR_WEB_TOKEN" : "--token", reason: "is \(token.utf8.count) characters; use at least 16 (e.g. openssl rand -hex 24)")
        }
        if token == nil && !["127.0.0.1", "::1", "localhost"].contains(host) {
            throw CommandError.configuration(
                setting: "CONVEYOR_WEB_TOKEN", reason: "is not set: required to listen on \(host), beyond loopback (the dashboard can retry, discard and cancel jobs)")
        }
        let logger = Logger(label: "conveyor.web")
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(MetricsOptions.factory(registry))
        try await database.withClient(logger: logger) { client in
            let dashboard = Dashboard(
                store: PostgresJobStore(client: client), configuration: .init(token: token, registry: registry), logger: logger)
            let server = try await Settings.listen(host: host, port: port, setting: setting, logger: logger) { await dashboard.respond(to: $0) }
            logger.notice(
                "dashboard listening",
                metadata: ["url": "http://\(server.address)/", "port": "\(server.port.map(String.init) ?? "?")", "token": "\(token == nil ? "none (loopback)" : "required")"])
            try await ServiceRunner.run([server], logger: logger)
        }
    }
}
