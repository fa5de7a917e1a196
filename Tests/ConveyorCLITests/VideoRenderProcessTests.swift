import ConveyorCore
import ConveyorPostgres
import ConveyorTestSupport
import Foundation
import PostgresNIO
import Testing

/// `video.render` in the stock `conveyor` binary with real ffmpeg: workers as processes, a media root
/// of the test's own.
@Suite("Video renders with real ffmpeg", .serialized, .timeLimit(.minutes(5)))
struct VideoRenderProcessTests {
    static func mediaRoot() throws -> URL {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("conveyor-media-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("renders"), withIntermediateDirectories: true)
        return root
    }

    static func environment(_ url: String, _ root: URL, id: String, extra: [String: String] = [:]) -> [String: String] {
        var env = [
            "DATABASE_URL": url, "CONVEYOR_LOG_LEVEL": "info", "CONVEYOR_WORKER_ID": id, "CONVEYOR_POLL_INTERVAL": "0.1", "CONVEYOR_MEDIA_ROOT": root.path,
            "CONVEYOR_GRACE_PERIOD": "3", "VIDEO_STOP_GRACE_SECONDS": "2",
        ]
        env.merge(extra) { _, new in new }
        return env
    }

    static func worker(_ url: String, _ root: URL, id: String, extra: [String: String] = [:]) async throws -> RunningProcess {
        let worker = try RunningProcess(["worker", "--no-ingest"], environment: environment(url, root, id: id, extra: extra))
        await worker.waitFor("worker started")
        return worker
    }

    /// A render of a generated clip: `seconds` long, `size`, `preset` (veryslow renders at about 1× at 1280×720).
    static func render(_ output: String, seconds: Double, size: (Int, Int) = (320, 240), preset: String = "veryfast", extra: String = "") -> NewJob {
        NewJob(
            kind: "video.render",
            args: #"{"inputs":[{"generate":"testsrc","duration":\#(seconds)}],"output":{"path":"\#(output)"},"size":{"width":\#(size.0),"height":\#(size.1)},"fps":25,"video":{"codec":"libx264","preset":"\#(preset)"}\#(extra)}"#,
            maxAttempts: 3)
    }

    /// ffmpeg processes running now whose arguments contain `text` (all of them for nil).
    static func ffmpegs(containing text: String? = nil) async throws -> Int {
        let result = try await ConveyorProcess.tool(["pgrep", "-f", "-c", text.map { "^ffmpeg .*\($0)" } ?? "^ffmpeg "], environment: ["PATH": "/usr/bin:/bin"])
        return Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    static func partFiles(_ root: URL) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("renders").path)) ?? []
        return names.filter { $0.hasSuffix(".part") || $0.hasSuffix(".ctl") || $0.hasSuffix(".txt") }
    }

    static func probe(_ file: URL) async throws -> String {
        let result = try await ConveyorProcess.tool(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_name,width,height", "-of", "default=noprint_wrappers=1", file.path],
            environment: ["PATH": "/usr/bin:/bin"])
        return result.stdout
    }

    static func progress(_ client: PostgresClient, _ id: UUID) async throws -> Double? {
        let rows = try await client.query("SELECT progress::float8 FROM conveyor_jobs WHERE id = \(id)", logger: TestDatabase.logger)
        for try await value in rows.decode(Double?.self) { return value }
        return nil
    }

    @Test("a 3-second generated clip renders: progress rises monotonically to 1.0, the output probes right, the result names it, no temporary file stays")
    func rendersWithProgress() async throws {
        try await TestDatabase.withFresh { client, url in
            let root = try Self.mediaRoot()
            defer { try? FileManager.default.removeItem(at: root) }
            let store = PostgresJobStore(client: client)
            let worker = try await Self.worker(url, root, id: "w0")
            let id = try await store.insert([
                Self.render(
                    "renders/clip.mp4", seconds: 3, size: (1280, 720), preset: "veryslow",
                    extra: #","overlays":[{"text":"It's 50% off: [today]","x":40,"y":40,"size":48,"start":0,"end":2}]"#)
            ]).inserted[0]
            let samples = Recorded<Double>()
            try await eventually("the render finished", timeout: .seconds(120)) {
                if let value = try await Self.progress(client, id), samples.all.last != value { samples.append([value]) }
                return try await store.require(id).state == .completed
            }
            if let value = try await Self.progress(client, id), samples.all.last != value { samples.append([value]) }
            let seen = samples.all
            #expect(seen == seen.sorted(), "progress went back: \(seen)")
            #expect(seen.last == 1, "\(seen)")
            #expect(seen.count >= 2, "progress was seen moving: \(seen)")
            let record = try await store.require(id)
            let result = try #require(record.result)
            #expect(result.contains(#""path": "renders/clip.mp4""#) && result.contains(#""width": 1280"#) && result.contains(#""video_codec": "h264""#), "\(result)")
            let probed = try await Self.probe(root.appendingPathComponent("renders/clip.mp4"))
            #expect(probed.contains("codec_name=h264") && probed.contains("width=1280") && probed.contains("height=720") && probed.contains("duration=3.0"), "\(probed)")
            #expect(Self.partFiles(root).isEmpty)
            worker.signal(SIGTERM)
            #expect(await worker.exitStatus() == 0)
        }
    }

    @Test("two clips (a file cut by start and duration, a generated one) and an audio track become one output with both streams, the length of the clips")
    func clipsAndAudio() async throws {
        try await TestDatabase.withFresh { client, url in
            let root = try Self.mediaRoot()
            defer { try? FileManager.default.removeItem(at: root) }
            try FileManager.default.createDirectory(at: root.appendingPathComponent("clips"), withIntermediateDirectories: true)
            // The inputs, made by ffmpeg itself: a 4 s clip at another size, a 10 s tone.
            let made = try await ConveyorProcess.tool(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "smptebars=duration=4:size=640x480:rate=25", "-c:v", "libx264",
                 root.appendingPathComponent("clips/bars.mp4").path], environment: ["PATH": "/usr/bin:/bin"])
            let tone = try await ConveyorProcess.tool(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=10", "-c:a", "aac",
                 root.appendingPathComponent("clips/tone.m4a").path], environment: ["PATH": "/usr/bin:/bin"])
            #expect(made.status == 0 && tone.status == 0, "\(made.stderr)\(tone.stderr)")
            let store = PostgresJobStore(client: client)
            let worker = try await Self.worker(url, root, id: "w0")
            let id = try await store.insert([
                NewJob(
                    kind: "video.render",
                    args: #"{"inputs":[{"path":"clips/bars.mp4","start":1},{"generate":"color","duration":2}],"output":{"path":"renders/joined.mkv"},"size":{"width":320,"height":240},"fps":25,"audio":{"path":"clips/tone.m4a","codec":"aac"}}"#)
            ]).inserted[0]
            try await eventually("rendered", timeout: .seconds(60)) { try await store.require(id).state == .completed }
            let result = try #require(try await store.require(id).result)
            #expect(result.contains(#""audio_codec": "aac""#) && result.contains(#""width": 320"#), "\(result)")
            let probed = try await Self.probe(root.appendingPathComponent("renders/joined.mkv"))
            #expect(probed.contains("codec_name=aac") && probed.contains("codec_name=h264") && probed.contains("duration=5.0"), "3 s of bars and 2 s of colour: \(probed)")
            worker.signal(SIGTERM)
            #expect(await worker.exitStatus() == 0)
        }
    }

    @Test("a 120-second slow render is cancelled mid-way: the job ends cancelled, no file and no ffmpeg stay")
    func cancelStopsRender() async throws {
        try await TestDatabase.withFresh { client, url in
            let root = try Self.mediaRoot()
            defer { try? FileManager.default.removeItem(at: root) }
            let store = PostgresJobStore(client: client)
            let worker = try await Self.worker(url, root, id: "w0")
            let id = try await store.insert([Self.render("renders/long.mp4", seconds: 120, size: (1280, 720), preset: "veryslow")]).inserted[0]
            try await eventually("the render under way", timeout: .seconds(60)) { (try await Self.progress(client, id) ?? 0) > 0 }
            #expect(try await Self.ffmpegs(containing: "long.mp4") == 1)
            let cancelled = try await ConveyorProcess.run(["jobs", "cancel", id.uuidString, "--reason", "changed my mind"], environment: ["DATABASE_URL": url])
            #expect(cancelled.status == 0, "\(cancelled.stderr)")
            try await eventually("cancelled, ffmpeg gone, nothing left", timeout: .seconds(30)) {
                let state = try await store.require(id).state
                let running = try await Self.ffmpegs(containing: "long.mp4")
                return state == .cancelled && running == 0 && Self.partFiles(root).isEmpty
            }
            #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("renders/long.mp4").path))
            worker.signal(SIGTERM)
            #expect(await worker.exitStatus() == 0)
        }
    }

    @Test("a worker SIGKILLed mid-render leaves no ffmpeg behind; the job renders again on a second worker into one valid output")
    func crashRendersAgain() async throws {
        try await TestDatabase.withFresh { client, url in
            let root = try Self.mediaRoot()
            defer { try? FileManager.default.removeItem(at: root) }
            let store = PostgresJobStore(client: client)
            let fast = ["CONVEYOR_LEASE": "2", "CONVEYOR_LEADER_TTL": "2", "CONVEYOR_RESCUE_DELAY": "0"]
            let first = try await Self.worker(url, root, id: "w0", extra: fast)
            let id = try await store.insert([Self.render("renders/crash.mp4", seconds: 6, size: (1280, 720), preset: "veryslow")]).inserted[0]
            try await eventually("the render under way", timeout: .seconds(60)) { (try await Self.progress(client, id) ?? 0) > 0 }
            let tag = "crash.mp4.\(id.uuidString.prefix(8).lowercased())-1"
            #expect(try await Self.ffmpegs(containing: tag) == 1)
            first.signal(SIGKILL)
            _ = await first.exitStatus()
            try await eventually("its ffmpeg stopped and its partial file removed", timeout: .seconds(15)) {
                let running = try await Self.ffmpegs(containing: tag)
                return running == 0 && !FileManager.default.fileExists(atPath: root.appendingPathComponent("renders/.\(tag).part").path)
            }
            let second = try await Self.worker(url, root, id: "w1", extra: fast)
            try await eventually("rendered again by the second worker", timeout: .seconds(120)) { try await store.require(id).state == .completed }
            let record = try await store.require(id)
            #expect(record.attempt == 2, "\(record.attempt)")
            let names = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("renders").path)
            #expect(names == ["crash.mp4"], "exactly one finished output: \(names)")
            #expect(try await Self.probe(root.appendingPathComponent("renders/crash.mp4")).contains("duration=6.0"))
            second.signal(SIGTERM)
            #expect(await second.exitStatus() == 0)
        }
    }

    @Test("six renders on three workers with a cap of 2 never run more than two ffmpeg at once (sampled, and from the rows)")
    func clusterCap() async throws {
        try await TestDatabase.withFresh { client, url in
            let root = try Self.mediaRoot()
            defer { try? FileManager.default.removeItem(at: root) }
            let store = PostgresJobStore(client: client)
            var workers: [RunningProcess] = []
            for index in 0..<3 { workers.append(try await Self.worker(url, root, id: "w\(index)", extra: ["VIDEO_RENDER_CONCURRENCY": "2"])) }
            let ids = try await store.insert((0..<6).map { Self.render("renders/cap\($0).mp4", seconds: 4, size: (640, 360), preset: "slower") }).inserted
            let counts = Recorded<Int>()
            try await eventually("all six rendered", timeout: .seconds(180)) {
                counts.append([try await Self.ffmpegs(containing: "renders/.cap")])
                return try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE state = 'completed'") == 6
            }
            let peak = counts.all.max() ?? 0, samples = counts.all.count
            #expect(peak <= 2 && peak >= 1, "peak \(peak) over \(samples) samples")
            // From the rows: at no start were more than two renders running.
            let overlap = try await TestDatabase.count(client, """
                SELECT coalesce(max(n), 0)::int FROM (SELECT (SELECT count(*) FROM conveyor_jobs b WHERE b.attempted_at <= a.attempted_at AND b.finished_at > a.attempted_at) AS n
                FROM conveyor_jobs a WHERE a.kind = 'video.render') s
                """)
            #expect(overlap <= 2, "\(overlap) renders overlapped")
            for id in ids { #expect(try await store.require(id).state == .completed) }
            for worker in workers { worker.signal(SIGTERM) }
            for worker in workers { #expect(await worker.exitStatus() == 0) }
        }
    }

    @Test("paths out of the media root, a missing input and a timeout are recorded failures; nothing is written outside the root")
    func refusals() async throws {
        try await TestDatabase.withFresh { client, url in
            let root = try Self.mediaRoot()
            let outside = FileManager.default.temporaryDirectory.appendingPathComponent("conveyor-outside-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
            defer {
                try? FileManager.default.removeItem(at: root)
                try? FileManager.default.removeItem(at: outside)
            }
            try FileManager.default.createSymbolicLink(at: root.appendingPathComponent("escape"), withDestinationURL: outside)
            let store = PostgresJobStore(client: client)
            let worker = try await Self.worker(url, root, id: "w0")
            func job(_ output: String, input: String = #"{"generate":"testsrc","duration":1}"#) -> NewJob {
                NewJob(kind: "video.render", args: #"{"inputs":[\#(input)],"output":{"path":"\#(output)"},"size":{"width":320,"height":240}}"#)
            }
            let ids = try await store.insert([
                job("../escaped.mp4"), job("/tmp/absolute.mp4"), job("escape/through-link.mp4"), job("renders/x.mp4", input: #"{"path":"missing.mp4"}"#),
                job("renders/x.mp4", input: #"{"path":"escape/../../etc/passwd"}"#),
            ]).inserted
            let timeout = try await store.insert([Self.render("renders/slow.mp4", seconds: 120, size: (1280, 720), preset: "veryslow", extra: #","timeout_seconds":2"#)]).inserted[0]
            try await eventually("all refused", timeout: .seconds(60)) {
                try await TestDatabase.count(client, "SELECT count(*) FROM conveyor_jobs WHERE state = 'dead'") == 5
            }
            let reasons = try await ids.asyncMap { try await store.require($0).errors.last?.message ?? "" }
            #expect(reasons[0].contains("'..' is refused") && reasons[1].contains("absolute paths are refused"), "\(reasons)")
            #expect(reasons[2].contains("outside CONVEYOR_MEDIA_ROOT") && reasons[3].contains("does not exist") && reasons[4].contains("'..' is refused"), "\(reasons)")
            try await eventually("the timeout recorded", timeout: .seconds(60)) { try await !store.require(timeout).errors.isEmpty }
            let failure = try #require(try await store.require(timeout).errors.first)
            #expect(failure.kind == .timeout && failure.message.contains("deadline"), "\(failure)")
            try await eventually("its ffmpeg stopped, its partial file removed", timeout: .seconds(20)) {
                let running = try await Self.ffmpegs(containing: "slow.mp4")
                return running == 0 && Self.partFiles(root).isEmpty
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: outside.path).isEmpty, "nothing written through the symlink")
            _ = try await ConveyorProcess.run(["jobs", "cancel", timeout.uuidString], environment: ["DATABASE_URL": url])
            worker.signal(SIGTERM)
            #expect(await worker.exitStatus() == 0)
        }
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
