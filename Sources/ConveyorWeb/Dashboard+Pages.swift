import ConveyorCore
import ConveyorPostgres
import Foundation

extension Dashboard {
    /// What an action did, shown once on the page it redirects to (a fixed text per code, so a link
    /// cannot make the dashboard say anything else).
    static let outcomes: [String: String] = [
        "retried": "Retried: the job is available again, with one more attempt.",
        "discarded": "Discarded: the job is cancelled.",
        "cancelled": "Cancelled.",
        "stopping": "Cancellation requested: the worker running it stops it within a second.",
        "nothing": "Nothing changed: the job is not in a state that allows this.",
        "paused": "Paused: no worker claims from this queue until it is resumed.",
        "resumed": "Resumed.",
    ]

    func queuesPage(flash: String?) async throws -> HTTPResponse {
        let queues = try await store.queueSummaries()
        let rows = queues.map { summary -> [String] in
            let queue = summary.queue
            let counts = JobState.allCases.map { state -> String in
                let count = summary.counts[state] ?? 0
                return count == 0 ? "0" : "<a href=\"\(HTML.href("/jobs", [("queue", queue), ("state", state.rawValue)]))\">\(count)</a>"
            }
            let oldest = summary.oldestWaitSeconds.map { Duration.seconds($0).readable } ?? "–"
            let pause = summary.pause.map { pause in
                "paused by \(HTML.escape(pause.pausedBy)) " + HTML.button("Resume", action: "/queues/\(HTML.query(queue))/resume")
            } ?? HTML.button("Pause", action: "/queues/\(HTML.query(queue))/pause")
            return ["<a href=\"\(HTML.href("/jobs", [("queue", queue)]))\">\(HTML.escape(queue))</a>"] + counts + [HTML.escape(oldest), pause]
        }
        var body = queues.isEmpty ? "<p>No jobs yet.</p>" : HTML.table(["Queue"] + JobState.allCases.map(\.rawValue) + ["Oldest wait", ""], rows)
        let limits = try await store.kindLimits()
        if !limits.isEmpty {
            let limitRows = limits.map { limit in
                [
                    "<a href=\"\(HTML.href("/jobs", [("kind", limit.kind), ("state", JobState.running.rawValue)]))\">\(HTML.escape(limit.kind))</a>",
                    limit.concurrency.map { "\(limit.running) of \($0)" } ?? "\(limit.running)", HTML.escape(limit.rateText),
                    HTML.escape(limit.declaredBy), HTML.escape(RFC3339.format(limit.declaredAt)),
                ]
            }
            body += "<h2>Kind limits (cluster-wide)</h2>" + HTML.table(["Kind", "Running", "Rate", "Declared by", "At"], limitRows)
        }
        let pauses = try await store.keyPauses()
        if !pauses.isEmpty {
            let now = try await store.now()
            let pauseRows = pauses.map { pause in
                [
                    HTML.escape(pause.key), HTML.escape(Duration.seconds(max(0, pause.until.timeIntervalSince(now))).readable),
                    String(pause.waiting), HTML.escape(pause.pausedBy), HTML.escape(pause.reason),
                ]
            }
            body += "<h2>Paused limit keys</h2>" + HTML.table(["Key", "Left", "Waiting", "By", "Reason"], pauseRows)
        }
        let circuits = try await store.circuits()
        if !circuits.isEmpty {
            let circuitRows = circuits.map { circuit in
                [
                    HTML.escape(circuit.upstream), "<span class=\"\(circuit.state == "closed" ? "state-completed" : "state-dead")\">\(HTML.escape(circuit.state))</span>",
                    HTML.escape(circuit.worker), HTML.escape(RFC3339.format(circuit.since)), circuit.openUntil.map { HTML.escape(RFC3339.format($0)) } ?? "–",
                ]
            }
            body += "<h2>Circuit breakers (per worker, open ones first)</h2>" + HTML.table(["Upstream", "State", "Worker", "Since", "Open until"], circuitRows)
        }
        if !configuration.panels.isEmpty {
            body += "<h2>Kinds' pages</h2><p>" + configuration.panels.map { "<a href=\"/panels/\(HTML.escape($0.slug))\">\(HTML.escape($0.title))</a>" }.joined(separator: " · ") + "</p>"
        }
        return .html(HTML.page("Queues", body, flash: flash.flatMap { Self.outcomes[$0] }))
    }

