public import ConveyorCore
public import Foundation
import Logging
import Subprocess
import Synchronization

/// `video.render`'s settings (`CONVEYOR_MEDIA_ROOT`, `VIDEO_*`).
public struct VideoSettings: Sendable, Equatable {
    /// Every path of a spec is relative to it. Unset: renders fail (retried) naming it.
    public var mediaRoot: String?
    /// `VIDEO_FFMPEG`, `VIDEO_FFPROBE`: the programs, found on PATH by default.
    public var ffmpeg: String
    public var ffprobe: String
    /// A render's deadline when its spec names none. Default 1 hour (`VIDEO_RENDER_TIMEOUT_SECONDS`).
    public var timeout: Duration
    /// After `q`, and again after SIGTERM, how long ffmpeg gets to stop. Default 5 s (`VIDEO_STOP_GRACE_SECONDS`).
    public var stopGrace: Duration
    /// At most this many renders at once across the cluster. Default 2 (`VIDEO_RENDER_CONCURRENCY`;
    /// `CONVEYOR_LIMITS` overrides it too).
    public var clusterLimit: Int

    public init(
        mediaRoot: String? = nil, ffmpeg: String = "ffmpeg", ffprobe: String = "ffprobe", timeout: Duration = .seconds(3600), stopGrace: Duration = .seconds(5),
        clusterLimit: Int = 2
    ) {
        self.mediaRoot = mediaRoot
        self.ffmpeg = ffmpeg
        self.ffprobe = ffprobe
        self.timeout = timeout
        self.stopGrace = stopGrace
        self.clusterLimit = clusterLimit
    }

    /// A setting that cannot be used, named.
    public typealias Invalid = SettingError

    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws(Invalid) -> VideoSettings {
        var settings = VideoSettings()
        func value(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        if let root = value("CONVEYOR_MEDIA_ROOT") {
            do {
                _ = try MediaRoot(path: root)
            } catch {
                throw Invalid(setting: "CONVEYOR_MEDIA_ROOT", reason: "\(root) is not a directory")
            }
            settings.mediaRoot = root
        }
        if let ffmpeg = value("VIDEO_FFMPEG") { settings.ffmpeg = ffmpeg }
        if let ffprobe = value("VIDEO_FFPROBE") { settings.ffprobe = ffprobe }
        func seconds(_ name: String, _ range: ClosedRange<Double>) throws(Invalid) -> Duration? {
            guard let text = value(name) else { return nil }
            guard let number = Double(text), range.contains(number) else { throw Invalid(setting: name, reason: "must be \(range.lowerBound)–\(range.upperBound) seconds, got \(text)") }
            return .milliseconds(Int64(number * 1000))
        }
        if let timeout = try seconds("VIDEO_RENDER_TIMEOUT_SECONDS", 1...21_600) { settings.timeout = timeout }
        if let grace = try seconds("VIDEO_STOP_GRACE_SECONDS", 0.1...120) { settings.stopGrace = grace }
        if let text = value("VIDEO_RENDER_CONCURRENCY") {
            guard let limit = Int(text), (1...1000).contains(limit) else { throw Invalid(setting: "VIDEO_RENDER_CONCURRENCY", reason: "must be 1–1000, got \(text)") }
            settings.clusterLimit = limit
        }
        return settings
    }
}

/// `video.render`: one ffmpeg render of a ``RenderSpec``, into a temporary name in the output's folder
/// that becomes the output only when ffmpeg exited 0 and ffprobe finds what was asked (api-notes §D).
///
/// - Progress comes from ffmpeg's `-progress pipe:1` against the clips' total duration (ffprobe), through
///   the runtime's durable progress.
/// - ffmpeg runs under a ``Watchdog`` (swift-subprocess starts it; nothing blocks the cooperative pool):
///   a cancel (`conveyor jobs cancel`) or the render's timeout sends it SIGTERM, and it stops ffmpeg with
///   `q`, then SIGTERM and SIGKILL after a grace each, and removes the temporary file; when the worker
///   dies (SIGKILL) the end of its pipe does the same, so no ffmpeg outlives its worker.
/// - A missing input, a path out of the media root, an unknown encoder: dead at once with the reason.
/// - Other failures keep ffmpeg's exit status and the last lines of its stderr in the history, retried.
public struct VideoRenderJob: JobHandler {
    public typealias Args = JSONValue
    public static let kind = "video.render"

