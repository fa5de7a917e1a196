import ConveyorCore
import ConveyorPostgres
import ConveyorTestSupport
import Foundation
import Testing

@Suite("The dashboard in a real browser", .serialized, .timeLimit(.minutes(3)))
struct DashboardBrowserTests {
    @Test("headless Chromium renders every page of a running conveyor web and retries a dead job by pressing its button")
    func smoke() async throws {
        try await TestDatabase.withFresh { client, url in
            let store = PostgresJobStore(client: client)
            let id = try await store.insert([NewJob(kind: "conveyor.fail")]).inserted[0]
            let claimed = try #require(try await store.claim(queue: "default", limit: 1, worker: "w", lease: .seconds(30)).first)
            _ = try await store.resolve([(id, claimed.attempt, .dead(FailureRecord(message: "boom", kind: .permanent)))])
            let web = try RunningProcess(["web", "--address", "127.0.0.1:0"], environment: ["DATABASE_URL": url, "CONVEYOR_LOG_LEVEL": "info"])
            await web.waitFor("dashboard listening")
            let port = try #require(web.output.firstMatch(of: /port=(\d+) .*dashboard listening/)?.1)
            let script = TestDatabase.repositoryRoot.appendingPathComponent("Tests/smoke/dashboard_smoke.py").path
            let result = try await ConveyorProcess.tool(
                ["python3", script, "http://127.0.0.1:\(port)", id.uuidString.lowercased()], environment: ConveyorProcess.environment([:]))
            #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
            #expect(result.stdout.components(separatedBy: "\n").filter { $0.hasPrefix("ok ") }.count == 9, "\(result.stdout)")
            #expect(try await store.require(id).state == .available, "the Retry button worked")
            web.signal(SIGTERM)
            #expect(await web.exitStatus() == 0)
        }
    }
}
