import ConveyorCallbacks
import ConveyorCore
import ConveyorPostgres
import ConveyorRedis
import ConveyorTestSupport
import ConveyorWeb
import ConveyorWorker
import Crypto
import Foundation
import NIOHTTP1
import Synchronization
import Testing

/// The video agent wants to hear when its render is done, without polling.
@Suite("Outcome callbacks across processes", .serialized, .timeLimit(.minutes(3)))
struct CallbackProcessTests {
    static let secret = "cb-secret-7f3a9c1e55d2"

    /// A receiver that fails its first `failures` requests per path with 500 and records every one.
    final class Receiver: Sendable {
        struct Request: Sendable {
            var path: String
            var signature: String?
            var body: [UInt8]
        }
        let failures: Int
        let requests = Mutex<[Request]>([])
        init(failures: Int) { self.failures = failures }

        func respond(_ request: HTTPRequest) -> HTTPResponse {
            let count = requests.withLock { requests in
                requests.append(Request(path: request.path, signature: request.headers.first(name: "X-Conveyor-Signature"), body: request.body))
                return requests.filter { $0.path == request.path }.count
            }
            if request.path == "/moved" {
                return HTTPResponse(status: .found, headers: ["Location": "http://169.254.169.254/latest/meta-data"])
            }
            return count <= failures ? .text("receiver is down", status: .internalServerError) : .text("ok")
        }
    }

    /// Checks `header` (`t=…,v1=…`) against `body` the way a receiver would.
    static func verifies(_ header: String?, body: [UInt8]) -> Bool {
        guard let header else { return false }
        let parts = Dictionary(uniqueKeysWithValues: header.split(separator: ",").compactMap { part -> (String, String)? in
            let pair = part.split(separator: "=", maxSplits: 1)
            return pair.count == 2 ? (String(pair[0]), String(pair[1])) : nil
        })
        guard let t = parts["t"], let v1 = parts["v1"] else { return false }
        let code = HMAC<SHA256>.authenticationCode(for: Array("\(t).".utf8) + body, using: SymmetricKey(data: Array(secret.utf8)))
        return code.map { String(format: "%02x", $0) }.joined() == v1
    }

