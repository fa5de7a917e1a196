import Foundation
import Metrics

/// The ingester's swift-metrics instruments. Labels:
///
/// - `conveyor_ingest_envelopes_total{result}`: envelopes taken from Redis, by `ingested`,
///   `duplicate_id` (id already ingested), `duplicate_unique_key` (an unfinished job holds the unique
///   key) and `rejected` (quarantined).
/// - `conveyor_ingest_rejected_total{reason}`: quarantined envelopes by reason code (`database` for
///   values PostgreSQL refused after validation).
/// - `conveyor_ingress_backlog`: envelopes left on the ingress list after the last move.
/// - `conveyor_ingest_batch_size`, `conveyor_ingest_batch_seconds`: envelopes per committed batch,
///   and the time from validation to commit.
/// - `conveyor_ingest_lag_seconds`: from an envelope's `enqueued_at` (the producer's clock) to the
///   commit of its batch (this process's clock; clock skew between hosts shows here, negatives count as 0).
/// - `conveyor_ingest_errors_total`: failed rounds (Redis or PostgreSQL unreachable), retried.
struct IngestMetrics: Sendable {
    /// Where the instruments are made: the process's `MetricsSystem` unless a test injects its own.
    let factory: any MetricsFactory

    func backlog(_ length: Int) {
        Gauge(label: "conveyor_ingress_backlog", factory: factory).record(length)
    }

    func rejected(reason: String) {
        Counter(label: "conveyor_ingest_rejected_total", dimensions: [("reason", reason)], factory: factory).increment()
    }

    func committed(
        envelopes: Int, inserted: Int, duplicateIDs: Int, duplicateUniqueKeys: Int, rejected: Int, duration: Duration, lags: [TimeInterval]
    ) {
        let lag = Timer(label: "conveyor_ingest_lag_seconds", factory: factory)
        for seconds in lags { lag.record(duration: .seconds(max(0, seconds))) }
        let results = [("ingested", inserted), ("duplicate_id", duplicateIDs), ("duplicate_unique_key", duplicateUniqueKeys), ("rejected", rejected)]
        for (result, count) in results where count > 0 {
            Counter(label: "conveyor_ingest_envelopes_total", dimensions: [("result", result)], factory: factory).increment(by: count)
        }
        Recorder(label: "conveyor_ingest_batch_size", factory: factory).record(envelopes)
        Timer(label: "conveyor_ingest_batch_seconds", factory: factory).record(duration: duration)
    }

    func error() {
        Counter(label: "conveyor_ingest_errors_total", factory: factory).increment()
    }
}
