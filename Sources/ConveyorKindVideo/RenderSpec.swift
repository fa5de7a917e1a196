public import ConveyorCore
public import Foundation

/// What `video.render` renders: the args of its jobs (README "Video renders").
///
/// ```json
/// {"inputs": [{"path": "clips/intro.mp4", "start": 0, "duration": 3},
///             {"generate": "testsrc", "duration": 3}],
///  "output": {"path": "renders/ad-42.mp4", "container": "mp4"},
///  "size": {"width": 1280, "height": 720}, "fps": 30,
///  "video": {"codec": "libx264", "preset": "veryfast", "crf": 23},
///  "audio": {"path": "music/track.mp3", "codec": "aac", "bitrate": "128k"},
///  "overlays": [{"text": "Summer sale", "x": 40, "y": 40, "size": 48, "color": "white", "start": 0, "end": 2.5}],
///  "timeout_seconds": 900}
/// ```
/// Paths are relative to `CONVEYOR_MEDIA_ROOT` and may not leave it.
public struct RenderSpec: Sendable, Equatable {
    public enum Input: Sendable, Equatable {
        case file(path: String, start: Double, duration: Double?)
        /// An ffmpeg test source (`testsrc`, `testsrc2`, `smptebars`, `color`), generated, no file.
        case generated(source: String, duration: Double)
    }

    public struct Overlay: Sendable, Equatable {
        public var text: String
        public var x: Int
        public var y: Int
        public var size: Int
        public var color: String
        public var start: Double?
        public var end: Double?
    }

    public var inputs: [Input]
    public var output: String
    public var container: String
    public var width: Int
    public var height: Int
    public var fps: Int
    public var videoCodec: String
    public var preset: String
    public var crf: Int
    public var audioPath: String?
    public var audioCodec: String
    public var audioBitrate: String
    public var overlays: [Overlay]
    public var timeout: Duration?

    static let containers: Set<String> = ["mp4", "mov", "mkv", "webm"]
    static let videoCodecs: Set<String> = ["libx264", "libx265", "libvpx-vp9", "mpeg4"]
    static let presets: Set<String> = ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"]
    static let audioCodecs: Set<String> = ["aac", "libopus", "libmp3lame"]
    static let sources: Set<String> = ["testsrc", "testsrc2", "smptebars", "color"]