    public let settings: VideoSettings

    public init(settings: VideoSettings) {
        self.settings = settings
    }

    public var options: JobKindOptions {
        // The kind's own timeout is the outer bound; each render's deadline (spec or setting) is kept by
        // the handler, which stops ffmpeg cleanly first.
        JobKindOptions(
            timeout: .seconds(6 * 3600 + 600), retry: RetryPolicy(maxAttempts: 3, backoff: RetryPolicy.exponential(base: .seconds(30), cap: .seconds(900))),
            concurrencyLimit: settings.clusterLimit)
    }

    public func run(_ args: JSONValue, context: JobContext) async throws -> JobOutcome {
        let spec: RenderSpec
        switch RenderSpec.parse(args) {
        case .failure(let invalid): throw JobFailure.permanent("invalid video.render spec: \(invalid.reason)")
        case .success(let parsed): spec = parsed
        }
        guard let rootPath = settings.mediaRoot else { throw JobFailure.retryAfter(.seconds(60), "CONVEYOR_MEDIA_ROOT is not set on this worker") }
        let root: MediaRoot
        let output: URL
        var inputs: [(url: URL?, start: Double, duration: Double)] = []
        var audio: URL?
        do {
            root = try MediaRoot(path: rootPath)
            output = try root.resolve(spec.output, mustExist: false)
            for input in spec.inputs {
                switch input {
                case .generated(_, let duration): inputs.append((nil, 0, duration))
                case .file(let path, let start, let duration):
                    let url = try root.resolve(path, mustExist: true)
                    let length: Double
                    if let duration {
                        length = duration
                    } else {
                        guard let probed = try await probeDuration(url) else { throw RenderInvalid("input \(path) is not a media file ffprobe can read") }
                        length = probed - start
                        guard length > 0 else { throw RenderInvalid("input \(path) is \(probed) s long: start \(start) is past its end") }
                    }
                    inputs.append((url, start, length))
                }
            }
            if let path = spec.audioPath { audio = try root.resolve(path, mustExist: true) }
        } catch let invalid as RenderInvalid {
            throw JobFailure.permanent(invalid.reason)
        }
        let folder = output.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        // Unique to the attempt, hidden, in the output's folder (a rename there is atomic).
        let tag = "\(output.lastPathComponent).\(context.id.uuidString.prefix(8).lowercased())-\(context.attempt)"
        let temporary = folder.appendingPathComponent(".\(tag).part")
        let command = FFmpegCommand.make(spec, inputs: inputs, audio: audio, output: temporary, textFolder: folder, tag: tag)
        for (url, text) in command.textFiles { try Data(text.utf8).write(to: url) }
        defer {
            for (url, _) in command.textFiles { try? FileManager.default.removeItem(at: url) }
        }
        let started = ContinuousClock.now
        let timeout = spec.timeout ?? settings.timeout
        context.progress(0, "starting")
        let outcome = try await render(command, temporary: temporary, timeout: timeout, context: context)
        if Task.isCancelled || outcome.stopped == .cancelled {
            try? FileManager.default.removeItem(at: temporary)
            return .cancel(reason: "render stopped: the job was cancelled")
        }
        if outcome.stopped == .timedOut {
            try? FileManager.default.removeItem(at: temporary)
            throw JobFailure.timedOut("the render ran past its \(timeout.readable) deadline; ffmpeg was stopped and its partial file removed\(outcome.stderrNote)")
        }
        guard outcome.status == .exited(0) else {
            try? FileManager.default.removeItem(at: temporary)
            let message = "ffmpeg \(Self.describe(outcome.status))\(outcome.stderrNote)"
            if Self.isPermanent(outcome.stderr) { throw JobFailure.permanent(message) }
            throw JobFailure.retryAfter(.seconds(30), message)
        }
        context.progress(1, "verifying")
        let probe = try await probeOutput(temporary)
        if let problem = Self.problem(probe, spec: spec, expected: command.duration) {
            try? FileManager.default.removeItem(at: temporary)
            throw JobFailure.retryAfter(.seconds(30), "ffmpeg exited 0 but the output is wrong: \(problem)")
        }
        guard rename(temporary.path, output.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw JobFailure.retryAfter(.seconds(30), "renaming the finished render into \(spec.output) failed: \(reason)")
        }
        let elapsed = ContinuousClock.now - started
        context.logger.info(
            "render finished", metadata: ["output": "\(spec.output)", "seconds": "\(elapsed.seconds)", "duration": "\(probe.duration)", "progress_blocks": "\(outcome.blocks)"])
        let result: JSONValue = .object([
            "path": .string(spec.output), "duration": .number(probe.duration), "size": .integer(probe.size), "width": .integer(Int64(probe.width)),
            "height": .integer(Int64(probe.height)), "video_codec": .string(probe.videoCodec), "audio_codec": probe.audioCodec.map(JSONValue.string) ?? .null,
            "render_seconds": .number(elapsed.seconds),
        ])
        return .completedWithResult(json: VideoJSON.encode(result))
    }