    func jobsPage(_ query: [String: String]) async throws -> HTTPResponse {
        let state = query["state"].flatMap { $0.isEmpty ? nil : JobState(rawValue: $0) }
        let kind = query["kind"].flatMap { $0.isEmpty ? nil : $0 }, queue = query["queue"].flatMap { $0.isEmpty ? nil : $0 }
        let before = query["before"].flatMap(Int.init)
        let jobs = try await store.jobs(JobFilter(state: state, kind: kind, queue: queue, beforeSeq: before, limit: configuration.pageSize))
        let options = ([""] + JobState.allCases.map(\.rawValue)).map { value in
            "<option value=\"\(value)\"\(value == (state?.rawValue ?? "") ? " selected" : "")>\(value.isEmpty ? "any state" : value)</option>"
        }.joined()
        var body = """
            <form method="get" action="/jobs"><select name="state">\(options)</select>
            <input name="kind" placeholder="kind" value="\(HTML.escape(kind ?? ""))">
            <input name="queue" placeholder="queue" value="\(HTML.escape(queue ?? ""))"> <button>Filter</button></form>
            """
        if state == .dead {
            let label = kind.map { "Retry every dead \($0) job" } ?? "Retry every dead job"
            body += "<p>" + HTML.button(label, action: "/dead/retry", fields: kind.map { [("kind", $0)] } ?? []) + "</p>"
        }
        let rows = jobs.map { job -> [String] in
            [
                "<a href=\"/jobs/\(job.id.uuidString.lowercased())\"><code>\(job.id.uuidString.lowercased())</code></a>",
                "<span class=\"state-\(job.state.rawValue)\">\(job.state.rawValue)</span>", HTML.escape(job.kind), HTML.escape(job.queue),
                "\(job.attempt)/\(job.maxAttempts)", HTML.time(job.runAt),
                job.progress.map { job.state == .running ? "\(HTML.progressBar($0.fraction)) \(Int(($0.fraction * 100).rounded())) %" : "\(Int(($0.fraction * 100).rounded())) %" } ?? "",
                HTML.escape(job.errors.last.map { String($0.message.prefix(160)) } ?? ""),
            ]
        }
        body += jobs.isEmpty ? "<p>No jobs match.</p>" : HTML.table(["Id", "State", "Kind", "Queue", "Attempt", "Run at", "Progress", "Last error"], rows)
        if jobs.count == configuration.pageSize, let last = jobs.last {
            body += "<p><a href=\"\(HTML.href("/jobs", [("state", state?.rawValue), ("kind", kind), ("queue", queue), ("before", "\(last.seq)")]))\">Older →</a></p>"
        }
        return .html(HTML.page("Jobs", body))
    }