    /// Validates a job's args; the error names what is wrong (the job is dead at once with it).
    public static func parse(_ args: JSONValue) -> Result<RenderSpec, RenderInvalid> {
        guard case .object(let fields) = args else { return .failure(.init("args must be a JSON object")) }
        guard case .array(let list)? = fields["inputs"], !list.isEmpty, list.count <= 50 else {
            return .failure(.init("inputs must be an array of 1 to 50 clips"))
        }
        var inputs: [Input] = []
        for (index, item) in list.enumerated() {
            guard case .object(let input) = item else { return .failure(.init("inputs[\(index)] must be an object")) }
            if case .string(let source)? = input["generate"] {
                guard sources.contains(source) else { return .failure(.init("inputs[\(index)].generate must be one of \(sources.sorted().joined(separator: ", "))")) }
                guard let duration = number(input["duration"]), duration > 0, duration <= 3600 else {
                    return .failure(.init("inputs[\(index)].duration is required for a generated clip (0–3600 s)"))
                }
                inputs.append(.generated(source: source, duration: duration))
                continue
            }
            guard case .string(let path)? = input["path"], !path.isEmpty else { return .failure(.init("inputs[\(index)].path is required (relative to CONVEYOR_MEDIA_ROOT)")) }
            let start = number(input["start"]) ?? 0
            let duration = number(input["duration"])
            guard start >= 0, duration.map({ $0 > 0 }) ?? true else { return .failure(.init("inputs[\(index)]: start must be ≥ 0 and duration > 0")) }
            inputs.append(.file(path: path, start: start, duration: duration))
        }
        guard case .object(let output)? = fields["output"], case .string(let outputPath)? = output["path"], !outputPath.isEmpty else {
            return .failure(.init("output.path is required (relative to CONVEYOR_MEDIA_ROOT)"))
        }
        var container = (outputPath as NSString).pathExtension.lowercased()
        if case .string(let given)? = output["container"] { container = given }
        guard containers.contains(container) else { return .failure(.init("output.container must be one of \(containers.sorted().joined(separator: ", "))")) }
        var spec = RenderSpec(
            inputs: inputs, output: outputPath, container: container, width: 1280, height: 720, fps: 30, videoCodec: "libx264", preset: "veryfast", crf: 23,
            audioPath: nil, audioCodec: "aac", audioBitrate: "128k", overlays: [], timeout: nil)
        if case .object(let size)? = fields["size"] {
            guard let width = integer(size["width"]), let height = integer(size["height"]), (16...7680).contains(width), (16...4320).contains(height),
                width % 2 == 0, height % 2 == 0
            else { return .failure(.init("size must be {width, height}, even numbers from 16×16 to 7680×4320")) }
            spec.width = width
            spec.height = height
        }
        if let fps = fields["fps"] {
            guard let value = integer(fps), (1...120).contains(value) else { return .failure(.init("fps must be a whole number from 1 to 120")) }
            spec.fps = value
        }
        if case .object(let video)? = fields["video"] {
            if case .string(let codec)? = video["codec"] {
                guard videoCodecs.contains(codec) else { return .failure(.init("video.codec must be one of \(videoCodecs.sorted().joined(separator: ", "))")) }
                spec.videoCodec = codec
            }
            if case .string(let preset)? = video["preset"] {
                guard presets.contains(preset) else { return .failure(.init("video.preset must be one of \(presets.sorted().joined(separator: ", "))")) }
                spec.preset = preset
            }
            if let crf = video["crf"] {
                guard let value = integer(crf), (0...51).contains(value) else { return .failure(.init("video.crf must be 0–51")) }
                spec.crf = value
            }
        }
        if case .object(let audio)? = fields["audio"] {
            guard case .string(let path)? = audio["path"], !path.isEmpty else { return .failure(.init("audio.path is required when audio is given")) }
            spec.audioPath = path
            if case .string(let codec)? = audio["codec"] {
                guard audioCodecs.contains(codec) else { return .failure(.init("audio.codec must be one of \(audioCodecs.sorted().joined(separator: ", "))")) }
                spec.audioCodec = codec
            }
            if case .string(let bitrate)? = audio["bitrate"] {
                guard bitrate.range(of: #"^[0-9]{2,4}k$"#, options: .regularExpression) != nil else { return .failure(.init("audio.bitrate must look like 128k")) }
                spec.audioBitrate = bitrate
            }
        }
        if case .array(let overlays)? = fields["overlays"] {
            guard overlays.count <= 20 else { return .failure(.init("at most 20 overlays")) }
            for (index, item) in overlays.enumerated() {
                guard case .object(let overlay) = item, case .string(let text)? = overlay["text"], !text.isEmpty, text.count <= 500, !text.contains("\u{0}") else {
                    return .failure(.init("overlays[\(index)].text is required (1–500 characters)"))
                }
                var color = "white"
                if case .string(let given)? = overlay["color"] {
                    guard given.range(of: #"^([a-z]{3,20}|#[0-9a-fA-F]{6})$"#, options: .regularExpression) != nil else {
                        return .failure(.init("overlays[\(index)].color must be a color name or #RRGGBB"))
                    }
                    color = given
                }
                spec.overlays.append(
                    Overlay(
                        text: text, x: integer(overlay["x"]) ?? 0, y: integer(overlay["y"]) ?? 0, size: min(max(integer(overlay["size"]) ?? 32, 6), 400), color: color,
                        start: number(overlay["start"]), end: number(overlay["end"])))
            }
        }
        if let timeout = fields["timeout_seconds"] {
            guard let seconds = number(timeout), seconds >= 1, seconds <= 6 * 3600 else { return .failure(.init("timeout_seconds must be 1–21600")) }
            spec.timeout = .milliseconds(Int64(seconds * 1000))
        }
        return .success(spec)
    }

    static func number(_ value: JSONValue?) -> Double? {
        switch value {
        case .integer(let number)?: Double(number)
        case .number(let number)? where number.isFinite: number
        default: nil
        }
    }

    static func integer(_ value: JSONValue?) -> Int? {
        switch value {
        case .integer(let number)? where abs(number) < 1_000_000: Int(number)
        default: nil
        }
    }

    /// Every path the spec names (inputs, audio, output).
    var paths: [String] {
        inputs.compactMap { if case .file(let path, _, _) = $0 { path } else { nil } } + (audioPath.map { [$0] } ?? []) + [output]
    }
}

/// Why a render spec is refused.
public struct RenderInvalid: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// `CONVEYOR_MEDIA_ROOT` and the paths inside it.
public struct MediaRoot: Sendable, Equatable {
    /// The root, resolved (symlinks followed).
    public let url: URL

