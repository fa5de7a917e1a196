import ConveyorCore
import Foundation

/// HTML building blocks: every dynamic value goes through ``escape(_:)`` (or ``attribute(_:)``), so job
/// args, error messages and quarantined payloads cannot inject markup.
enum HTML {
    /// Escapes text for an element's content or a quoted attribute.
    static func escape(_ text: String) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for character in text.unicodeScalars {
            switch character {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&#39;"
            default: result.unicodeScalars.append(character)
            }
        }
        return result
    }

    /// Percent-encodes a query value.
    static func query(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }

    /// `?name=value&…` for the non-nil values, escaped for an `href`.
    static func href(_ path: String, _ parameters: [(String, String?)]) -> String {
        let pairs = parameters.compactMap { name, value in value.map { "\(name)=\(query($0))" } }
        return escape(pairs.isEmpty ? path : path + "?" + pairs.joined(separator: "&"))
    }

    /// A `<progress>` bar for a fraction from 0 to 1.
    static func progressBar(_ fraction: Double) -> String {
        let value = min(max(fraction.isFinite ? fraction : 0, 0), 1)
        return "<progress max=\"1\" value=\"\(String(format: "%.3f", value))\">\(Int((value * 100).rounded())) %</progress>"
    }

    static func time(_ date: Date?) -> String {
        date.map { escape(RFC3339.format($0)) } ?? "–"
    }

    /// A table with a header row; cells are HTML already.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        let head = header.map { "<th>\(escape($0))</th>" }.joined()
        let body = rows.map { "<tr>" + $0.map { "<td>\($0)</td>" }.joined() + "</tr>" }.joined(separator: "\n")
        return "<table><thead><tr>\(head)</tr></thead><tbody>\n\(body)\n</tbody></table>"
    }

    /// A one-button form posting to `action` (the dashboard's admin actions), with optional hidden fields.
    static func button(_ label: String, action: String, fields: [(String, String)] = [], danger: Bool = false) -> String {
        let hidden = fields.map { "<input type=\"hidden\" name=\"\(escape($0.0))\" value=\"\(escape($0.1))\">" }.joined()
        return "<form method=\"post\" action=\"\(escape(action))\" class=\"inline\">\(hidden)<button\(danger ? " class=\"danger\"" : "")>\(escape(label))</button></form>"
    }

    /// The page around `body`.
    static func page(_ title: String, _ body: String, flash: String? = nil) -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(escape(title)) · Conveyor</title>
        <style>
        body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
        header{background:#1d2330;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.2rem;align-items:center}
        header a{color:#cfd6e4;text-decoration:none}header b{color:#fff;margin-right:1rem}
        main{padding:1rem 1.2rem;max-width:1200px}
        table{border-collapse:collapse;width:100%;background:#fff;margin:.6rem 0}
        th,td{border-bottom:1px solid #e3e6eb;padding:.35rem .5rem;text-align:left;vertical-align:top}
        th{background:#eef0f4;font-weight:600}table.fields th{width:12rem}td.num{text-align:right;font-variant-numeric:tabular-nums}
        pre{background:#fff;border:1px solid #e3e6eb;padding:.6rem;overflow:auto;max-height:30rem}
        .inline{display:inline}button{cursor:pointer}button.danger{color:#a40000}
        .flash{background:#e7f5e9;border:1px solid #9ccc9f;padding:.4rem .7rem}
        .state-dead{color:#a40000}.state-running{color:#0b5cad}.state-completed{color:#2d7a32}
        code{font-size:12px;white-space:nowrap}.nowrap{white-space:nowrap}
        </style></head><body>
        <header><b>Conveyor</b><a href="/">Queues</a><a href="/jobs">Jobs</a><a href="/jobs?state=dead">Dead</a><a href="/rejected">Rejected</a><a href="/schedules">Schedules</a><a href="/metrics">Metrics</a><form class="inline" method="post" action="/logout" style="margin-left:auto"><button>Sign out</button></form></header>
        <main><h1>\(escape(title))</h1>
        \(flash.map { "<p class=\"flash\">\(escape($0))</p>" } ?? "")
        \(body)
        </main></body></html>
        """
    }
}