    func jobPage(_ text: String, flash: String?) async throws -> HTTPResponse {
        guard let id = UUID(uuidString: text), let job = try await store.job(id: id) else {
            return .html(HTML.page("Not found", "<p>No job with id \(HTML.escape(text)).</p>"), status: .notFound)
        }
        let path = "/jobs/\(id.uuidString.lowercased())"
        let fields: [(String, String)] = [
            ("State", "<span class=\"state-\(job.state.rawValue)\">\(job.state.rawValue)</span>"), ("Kind", HTML.escape(job.kind)),
            ("Queue", HTML.escape(job.queue)), ("Priority", "\(job.priority)"), ("Attempt", "\(job.attempt) of \(job.maxAttempts)"),
            ("Run at", HTML.time(job.runAt)), ("Inserted", HTML.time(job.insertedAt)), ("Enqueued (producer)", HTML.time(job.enqueuedAt)),
            ("Last attempt", HTML.time(job.attemptedAt)), ("Finished", HTML.time(job.finishedAt)),
            ("Worker", HTML.escape(job.lockedBy ?? "–")), ("Lease until", HTML.time(job.leaseExpiresAt)),
            ("Unique key", HTML.escape(job.uniqueKey ?? "–")), ("Limit key", HTML.escape(job.limitKey ?? "–")),
            ("Callback", HTML.escape(job.callbackURL ?? job.replyTo.map { "Redis list \($0)" } ?? "–")), ("Tags", HTML.escape(job.tags.joined(separator: ", "))),
            ("Progress", job.progress.map { "\(HTML.progressBar($0.fraction)) \(Int(($0.fraction * 100).rounded())) % \(HTML.escape($0.note)) (\(HTML.time(job.progressAt)))" } ?? "–"),
            ("Cancelled", job.cancelReason.map { "\(HTML.escape($0)) (by \(HTML.escape(job.cancelledBy ?? "?")))" } ?? "–"),
        ]
        var actions: [String] = []
        if job.state == .dead { actions.append(HTML.button("Retry", action: "\(path)/retry")) }
        if job.state == .available || job.state == .dead { actions.append(HTML.button("Discard", action: "\(path)/discard", danger: true)) }
        if job.state == .available || job.state == .running { actions.append(HTML.button("Cancel", action: "\(path)/cancel", danger: true)) }
        let errors = job.errors.map { error in
            ["\(error.attempt)", HTML.time(error.at), HTML.escape(error.kind.rawValue), "<pre>\(HTML.escape(error.message))</pre>"]
        }
        let body = """
            <table class="fields">\(fields.map { "<tr><th>\($0.0)</th><td>\($0.1)</td></tr>" }.joined())</table>
            <p>\(actions.joined(separator: " "))</p>
            <h2>Args</h2><pre>\(HTML.escape(Self.pretty(job.args)))</pre>
            \(job.result.map { "<h2>Result</h2><pre>\(HTML.escape(Self.pretty($0)))</pre>" } ?? "")
            <h2>Errors</h2>\(errors.isEmpty ? "<p>None.</p>" : HTML.table(["Attempt", "At", "Failure", "Message"], errors))
            """
        return .html(HTML.page("Job \(id.uuidString.lowercased())", body, flash: flash.flatMap { Self.outcomes[$0] }))
    }

    func jobAction(_ text: String, _ action: String, form: [String: String]) async throws -> HTTPResponse {
        guard let id = UUID(uuidString: text) else { return .text("not a job id\n", status: .badRequest) }
        let reason = form["reason"].flatMap { $0.isEmpty ? nil : $0 } ?? "\(action) from the dashboard"
        let outcome: String
        switch action {
        case "retry":
            outcome = try await store.retry(.ids([id])).isEmpty ? "nothing" : "retried"
        case "discard":
            outcome = try await store.discard(.ids([id]), reason: reason, by: "web").isEmpty ? "nothing" : "discarded"
        case "cancel":
            let result = try await store.cancel(.ids([id]), reason: reason, by: "web")
            outcome = !result.cancelled.isEmpty ? "cancelled" : !result.requested.isEmpty ? "stopping" : "nothing"
        default:
            return .text("unknown action\n", status: .notFound)
        }
        logger.notice("dashboard action", metadata: ["action": "\(action)", "job_id": "\(id)", "outcome": "\(outcome)"])
        return .redirect("/jobs/\(id.uuidString.lowercased())?done=\(outcome)")
    }

    func retryDead(kind: String?) async throws -> HTTPResponse {
        let retried = try await store.retry(kind.flatMap { $0.isEmpty ? nil : $0 }.map { .kind($0) } ?? .all)
        logger.notice("dashboard action", metadata: ["action": "retry dead", "kind": "\(kind ?? "all")", "jobs": "\(retried.count)"])
        return .redirect(kind.map { "/jobs?state=dead&kind=\(HTML.query($0))" } ?? "/jobs?state=dead")
    }

    func queueAction(_ queue: String, _ action: String) async throws -> HTTPResponse {
        guard NewJob.isValidQueue(queue) else { return .text("not a queue name\n", status: .badRequest) }
        switch action {
        case "pause": _ = try await store.pause(queue: queue, by: "web")
        case "resume": _ = try await store.resume(queue: queue)
        default: return .text("unknown action\n", status: .notFound)
        }
        logger.notice("dashboard action", metadata: ["action": "\(action)", "queue": "\(queue)"])
        return .redirect("/?done=\(action == "pause" ? "paused" : "resumed")")
    }

