import ConveyorCore
import ConveyorPostgres
import Foundation
import NIOHTTP1

/// The read-only JSON API, for services that follow their jobs (a render job's state, its errors)
/// without a PostgreSQL client, and for scripts. Same access as the pages: the bearer token.
///
/// - `GET /api/queues`: an array of queue summaries (as `conveyor queues --json`);
/// - `GET /api/jobs?state=&kind=&queue=&before=&limit=`: an array of jobs, newest first (as
///   `conveyor jobs list --json`); page with `before` = the last job's `seq`; `limit` 1–500 (default 50);
/// - `GET /api/jobs/ID`: one job, or 404 `{"error": …}`.
extension Dashboard {
    func apiQueues() async throws -> HTTPResponse {
        Self.json("[" + (try await store.queueSummaries()).map(\.json).joined(separator: ",") + "]")
    }

    /// `{"kinds": [...], "paused_keys": [...]}`, as `conveyor limits --json` prints them.
    func apiLimits() async throws -> HTTPResponse {
        let limits = try await store.kindLimits(), pauses = try await store.keyPauses(), now = try await store.now()
        let kinds = limits.map(\.json).joined(separator: ","), keys = pauses.map { $0.json(now: now) }.joined(separator: ",")
        return Self.json(#"{"kinds":[\#(kinds)],"paused_keys":[\#(keys)]}"#)
    }

    func apiCircuits() async throws -> HTTPResponse {
        Self.json("[" + (try await store.circuits()).map(\.json).joined(separator: ",") + "]")
    }

    func apiJobs(_ query: [String: String]) async throws -> HTTPResponse {
        var filter = JobFilter(limit: min(max(query["limit"].flatMap(Int.init) ?? configuration.pageSize, 1), 500))
        if let text = query["state"], !text.isEmpty {
            guard let state = JobState(rawValue: text) else {
                return Self.jsonError("state \(text) is not one of \(JobState.allCases.map(\.rawValue).joined(separator: ", "))", status: .badRequest)
            }
            filter.state = state
        }
        filter.kind = query["kind"].flatMap { $0.isEmpty ? nil : $0 }
        filter.queue = query["queue"].flatMap { $0.isEmpty ? nil : $0 }
        filter.beforeSeq = query["before"].flatMap(Int.init)
        return Self.json("[" + (try await store.jobs(filter)).map(\.json).joined(separator: ",") + "]")
    }

    func apiJob(_ text: String) async throws -> HTTPResponse {
        guard let id = UUID(uuidString: text) else { return Self.jsonError("\(text) is not a job id (UUID)", status: .badRequest) }
        guard let job = try await store.job(id: id) else { return Self.jsonError("no job with id \(id.uuidString.lowercased())", status: .notFound) }
        return Self.json(job.json)
    }

    static func json(_ text: String, status: HTTPResponseStatus = .ok) -> HTTPResponse {
        HTTPResponse(
            status: status, headers: ["Content-Type": "application/json", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"], body: Array(text.utf8))
    }

    static func jsonError(_ message: String, status: HTTPResponseStatus) -> HTTPResponse {
        let data = (try? JSONSerialization.data(withJSONObject: ["error": message])) ?? Data("{}".utf8)
        return json(String(decoding: data, as: UTF8.self), status: status)
    }
}
