import ArgumentParser
import Logging
import Metrics
import ConveyorWeb
import Prometheus
import ServiceLifecycle

/// `--metrics-address`: where a worker or scheduler process serves `/metrics` and `/healthz`.
struct MetricsOptions: ParsableArguments {
    @Option(
        name: .customLong("metrics-address"),
        help: "Serve Prometheus /metrics and /healthz on HOST:PORT, e.g. 127.0.0.1:9464 or 0.0.0.0:9464 (env: CONVEYOR_METRICS_ADDRESS; default off).")
    var metricsAddress: String?

    /// The host and port to serve on, or nil when the endpoint is off; validated before anything connects.
    func address() throws -> (host: String, port: Int)? {
        try Settings.address(metricsAddress, env: "CONVEYOR_METRICS_ADDRESS", flagName: "--metrics-address")
    }

    /// Binds the endpoint (a port in use is a one-line error naming the setting) and makes it the
    /// process's metrics backend; nil when off. It serves `GET /metrics` (the Prometheus text format)
    /// and `GET /healthz` (`ok` while the process runs: a liveness probe).
    func endpoint(logger: Logger) async throws -> (any Service)? {
        guard let (host, port) = try address() else { return nil }
        let registry = PrometheusCollectorRegistry()
        let server = try await Settings.listen(
            host: host, port: port, setting: metricsAddress == nil ? "CONVEYOR_METRICS_ADDRESS" : "--metrics-address", logger: logger,
            onRunning: { bound in logger.info("metrics endpoint listening", metadata: ["host": "\(host)", "port": "\(bound)"]) }
        ) { request in
            switch (request.method, request.path) {
            case (.GET, "/metrics"):
                HTTPResponse(status: .ok, headers: ["Content-Type": "text/plain; version=0.0.4; charset=utf-8"], body: registry.emitToBuffer())
            case (.GET, "/healthz"): .text("ok\n")
            case (.GET, _): .text("not found: try /metrics or /healthz\n", status: .notFound)
            default: .text("only GET\n", status: .methodNotAllowed)
            }
        }
        MetricsSystem.bootstrap(Self.factory(registry))
        return server
    }

    /// Prometheus histograms with buckets that fit what Conveyor records: batch sizes of 1 to thousands,
    /// database round trips of a millisecond or so, waits from milliseconds (idle) to an hour (backlog).
    static func factory(_ registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        let sizes: [Double] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000]
        for label in ["conveyor_claim_batch_size", "conveyor_completion_flush_size", "conveyor_ingest_batch_size", "conveyor_heartbeat_jobs"] {
            factory.valueHistogramBuckets[label] = sizes
        }
        factory.valueHistogramBuckets["conveyor_job_result_bytes"] = [64, 256, 1024, 4096, 16384, 65536, 262_144]
        let roundTrips: [Duration] = [1, 2, 5, 10, 25, 50, 100, 250, 1000, 5000].map { .milliseconds($0) }
        for label in ["conveyor_completion_flush_seconds", "conveyor_ingest_batch_seconds"] {
            factory.durationHistogramBuckets[label] = roundTrips
        }
        let waits: [Duration] = [0.001, 0.005, 0.025, 0.1, 0.5, 1, 5, 30, 60, 300, 900, 3600].map { .seconds($0) }
        for label in ["conveyor_job_wait_seconds", "conveyor_ingest_lag_seconds"] {
            factory.durationHistogramBuckets[label] = waits
        }
        return factory
    }
}