    func rejectedPage(_ query: [String: String]) async throws -> HTTPResponse {
        let envelopes = try await store.rejectedEnvelopes(beforeSeq: query["before"].flatMap(Int.init), limit: configuration.pageSize)
        let rows = envelopes.map { envelope -> [String] in
            [
                "<a href=\"/rejected/\(envelope.id.uuidString.lowercased())\"><code>\(envelope.id.uuidString.lowercased())</code></a>",
                HTML.time(envelope.receivedAt), "\(envelope.size)", HTML.escape(envelope.reason),
            ]
        }
        var body = envelopes.isEmpty ? "<p>No quarantined envelopes.</p>" : HTML.table(["Id", "Received", "Bytes", "Reason"], rows)
        if envelopes.count == configuration.pageSize, let last = envelopes.last {
            body += "<p><a href=\"/rejected?before=\(last.seq)\">Older →</a></p>"
        }
        return .html(HTML.page("Quarantined envelopes", body))
    }

    func rejectedEnvelopePage(_ text: String) async throws -> HTTPResponse {
        guard let id = UUID(uuidString: text), let envelope = try await store.rejectedEnvelope(id: id) else {
            return .html(HTML.page("Not found", "<p>No quarantined envelope with id \(HTML.escape(text)).</p>"), status: .notFound)
        }
        let payload = String(validating: envelope.payload, as: UTF8.self) ?? envelope.payload.map { String(format: "%02x", $0) }.joined(separator: " ")
        let body = """
            <table><tr><th>Reason</th><td>\(HTML.escape(envelope.reason))</td></tr>
            <tr><th>Received</th><td>\(HTML.time(envelope.receivedAt))</td></tr><tr><th>From</th><td>\(HTML.escape(envelope.source))</td></tr>
            <tr><th>Bytes</th><td>\(envelope.size)\(envelope.isTruncated ? " (the first \(envelope.payload.count) are kept)" : "")</td></tr>
            \(envelope.sha256.map { "<tr><th>SHA-256</th><td><code>\($0)</code></td></tr>" } ?? "")</table>
            <h2>Payload</h2><pre>\(HTML.escape(payload))</pre>
            """
        return .html(HTML.page("Quarantined envelope", body))
    }

    func schedulesPage() async throws -> HTTPResponse {
        let states = try await store.scheduleStates()
        let now = store.now
        let rows = configuration.schedules.map { schedule -> [String] in
            let next = schedule.enabled ? schedule.cron.next(3, after: now, in: schedule.timeZone).map { RFC3339.format($0, in: schedule.timeZone) } : []
            return [
                HTML.escape(schedule.name), "<code>\(HTML.escape(schedule.cron.text))</code>", HTML.escape(schedule.zoneName),
                "<a href=\"\(HTML.href("/jobs", [("kind", schedule.kind)]))\">\(HTML.escape(schedule.kind))</a>", HTML.escape(schedule.queue),
                schedule.enabled ? "yes" : "off",
                states[schedule.name].map { "<span class=\"nowrap\">\(HTML.escape(RFC3339.format($0, in: schedule.timeZone)))</span>" } ?? "–",
                next.map { "<span class=\"nowrap\">\(HTML.escape($0))</span>" }.joined(separator: "<br>"),
            ]
        }
        var leaders: [[String]] = []
        for role in ["maintenance", "scheduler"] {
            leaders.append([role, try await store.leader(role).map(HTML.escape) ?? "<span class=\"state-dead\">none: is a process of that role running?</span>"])
        }
        let body = """
            \(configuration.schedules.isEmpty ? "<p>No schedules.</p>" : HTML.table(["Name", "Cron", "Zone", "Kind", "Queue", "Enabled", "Last slot", "Next"], rows))
            <h2>Leaders</h2>\(HTML.table(["Role", "Held by"], leaders))
            <p>Maintenance (rescue, pruning) runs on one worker or scheduler; only the scheduler leader emits.</p>
            """
        return .html(HTML.page("Schedules", body))
    }

    /// Args indented for reading (as stored when they do not parse).
    static func pretty(_ args: String) -> String {
        guard let data = args.data(using: .utf8), let object = try? JSONSerialization.jsonObject(with: data),
            let text = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        else { return args }
        return String(decoding: text, as: UTF8.self)
    }
}