    public init(path: String) throws(RenderInvalid) {
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().standardizedFileURL
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: resolved.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw RenderInvalid("CONVEYOR_MEDIA_ROOT \(path) is not a directory")
        }
        url = resolved
    }

    /// `relative` inside the root, symlinks resolved; refused when it is absolute, has `..`, or resolves
    /// outside (a symlink out). `mustExist` for inputs; for an output, its folder is resolved.
    public func resolve(_ relative: String, mustExist: Bool) throws(RenderInvalid) -> URL {
        guard !relative.hasPrefix("/"), !relative.hasPrefix("~") else { throw RenderInvalid("\(relative): absolute paths are refused; paths are relative to CONVEYOR_MEDIA_ROOT") }
        let components = relative.split(separator: "/", omittingEmptySubsequences: true)
        guard !components.isEmpty, !components.contains(".."), !relative.contains("\u{0}") else {
            throw RenderInvalid("\(relative): '..' is refused; paths stay inside CONVEYOR_MEDIA_ROOT")
        }
        let joined = url.appendingPathComponent(relative)
        if mustExist {
            guard FileManager.default.fileExists(atPath: joined.path) else { throw RenderInvalid("input \(relative) does not exist under CONVEYOR_MEDIA_ROOT") }
            let resolved = joined.resolvingSymlinksInPath().standardizedFileURL
            guard inside(resolved) else { throw RenderInvalid("\(relative) leads outside CONVEYOR_MEDIA_ROOT (a symlink out)") }
            return resolved
        }
        // An output: the deepest folder of it that exists is resolved and must be inside the root; the
        // rest does not exist yet, so holds no symlink (and no `..`). The name itself may not be a symlink.
        var existing = joined.deletingLastPathComponent()
        var rest: [String] = []
        while !FileManager.default.fileExists(atPath: existing.path) {
            rest.insert(existing.lastPathComponent, at: 0)
            existing = existing.deletingLastPathComponent()
        }
        let resolvedFolder = existing.resolvingSymlinksInPath().standardizedFileURL
        guard inside(resolvedFolder) || resolvedFolder == url else { throw RenderInvalid("\(relative) leads outside CONVEYOR_MEDIA_ROOT (a symlink out)") }
        let target = rest.reduce(resolvedFolder) { $0.appendingPathComponent($1) }.appendingPathComponent(joined.lastPathComponent)
        if let attributes = try? FileManager.default.attributesOfItem(atPath: target.path), attributes[.type] as? FileAttributeType == .typeSymbolicLink {
            throw RenderInvalid("\(relative) is a symlink: refused as an output")
        }
        return target
    }

    func inside(_ resolved: URL) -> Bool {
        resolved.path.hasPrefix(url.path.hasSuffix("/") ? url.path : url.path + "/")
    }
}
