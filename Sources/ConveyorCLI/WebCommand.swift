import ArgumentParser
import ConveyorPostgres
import ConveyorWeb
import Foundation
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import ConveyorCore

/// `conveyor web`: the dashboard, its admin actions, `/metrics` and `/healthz`, until SIGTERM/SIGINT.
struct WebCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "web",
        abstract: "Serve the dashboard (queues, jobs, dead jobs, quarantined envelopes, admin actions), /metrics and /healthz.")

    @OptionGroup var database: DatabaseOptions

    @Option(help: "HOST[:PORT] to listen on; without a port, $PORT as Procfile platforms set it, else 8080 (env: CONVEYOR_WEB_ADDRESS; default 127.0.0.1).")
    var address: String?

    @Option(help: "Access token every page but /healthz asks for; prefer the variable, flags show in ps (env: CONVEYOR_WEB_TOKEN; required unless listening on loopback).")
    var token: String?

    @Option(help: "HOST:PORT of the public listener for upstreams' deliveries (POST /hooks/hubspot), apart from the admin pages; needs HUBSPOT_CLIENT_SECRET (env: CONVEYOR_HOOKS_ADDRESS; default off).")
    var hooksAddress: String?

    func run() async throws {
        let setting = address == nil ? "CONVEYOR_WEB_ADDRESS" : "--address"
        let (host, port) = try listenAddress(setting: setting)
        let token = Settings.string(token, env: "CONVEYOR_WEB_TOKEN")
        if let token, token.utf8.count < 16 {
            throw CommandError.configuration(
                setting: self.token == nil ? "CONVEYOR_WEB_TOKEN" : "--token", reason: "is \(token.utf8.count) characters; use at least 16 (e.g. openssl rand -hex 24)")
        }
        if token == nil && !["127.0.0.1", "::1", "localhost"].contains(host) {
            throw CommandError.configuration(
                setting: "CONVEYOR_WEB_TOKEN", reason: "is not set: required to listen on \(host), beyond loopback (the dashboard can retry, discard and cancel jobs)")
        }
        let schedules = try ScheduleSettings.schedules()
        let hooksAddress = try Settings.address(hooksAddress, env: "CONVEYOR_HOOKS_ADDRESS", flagName: "--hooks-address")
        let trustedProxies = Set((Settings.string(nil, env: "CONVEYOR_TRUSTED_PROXIES") ?? "").split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces)
        })
        let logger = Logger(label: "conveyor.web")
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(MetricsOptions.factory(registry))
        try await database.withClient(logger: logger) { client in
            let loopback = ["127.0.0.1", "::1", "localhost"].contains(host)
            let dashboard = Dashboard(
                store: PostgresJobStore(client: client),
                configuration: .init(
                    token: token, registry: registry, schedules: schedules, trustedProxies: trustedProxies,
                    secureCookies: !loopback && Settings.string(nil, env: "CONVEYOR_WEB_INSECURE_COOKIES") != "1",
                    panels: ConveyorKinds.panels(store: PostgresJobStore(client: client))),
                logger: logger)
            let server = try await Settings.listen(
                host: host, port: port, setting: setting, logger: logger,
                onRunning: { bound in
                    logger.notice(
                        "dashboard listening",
                        metadata: ["url": "http://\(host):\(bound)/", "port": "\(bound)", "token": "\(token == nil ? "none (loopback)" : "required")"])
                }
            ) { await dashboard.respond(to: $0) }
            var services: [any Service] = [server]
            if let (hooksHost, hooksPort) = hooksAddress {
                let hooks = try ConveyorKinds.hooks(store: PostgresJobStore(client: client))
                let hooksLogger = Logger(label: "conveyor.hooks")
                services.append(
                    HooksServer.application(host: hooksHost, port: hooksPort, hooks: hooks, trustedProxies: trustedProxies, logger: hooksLogger) { bound in
                        hooksLogger.notice(
                            "hooks listening", metadata: ["url": "http://\(hooksHost):\(bound)/", "port": "\(bound)", "hooks": "\(hooks.map(\.path).joined(separator: ","))"])
                    })
            }
            try await ServiceRunner.run(services, logger: logger)
        }
    }

    /// `HOST:PORT`, or `HOST` alone with the port from `PORT` (Heroku-style platforms, foreman) or 8080.
    private func listenAddress(setting: String) throws -> (host: String, port: Int) {
        let text = Settings.string(address, env: "CONVEYOR_WEB_ADDRESS") ?? "127.0.0.1"
        if !text.isEmpty && text.allSatisfy(\.isNumber) {
            throw CommandError.configuration(setting: setting, reason: "'\(text)' is not HOST[:PORT]; for that port on loopback write 127.0.0.1:\(text)")
        }
        let hasPort = text.hasPrefix("[") ? text.contains("]:") : text.filter { $0 == ":" }.count == 1
        if hasPort, let address = try Settings.address(text, env: "CONVEYOR_WEB_ADDRESS", flagName: setting) { return address }
        let host = text.hasPrefix("[") && text.hasSuffix("]") ? String(text.dropFirst().dropLast()) : text
        guard let portText = Settings.string(nil, env: "PORT") else { return (host, 8080) }
        guard let port = Int(portText), (0...65_535).contains(port) else {
            throw CommandError.configuration(setting: "PORT", reason: "'\(portText)' is not a port from 0 to 65535")
        }
        return (host, port)
    }
}
