import ConveyorTestSupport
import Foundation
import Testing

@Suite("The Procfile runner (ops/procfile)")
struct ProcfileRunnerTests {
    static var runner: String { TestDatabase.repositoryRoot.appendingPathComponent("ops/procfile").path }

    static func folder(_ procfile: String, env: String? = nil) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("procfile-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try procfile.write(to: folder.appendingPathComponent("Procfile"), atomically: true, encoding: .utf8)
        if let env { try env.write(to: folder.appendingPathComponent(".env"), atomically: true, encoding: .utf8) }
        return folder
    }

    @Test("its exit status follows a crashed role, and the other roles are stopped")
    func crashedRole() async throws {
        // The test process blocks SIGTERM (swift-service-lifecycle's signal handling) and children inherit
        // the mask, so here the long role outlives the runner's SIGTERM and its kill timeout ends it.
        let folder = try Self.folder("release: true\nlong: sleep 60\ncrash: sh -c 'sleep 0.5; exit 3'\n")
        defer { try? FileManager.default.removeItem(at: folder) }
        let started = ContinuousClock.now
        let result = try await ConveyorProcess.tool(
            ["bash", Self.runner, folder.appendingPathComponent("Procfile").path], environment: ["PATH": "/usr/bin:/bin", "PROCFILE_KILL_TIMEOUT": "2"])
        #expect(result.status == 3, "\(result.stderr)")
        #expect(result.stderr.contains("crash exited with status 3"))
        #expect(ContinuousClock.now - started < .seconds(30), "the long role was stopped, not waited out")
    }

    @Test("a failed release stops everything with its status")
    func failedRelease() async throws {
        let folder = try Self.folder("release: sh -c 'exit 4'\nlong: sleep 60\n")
        defer { try? FileManager.default.removeItem(at: folder) }
        let result = try await ConveyorProcess.tool(["bash", Self.runner, folder.appendingPathComponent("Procfile").path], environment: ["PATH": "/usr/bin:/bin"])
        #expect(result.status == 4)
    }

    @Test("it reads .env (the environment wins) and gives each role its own PORT, as foreman does")
    func envAndPort() async throws {
        let folder = try Self.folder(
            "first: sh -c 'echo first $PORT $GREETING $KEPT; exec sleep 30'\nsecond: sh -c 'sleep 0.3; echo second $PORT; exit 0'\n"
                + "third: sh -c 'echo third $PORT'\n",
            env: "# settings\nexport GREETING=\"hello there\"\nKEPT=from-file\n")
        defer { try? FileManager.default.removeItem(at: folder) }
        // `first` outlives the runner's SIGTERM (the inherited mask, see above): the kill timeout ends it.
        let result = try await ConveyorProcess.tool(
            ["bash", Self.runner, folder.appendingPathComponent("Procfile").path],
            environment: ["PATH": "/usr/bin:/bin", "PORT": "7000", "KEPT": "from-env", "PROCFILE_KILL_TIMEOUT": "1"])
        #expect(result.stdout.contains("first | first 7000 hello there from-env"), "\(result.stdout)")
        #expect(result.stdout.contains("second | second 7100") || result.stdout.contains("third | third 7200"), "\(result.stdout)")
        #expect(result.status == 1, "a role that ends on its own, even with 0, stops the runner with 1")
    }
}
