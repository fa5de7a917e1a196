import ConveyorCore
import Foundation

/// A render spec as an ffmpeg argument list (never a shell string: each value is one argument).
struct FFmpegCommand: Sendable, Equatable {
    var arguments: [String]
    /// Seconds of output expected (the sum of the clips), for progress and the check of the result.
    var duration: Double
    /// Text files the overlays read (`drawtext=textfile=`), written before and removed after.
    var textFiles: [(url: URL, text: String)]

    static func == (lhs: FFmpegCommand, rhs: FFmpegCommand) -> Bool { lhs.arguments == rhs.arguments && lhs.duration == rhs.duration }

    /// `inputs` resolved (paths) with their durations (given, or probed minus the start).
    static func make(
        _ spec: RenderSpec, inputs: [(url: URL?, start: Double, duration: Double)], audio: URL?, output: URL, textFolder: URL, tag: String
    ) -> FFmpegCommand {
        var arguments = ["-hide_banner", "-nostats", "-loglevel", "error", "-progress", "pipe:1", "-y"]
        for (index, input) in inputs.enumerated() {
            if let url = input.url {
                if input.start > 0 { arguments += ["-ss", format(input.start)] }
                arguments += ["-t", format(input.duration), "-i", url.path]
            } else if case .generated(let source, _) = spec.inputs[index] {
                let size = "\(spec.width)x\(spec.height)"
                let options = source == "color" ? "c=black:s=\(size):r=\(spec.fps):d=\(format(input.duration))" : "duration=\(format(input.duration)):size=\(size):rate=\(spec.fps)"
                arguments += ["-f", "lavfi", "-i", "\(source)=\(options)"]
            }
        }
        if let audio { arguments += ["-i", audio.path] }
        // Each clip scaled into the frame (letterboxed), at the frame rate; then concatenated; then the overlays.
        var filters: [String] = []
        for index in inputs.indices {
            filters.append(
                "[\(index):v]scale=\(spec.width):\(spec.height):force_original_aspect_ratio=decrease,pad=\(spec.width):\(spec.height):(ow-iw)/2:(oh-ih)/2,setsar=1,fps=\(spec.fps),format=yuv420p[v\(index)]")
        }
        let joined = inputs.indices.map { "[v\($0)]" }.joined()
        var last = "vc"
        filters.append("\(joined)concat=n=\(inputs.count):v=1:a=0[vc]")
        var textFiles: [(URL, String)] = []
        for (index, overlay) in spec.overlays.enumerated() {
            let file = textFolder.appendingPathComponent(".\(tag).overlay\(index).txt")
            textFiles.append((file, overlay.text))
            var drawtext = "drawtext=textfile=\(escapeFilterValue(file.path)):expansion=none:x=\(overlay.x):y=\(overlay.y):fontsize=\(overlay.size):fontcolor=\(overlay.color)"
            if overlay.start != nil || overlay.end != nil {
                drawtext += ":enable='between(t,\(format(overlay.start ?? 0)),\(format(overlay.end ?? 1e9)))'"
            }
            filters.append("[\(last)]\(drawtext)[o\(index)]")
            last = "o\(index)"
        }
        arguments += ["-filter_complex", filters.joined(separator: ";"), "-map", "[\(last)]"]
        let total = inputs.reduce(0) { $0 + $1.duration }
        if audio != nil {
            arguments += ["-map", "\(inputs.count):a:0", "-c:a", spec.audioCodec, "-b:a", spec.audioBitrate, "-t", format(total)]
        } else {
            arguments += ["-an"]
        }
        arguments += ["-c:v", spec.videoCodec]
        if spec.videoCodec == "libx264" || spec.videoCodec == "libx265" { arguments += ["-preset", spec.preset, "-crf", String(spec.crf)] }
        arguments += ["-r", String(spec.fps)]
        if spec.container == "mp4" || spec.container == "mov" { arguments += ["-movflags", "+faststart"] }
        arguments += ["-f", spec.container == "mkv" ? "matroska" : spec.container, output.path]
        return FFmpegCommand(arguments: arguments, duration: total, textFiles: textFiles)
    }

    /// A number as ffmpeg reads it: no exponent, at most 6 decimals.
    static func format(_ value: Double) -> String {
        var text = String(format: "%.6f", value)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }

    /// A filter option value: `\`, `'`, `:`, `,`, `;`, `[`, `]` escaped (our own temp paths only).
    static func escapeFilterValue(_ text: String) -> String {
        var result = ""
        for character in text {
            if "\\':,;[]".contains(character) { result.append("\\") }
            result.append(character)
        }
        return result
    }
}

/// ffmpeg's `-progress` output, block by block (api-notes §D.1): `key=value` lines, a block ends with
/// `progress=continue|end`; `out_time_us` (and `out_time_ms`, also microseconds) may be `N/A` or padded.
struct ProgressParser: Sendable {
    private var outTime: Double?

    /// The seconds of output written, at each completed block; and whether it was the last.
    mutating func feed(_ line: Substring) -> (seconds: Double?, ended: Bool)? {
        guard let equals = line.firstIndex(of: "=") else { return nil }
        let key = line[..<equals].trimmingCharacters(in: .whitespaces)
        let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        switch key {
        case "out_time_us", "out_time_ms":
            if let micros = Double(value), micros >= 0 { outTime = micros / 1e6 }
        case "progress":
            defer { outTime = nil }
            return (outTime, value == "end")
        default: break
        }
        return nil
    }
}