    enum Stop: Sendable, Equatable {
        case cancelled
        case timedOut
    }

    struct Outcome: Sendable {
        var status: TerminationStatus
        var stderr: String
        var stopped: Stop?
        var blocks: Int

        var stderrNote: String { stderr.isEmpty ? "" : "; its stderr ended with: \(stderr)" }
    }

    /// Runs the watchdog and ffmpeg; reports progress; stops it on cancellation or at `timeout`.
    func render(_ command: FFmpegCommand, temporary: URL, timeout: Duration, context: JobContext) async throws -> Outcome {
        let graceTenths = max(1, Int((settings.stopGrace.seconds * 10).rounded()))
        var options = PlatformOptions()
        // Cancelled with the body still running: SIGTERM to the watchdog (its stop sequence), then, past
        // both graces and a margin, SIGKILL (the sequence always ends with one).
        options.teardownSequence = [.send(signal: .terminate, allowedDurationToNextStep: settings.stopGrace * 2 + .seconds(3))]
        let stopped = StopFlag()
        let total = command.duration
        let result = try await Subprocess.run(
            .path("/bin/sh"),
            arguments: Arguments(["-c", Watchdog.script(graceTenths: graceTenths), "conveyor-render-watchdog", temporary.path, settings.ffmpeg] + command.arguments),
            platformOptions: options,
            input: .inputWriter, output: .sequence, error: .sequence
        ) { execution in
            try await withTaskCancellationHandler {
                try await withThrowingTaskGroup(of: Capture.self) { group in
                    group.addTask {
                        var parser = ProgressParser()
                        var blocks = 0
                        var last = -1.0
                        for try await line in execution.standardOutput.strings() {
                            guard let block = parser.feed(Substring(line)) else { continue }
                            blocks += 1
                            if let seconds = block.seconds, total > 0 {
                                // Monotonic, clamped: out_time can pass the probed duration a little.
                                let fraction = min(max(seconds / total, last), 1)
                                last = fraction
                                context.progress(fraction, "encoding")
                            }
                        }
                        return .blocks(blocks)
                    }
                    group.addTask {
                        var tail: [String] = []
                        for try await line in execution.standardError.strings() {
                            tail.append(String(line.prefix(500)))
                            if tail.count > 12 { tail.removeFirst() }
                        }
                        return .stderr(FailureRecord.storable(tail.joined(separator: " | "), limit: 2000))
                    }
                    group.addTask {
                        try await Task.sleep(for: timeout)
                        stopped.set(.timedOut)
                        try? execution.send(signal: .terminate)
                        return .timer
                    }
                    var blocks = 0
                    var stderr = ""
                    var readers = 2
                    while readers > 0, let capture = try await group.next() {
                        switch capture {
                        case .blocks(let count): blocks = count; readers -= 1
                        case .stderr(let text): stderr = text; readers -= 1
                        case .timer: break
                        }
                    }
                    group.cancelAll()
                    try? await execution.standardInputWriter.finish()
                    return Rendered(blocks: blocks, stderr: stderr)
                }
            } onCancel: {
                stopped.set(.cancelled)
                try? execution.send(signal: .terminate)
            }
        }
        let rendered = result.closureResult
        return Outcome(status: result.terminationStatus, stderr: rendered.stderr, stopped: stopped.value, blocks: rendered.blocks)
    }

