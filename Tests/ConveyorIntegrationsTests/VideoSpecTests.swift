import ConveyorCore
@testable import ConveyorKindVideo
import Foundation
import Testing

@Suite("Render specs, paths and ffmpeg's progress")
struct VideoSpecTests {
    static func spec(_ json: String) -> Result<RenderSpec, RenderInvalid> { RenderSpec.parse(try! JSONParser.parse(json)) }

    @Test("a spec becomes an argument list, never a shell string: clips scaled and concatenated, overlays from text files, the codec and preset asked")
    func arguments() throws {
        let spec = try Self.spec(#"""
            {"inputs": [{"path": "a.mp4", "start": 1.5, "duration": 2}, {"generate": "testsrc", "duration": 3}],
             "output": {"path": "out/x.mp4"}, "size": {"width": 640, "height": 360}, "fps": 25,
             "video": {"codec": "libx264", "preset": "fast", "crf": 20}, "audio": {"path": "m.mp3"},
             "overlays": [{"text": "it's 50% off; [now]", "x": 10, "y": 20, "size": 30, "start": 0, "end": 2}]}
            """#).get()
        let command = FFmpegCommand.make(
            spec, inputs: [(URL(fileURLWithPath: "/media/a.mp4"), 1.5, 2), (nil, 0, 3)], audio: URL(fileURLWithPath: "/media/m.mp3"),
            output: URL(fileURLWithPath: "/media/out/.x.part"), textFolder: URL(fileURLWithPath: "/media/out"), tag: "t")
        let args = command.arguments
        #expect(command.duration == 5)
        #expect(args.starts(with: ["-hide_banner", "-nostats", "-loglevel", "error", "-progress", "pipe:1", "-y"]))
        #expect(args.contains("/media/a.mp4") && args.contains("testsrc=duration=3:size=640x360:rate=25"))
        let ss = try #require(args.firstIndex(of: "-ss"))
        #expect(args[ss + 1] == "1.5" && args[ss + 2] == "-t" && args[ss + 3] == "2")
        let filter = try #require(args.firstIndex(of: "-filter_complex").map { args[$0 + 1] })
        #expect(filter.contains("concat=n=2:v=1:a=0") && filter.contains("drawtext=textfile=/media/out/.t.overlay0.txt"), "\(filter)")
        #expect(!filter.contains("50%"), "the text travels in a file, never in the filter string")
        #expect(command.textFiles.first?.text == "it's 50% off; [now]")
        #expect(args.suffix(2) == ["mp4", "/media/out/.x.part"])
        #expect(args.contains("-preset") && args.contains("fast") && args.contains("-crf") && args.contains("20") && args.contains("aac"))
    }

    @Test("invalid specs are refused with the reason")
    func invalid() {
        for (json, reason) in [
            (#"{"output": {"path": "x.mp4"}}"#, "inputs"),
            (#"{"inputs": [{"path": "a.mp4"}], "output": {"path": "x.avi"}}"#, "container"),
            (#"{"inputs": [{"path": "a.mp4"}], "output": {"path": "x.mp4"}, "video": {"codec": "h264_nvenc"}}"#, "video.codec"),
            (#"{"inputs": [{"path": "a.mp4"}], "output": {"path": "x.mp4"}, "size": {"width": 641, "height": 360}}"#, "even"),
            (#"{"inputs": [{"generate": "mandelbrot", "duration": 3}], "output": {"path": "x.mp4"}}"#, "generate"),
            (#"{"inputs": [{"path": "a.mp4"}], "output": {"path": "x.mp4"}, "overlays": [{"text": "x", "color": "red; rm -rf /"}]}"#, "color"),
        ] {
            guard case .failure(let invalid) = Self.spec(json) else { Issue.record("accepted: \(json)"); continue }
            #expect(invalid.reason.contains(reason), "\(json): \(invalid.reason)")
        }
    }

    @Test("paths stay inside the media root: '..', absolute paths and symlinks out are refused")
    func mediaRoot() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("media-\(UUID().uuidString.prefix(8))")
        let outside = FileManager.default.temporaryDirectory.appendingPathComponent("outside-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: base.appendingPathComponent("clips"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
        defer {
            try? FileManager.default.removeItem(at: base)
            try? FileManager.default.removeItem(at: outside)
        }
        try Data("x".utf8).write(to: base.appendingPathComponent("clips/a.mp4"))
        try Data("x".utf8).write(to: outside.appendingPathComponent("secret.mp4"))
        try FileManager.default.createSymbolicLink(at: base.appendingPathComponent("out"), withDestinationURL: outside)
        try FileManager.default.createSymbolicLink(at: base.appendingPathComponent("clips/link.mp4"), withDestinationURL: outside.appendingPathComponent("secret.mp4"))
        let root = try MediaRoot(path: base.path)
        #expect(try root.resolve("clips/a.mp4", mustExist: true).lastPathComponent == "a.mp4")
        #expect(try root.resolve("renders/new/x.mp4", mustExist: false).path.hasPrefix(root.url.path + "/renders/new"))
        for (path, exists, reason) in [
            ("../x.mp4", false, "'..'"), ("/etc/passwd", true, "absolute"), ("clips/../../x", true, "'..'"), ("out/x.mp4", false, "outside"),
            ("out/deeper/x.mp4", false, "outside"), ("clips/link.mp4", true, "outside"), ("clips/none.mp4", true, "does not exist"),
        ] {
            do {
                _ = try root.resolve(path, mustExist: exists)
                Issue.record("\(path) was accepted")
            } catch {
                #expect(error.reason.contains(reason), "\(path): \(error.reason)")
            }
        }
    }

    @Test("progress blocks: out_time_us and out_time_ms are microseconds, N/A and padding are tolerated, a block ends at progress=")
    func progress() {
        var parser = ProgressParser()
        var blocks: [(Double?, Bool)] = []
        let text = "frame=0\nbitrate=N/A\nout_time_us=N/A\nspeed=   0x\nprogress=continue\nframe=75\nout_time_ms= 1500000\nprogress=continue\nout_time_us=3018594\nout_time_ms=3018594\nprogress=end\n"
        for line in text.split(separator: "\n") { if let block = parser.feed(line) { blocks.append(block) } }
        #expect(blocks.count == 3)
        #expect(blocks[0].0 == nil && blocks[1].0 == 1.5 && blocks[2].0 == 3.018594 && blocks[2].1)
    }
}