    @Test("a job's outcome is POSTed once to its callback_url, signed, through a receiver that fails twice; disallowed hosts and redirects are refused; reply_to gets a dead job's outcome")
    func delivered() async throws {
        try await TestDatabase.withFresh { client, url in
            let store = PostgresJobStore(client: client)
            let receiver = Receiver(failures: 2)
            let ports = Recorded<Int>()
            let server = WebServer.application(host: "127.0.0.1", port: 0, logger: TestDatabase.logger, onRunning: { ports.append([$0]) }) {
                receiver.respond($0)
            }
            try await withRunningServices([server], logger: TestDatabase.logger) { _ in
                let port = try await ports.wait(for: "the receiver listening") { !$0.isEmpty }[0]
                let list = TestRedis.namespace() + ":replies"
                let worker = try RunningProcess(
                    ["worker", "--no-ingest", "--grace-period", "5"],
                    environment: [
                        "DATABASE_URL": url, "REDIS_URL": try TestRedis.url(), "CONVEYOR_LOG_LEVEL": "debug", "CONVEYOR_POLL_INTERVAL": "0.1",
                        "CONVEYOR_CALLBACK_SECRET": Self.secret, "CONVEYOR_CALLBACK_HOSTS": "127.0.0.1:\(port), hooks.example.com",
                    ])
                await worker.waitFor("worker started")
                let done = try await store.insert([NewJob(kind: "conveyor.noop", args: #"{"render": 7}"#, callbackURL: "http://127.0.0.1:\(port)/hook")]).inserted[0]
                let metadata = try await store.insert([NewJob(kind: "conveyor.noop", callbackURL: "http://169.254.169.254/latest/meta-data")]).inserted[0]
                let moved = try await store.insert([NewJob(kind: "conveyor.noop", callbackURL: "http://127.0.0.1:\(port)/moved")]).inserted[0]
                let failed = try await store.insert([NewJob(kind: "conveyor.fail", args: #"{"permanent": true}"#, replyTo: list)]).inserted[0]

                @Sendable func callback(of id: UUID) async throws -> JobRecord? {
                    try await store.jobs(JobFilter(kind: CallbackJob.kind, limit: 100)).first { $0.tags.contains("callback:\(id.uuidString.lowercased())") }
                }
                try await eventually("every callback job finished", timeout: .seconds(60)) {
                    for id in [done, metadata, moved, failed] {
                        guard let job = try await callback(of: id), job.state == .completed || job.state == .dead else { return false }
                    }
                    return true
                }

                // Delivered once, on the third try, signed over the exact body.
                let delivery = try #require(try await callback(of: done))
                #expect(delivery.state == .completed && delivery.attempt == 3, "\(delivery.state) at \(delivery.attempt): \(delivery.errors.map(\.message))")
                #expect(delivery.errors.count == 2 && delivery.errors.allSatisfy { $0.message.contains("answered 500") })
                let hooks = receiver.requests.withLock { $0.filter { $0.path == "/hook" } }
                #expect(hooks.count == 3, "two failures, then one delivery")
                let last = try #require(hooks.last)
                #expect(Self.verifies(last.signature, body: last.body), "the signature verifies with the shared secret")
                #expect(!Self.verifies(last.signature, body: last.body + [0x20]), "and not over other bytes")
                let outcome = try JSONSerialization.jsonObject(with: Data(last.body)) as? [String: Any]
                #expect(outcome?["id"] as? String == done.uuidString.lowercased() && outcome?["state"] as? String == "completed")
                #expect(outcome?["kind"] as? String == "conveyor.noop")

                // No request to a host that is not allowed, and no redirect followed.
                let refused = try #require(try await callback(of: metadata))
                #expect(refused.state == .dead && refused.errors.last?.message.contains("not in CONVEYOR_CALLBACK_HOSTS") == true)
                let redirected = try #require(try await callback(of: moved))
                #expect(redirected.state == .dead && redirected.errors.last?.message.contains("redirects are not followed") == true)
                #expect(receiver.requests.withLock { $0.filter { $0.path == "/moved" }.count } == 1)

                // reply_to: the dead job's outcome, with its error, pushed signed.
                let redis = RedisConnection(configuration: try TestRedis.configuration())
                guard case .bulk(let pushed) = try await redis.send("RPOP", list) else {
                    Issue.record("nothing was pushed to reply_to")
                    return
                }
                let message = try #require(try JSONSerialization.jsonObject(with: pushed) as? [String: String])
                let body = Array((message["body"] ?? "").utf8)
                #expect(Self.verifies(message["signature"], body: body))
                let reply = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]
                #expect(reply?["state"] as? String == "dead" && (reply?["error"] as? String)?.isEmpty == false, "\(String(describing: reply))")
                #expect(reply?["id"] as? String == failed.uuidString.lowercased())

                worker.signal(SIGTERM)
                #expect(await worker.exitStatus() == 0)
                // The secret signs; it is never printed or stored.
                #expect(!worker.output.contains(Self.secret))
                for job in try await store.jobs(JobFilter(limit: 100)) {
                    #expect(!job.args.contains(Self.secret) && !job.errors.contains { $0.message.contains(Self.secret) })
                }
            }
        }
    }

    @Test("a CONVEYOR_CALLBACK_HOSTS entry that is not host[:port] stops the worker with one line naming it")
    func badHosts() async throws {
        let result = try await ConveyorProcess.run(
            ["worker", "--no-ingest"],
            environment: ["DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "CONVEYOR_CALLBACK_HOSTS": "https://hooks.example.com/path"])
        #expect(result.status == 78 && result.stderr.contains("CONVEYOR_CALLBACK_HOSTS"), "\(result.stderr)")
    }
}