    /// Why the render was stopped, set once (the first reason wins).
    final class StopFlag: Sendable {
        private let state = Mutex<Stop?>(nil)
        func set(_ stop: Stop) { state.withLock { $0 = $0 ?? stop } }
        var value: Stop? { state.withLock { $0 } }
    }

    enum Capture: Sendable {
        case blocks(Int)
        case stderr(String)
        case timer
    }

    struct Rendered: Sendable {
        var blocks: Int
        var stderr: String
    }

    static func describe(_ status: TerminationStatus) -> String {
        switch status {
        case .exited(200): "was stopped by its watchdog (exit 200)"
        case .exited(let code): "exited \(code)"
        case .signaled(let signal): "was killed by signal \(signal)"
        }
    }

    /// ffmpeg's own words for what no retry fixes.
    static func isPermanent(_ stderr: String) -> Bool {
        ["Unknown encoder", "No such file or directory", "Invalid data found when processing input", "Unrecognized option", "Error parsing", "does not contain any stream"]
            .contains { stderr.contains($0) }
    }

    // MARK: - ffprobe

    struct Probe: Sendable {
        var duration: Double
        var size: Int64
        var width: Int
        var height: Int
        var videoCodec: String
        var audioCodec: String?
    }

    func probeDuration(_ url: URL) async throws -> Double? {
        let result = try await Subprocess.run(
            .name(settings.ffprobe), arguments: ["-v", "error", "-show_entries", "format=duration", "-of", "default=noprint_wrappers=1:nokey=1", url.path],
            output: .string(limit: 4096), error: .discarded)
        guard result.terminationStatus.isSuccess else { return nil }
        return result.standardOutput.split(separator: "\n").first.flatMap { Double($0.trimmingCharacters(in: .whitespaces)) }
    }

    func probeOutput(_ url: URL) async throws -> Probe {
        let result = try await Subprocess.run(
            .name(settings.ffprobe),
            arguments: ["-v", "error", "-show_entries", "format=duration,size:stream=codec_type,codec_name,width,height", "-of", "json", url.path],
            output: .string(limit: 1 << 16), error: .string(limit: 4096))
        guard result.terminationStatus.isSuccess, case .object(let object)? = try? JSONParser.parse(result.standardOutput) else {
            throw JobFailure.retryAfter(.seconds(30), "ffprobe cannot read the render: \(FailureRecord.storable(result.standardError, limit: 500))")
        }
        var probe = Probe(duration: 0, size: 0, width: 0, height: 0, videoCodec: "", audioCodec: nil)
        if case .object(let format)? = object["format"] {
            if case .string(let text)? = format["duration"] { probe.duration = Double(text) ?? 0 }
            if case .string(let text)? = format["size"] { probe.size = Int64(text) ?? 0 }
        }
        if case .array(let streams)? = object["streams"] {
            for case .object(let stream) in streams {
                let name: String = if case .string(let text)? = stream["codec_name"] { text } else { "" }
                switch stream["codec_type"] {
                case .string("video")?:
                    probe.videoCodec = name
                    if case .integer(let width)? = stream["width"] { probe.width = Int(width) }
                    if case .integer(let height)? = stream["height"] { probe.height = Int(height) }
                case .string("audio")?: probe.audioCodec = name
                default: break
                }
            }
        }
        return probe
    }

    /// What is wrong with a finished render, or nil.
    static func problem(_ probe: Probe, spec: RenderSpec, expected: Double) -> String? {
        if probe.videoCodec.isEmpty { return "no video stream" }
        if probe.width != spec.width || probe.height != spec.height { return "\(probe.width)×\(probe.height), not \(spec.width)×\(spec.height)" }
        if spec.audioPath != nil, probe.audioCodec == nil { return "no audio stream" }
        if abs(probe.duration - expected) > max(0.5, expected * 0.05) { return "\(probe.duration) s long, not \(expected) s" }
        return nil
    }
}

enum VideoJSON {
    static func encode(_ value: JSONValue) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}
