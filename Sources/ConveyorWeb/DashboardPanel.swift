public import Foundation

/// A page a kind adds to the dashboard, at `/panels/{slug}`, with actions on its rows (a kind's
/// approvals, its audit trail). The dashboard names no kind: the executable hands it the panels of
/// the kinds it ships. Every cell is plain text, escaped by the dashboard, so a panel cannot inject
/// markup; actions are `POST /panels/{slug}/{action}` with the row's `id`, behind the dashboard's
/// login and same-origin check like every other action, and logged with the client.
public protocol DashboardPanel: Sendable {
    /// `[a-z0-9-]{1,40}`: the page's path segment.
    var slug: String { get }
    /// The page's title and its link on the queues page.
    var title: String { get }
    /// What the page shows now.
    func content() async throws -> DashboardPanelContent
    /// Performs `action` (one a row offered) on the row `id`, `by` naming who (`web (client)`); the
    /// answer is shown on the page.
    func perform(action: String, id: String, by: String) async throws -> String
}

/// A panel's page: sections of tables.
public struct DashboardPanelContent: Sendable {
    public struct Action: Sendable {
        public var label: String
        public var action: String
        public var danger: Bool

        public init(label: String, action: String, danger: Bool = false) {
            self.label = label
            self.action = action
            self.danger = danger
        }
    }

    public struct Row: Sendable {
        /// Passed back to ``DashboardPanel/perform(action:id:by:)``.
        public var id: String
        public var cells: [String]
        public var actions: [Action]
        /// A job the row is about: its first cell links to the job's page.
        public var job: UUID?

        public init(id: String, cells: [String], actions: [Action] = [], job: UUID? = nil) {
            self.id = id
            self.cells = cells
            self.actions = actions
            self.job = job
        }
    }

    public struct Section: Sendable {
        public var title: String
        public var header: [String]
        public var rows: [Row]
        /// Shown instead of an empty table.
        public var empty: String

        public init(title: String, header: [String], rows: [Row], empty: String) {
            self.title = title
            self.header = header
            self.rows = rows
            self.empty = empty
        }
    }

    public var sections: [Section]

    public init(sections: [Section]) {
        self.sections = sections
    }
}

extension Dashboard {
    func panel(_ slug: String) -> (any DashboardPanel)? {
        configuration.panels.first { $0.slug == slug }
    }

    func panelPage(_ slug: String, flash: String?) async throws -> HTTPResponse {
        guard let panel = panel(slug) else { return .html(HTML.page("Not found", "<p>No page \(HTML.escape(slug)).</p>"), status: .notFound) }
        let content = try await panel.content()
        var body = ""
        for section in content.sections {
            body += "<h2>\(HTML.escape(section.title))</h2>\n"
            if section.rows.isEmpty {
                body += "<p>\(HTML.escape(section.empty))</p>\n"
                continue
            }
            let hasActions = section.rows.contains { !$0.actions.isEmpty }
            let rows = section.rows.map { row -> [String] in
                var cells = row.cells.enumerated().map { index, cell -> String in
                    if index == 0, let job = row.job { return "<a href=\"/jobs/\(job.uuidString.lowercased())\"><code>\(HTML.escape(cell))</code></a>" }
                    return HTML.escape(cell)
                }
                if hasActions {
                    cells.append(
                        row.actions.map { HTML.button($0.label, action: "/panels/\(slug)/\($0.action)", fields: [("id", row.id)], danger: $0.danger) }
                            .joined(separator: " "))
                }
                return cells
            }
            body += HTML.table(section.header + (hasActions ? [""] : []), rows) + "\n"
        }
        return .html(HTML.page(panel.title, body, flash: flash))
    }

    func panelAction(_ slug: String, _ action: String, form: [String: String], client: String) async throws -> HTTPResponse {
        guard let panel = panel(slug), let id = form["id"], !id.isEmpty else { return .text("unknown page or no id\n", status: .notFound) }
        let message = try await panel.perform(action: action, id: id, by: "web (\(client))")
        logger.notice("dashboard action", metadata: ["panel": "\(slug)", "action": "\(action)", "id": "\(id)", "outcome": "\(message)", "client": "\(client)"])
        return .redirect("/panels/\(slug)?done=\(HTML.query(message))")
    }
}
