import ConveyorSandbox
import Foundation
import Hummingbird
import Logging

// conveyor-sandbox [--host H] [--port P]: HubSpot's CRM and Meta's Conversions API on loopback, for
// tests and ops/dev. Tokens: SANDBOX_HUBSPOT_TOKEN, SANDBOX_META_TOKEN (defaults in Sandbox.Tokens);
// SANDBOX_GRAPH_LATENCY_MS delays every Marketing API call (ops/measure/ad-changes.sh).
var host = "127.0.0.1"
var port = 54390
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--host": host = arguments.popFirst() ?? host
    case "--port":
        guard let value = arguments.popFirst().flatMap(Int.init), (0...65535).contains(value) else {
            FileHandle.standardError.write(Data("conveyor-sandbox: --port must be 0-65535\n".utf8))
            exit(64)
        }
        port = value
    default:
        FileHandle.standardError.write(Data("usage: conveyor-sandbox [--host H] [--port P]\n".utf8))
        exit(64)
    }
}
let environment = ProcessInfo.processInfo.environment
var tokens = Sandbox.Tokens()
if let token = environment["SANDBOX_HUBSPOT_TOKEN"], !token.isEmpty { tokens.hubspot = token }
if let token = environment["SANDBOX_META_TOKEN"], !token.isEmpty { tokens.meta = token }
var logger = Logger(label: "conveyor.sandbox")
logger.logLevel = .info
var latency = Duration.zero
if let text = environment["SANDBOX_GRAPH_LATENCY_MS"], !text.isEmpty {
    guard let ms = Int(text), (0...10_000).contains(ms) else {
        FileHandle.standardError.write(Data("conveyor-sandbox: SANDBOX_GRAPH_LATENCY_MS must be 0-10000, got \(text)\n".utf8))
        exit(64)
    }
    latency = .milliseconds(ms)
}
let sandbox = Sandbox(tokens: tokens, graphLatency: latency)
let listenHost = host
let app = sandbox.application(host: listenHost, port: port, logger: logger) { bound in
    FileHandle.standardOutput.write(Data("conveyor-sandbox listening on http://\(listenHost):\(bound)\n".utf8))
}
try await app.runService()
