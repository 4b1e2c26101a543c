import SwaplineCore

/// A `POST /process` job as the worker sends it (docs/facefusion-api.md): the face-swapper
/// model, the resolution and FaceFusion options, all strings.
public struct EngineJob: Sendable, Equatable {
    public var model: String
    public var resolution: String
    public var options: [String: String]

    public init(model: String, resolution: String, options: [String: String] = [:]) {
        self.model = model
        self.resolution = resolution
        self.options = options
    }

    /// The `job` part's JSON object: `model` and `resolution` (FaceFusion's defaults when
    /// absent, as on the server), every other key an option.
    public init(fields: [String: String]) {
        var options = fields
        model = options.removeValue(forKey: "model").flatMap { $0.isEmpty ? nil : $0 } ?? FaceSwapCatalog.defaultModel
        resolution = options.removeValue(forKey: "resolution").flatMap { $0.isEmpty ? nil : $0 } ?? FaceSwapCatalog.defaultResolution
        self.options = options
    }
}

/// Whether FaceFusion treats the target as a still image or a video, by its file extension.
public enum TargetKind: Sendable, Equatable {
    case image
    case video

    static let imageExtensions: Set<String> = ["jpg", "jpeg", "png", "webp", "bmp"]
    static let videoExtensions: Set<String> = ["mp4", "mov", "mkv", "webm", "avi", "m4v"]

    /// `nil` for an extension FaceFusion does not take as a target.
    public init?(fileExtension: String) {
        let lowered = fileExtension.lowercased()
        if Self.imageExtensions.contains(lowered) {
            self = .image
        } else if Self.videoExtensions.contains(lowered) {
            self = .video
        } else {
            return nil
        }
    }
}

/// How the installed FaceFusion sizes its output. Early 3.x releases take
/// `--output-image-resolution`/`--output-video-resolution WxH`; later 3.x releases replaced them
/// with `--output-image-scale`/`--output-video-scale` factors of the target's own size.
public enum OutputSizing: Sendable, Equatable {
    case resolution
    case scale

    /// The sizing of the FaceFusion whose `facefusion/program.py` reads `program`: `scale`
    /// unless it still defines the resolution flags.
    public init(programSource program: String) {
        self = program.contains("'--output-image-resolution'") ? .resolution : .scale
    }
}

/// The `facefusion.py headless-run` command line of a job, checked before any process runs.
///
/// Flag names are FaceFusion 3.x's (facefusion/program.py and the processors' own argument
/// groups); a value FaceFusion would refuse is refused here first, so a bad job costs no
/// process start.
public enum FaceFusionInvocation {
    /// An option a job may carry: its FaceFusion flag, the processor it needs (added to
    /// `--processors`) and the values FaceFusion accepts.
    struct OptionRule: Sendable {
        enum Values: Sendable {
            case oneOf([String])
            case integer(ClosedRange<Int>)
        }
        var flag: String
        var processor: String?
        var values: Values
    }

    static let faceEnhancerModels = [
        "codeformer", "gfpgan_1.2", "gfpgan_1.3", "gfpgan_1.4", "gpen_bfr_256", "gpen_bfr_512", "gpen_bfr_1024", "gpen_bfr_2048",
        "restoreformer_plus_plus",
    ]

    /// The job options the adapter knows, by the name a task's `options` uses.
    static let optionRules: [String: OptionRule] = [
        "face_enhancer_model": OptionRule(flag: "--face-enhancer-model", processor: "face_enhancer", values: .oneOf(faceEnhancerModels)),
        "face_enhancer_blend": OptionRule(flag: "--face-enhancer-blend", processor: "face_enhancer", values: .integer(0...100)),
        "face_selector_mode": OptionRule(flag: "--face-selector-mode", values: .oneOf(["many", "one", "reference"])),
        // yunet came with later 3.x releases; an earlier FaceFusion's parser refuses it (exit 2).
        "face_detector_model": OptionRule(flag: "--face-detector-model", values: .oneOf(["many", "retinaface", "scrfd", "yolo_face", "yunet"])),
        "output_image_quality": OptionRule(flag: "--output-image-quality", values: .integer(0...100)),
        "output_video_quality": OptionRule(flag: "--output-video-quality", values: .integer(0...100)),
        "output_video_encoder": OptionRule(
            flag: "--output-video-encoder", values: .oneOf(["libx264", "libx265", "libvpx-vp9", "h264_nvenc", "hevc_nvenc"])),
    ]

    /// The longest side an output resolution may have: FaceFusion scales frames in memory, and
    /// a 100000-pixel-wide request is a mistake, not a job.
    public static let maxOutputSide = 8192

    /// Why `job` cannot run on a FaceFusion sizing its output by `sizing`, or `nil` when it
    /// can. Checked before the inputs are stored.
    public static func problem(with job: EngineJob, sizing: OutputSizing = .resolution) -> String? {
        let boosts = FaceSwapCatalog.resolutions(for: job.model)
        if boosts.isEmpty {
            return "model '\(job.model)' is not a FaceFusion face-swapper model (one of: \(FaceSwapCatalog.models.keys.sorted().joined(separator: ", ")))"
        }
        if !boosts.contains(job.resolution) {
            guard let (width, height) = parseResolution(job.resolution) else {
                return "resolution '\(job.resolution)' is not WIDTHxHEIGHT in pixels"
            }
            guard (1...maxOutputSide).contains(width), (1...maxOutputSide).contains(height) else {
                return "resolution '\(job.resolution)' is impossible: each side must be 1 to \(maxOutputSide) pixels"
            }
            guard sizing == .resolution else {
                return "resolution '\(job.resolution)' is not a pixel boost of \(job.model) (one of: \(boosts.joined(separator: ", "))), and this FaceFusion sizes outputs by scale, not resolution"
            }
        }
        for (name, value) in job.options.sorted(by: { $0.key < $1.key }) {
            guard let rule = optionRules[name] else {
                return "option '\(name)' is not supported (known: \(optionRules.keys.sorted().joined(separator: ", ")))"
            }
            switch rule.values {
            case .oneOf(let choices) where !choices.contains(value):
                return "option \(name) '\(value)' is not one of: \(choices.joined(separator: ", "))"
            case .integer(let range) where Int(value).map(range.contains) != true:
                return "option \(name) '\(value)' is not an integer from \(range.lowerBound) to \(range.upperBound)"
            default:
                continue
            }
        }
        return nil
    }

    /// `WxH` with both sides positive decimal integers.
    static func parseResolution(_ value: String) -> (Int, Int)? {
        let sides = value.split(separator: "x", omittingEmptySubsequences: false)
        guard sides.count == 2, sides.allSatisfy({ !$0.isEmpty && $0.count <= 6 && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
            let width = Int(sides[0]), let height = Int(sides[1])
        else { return nil }
        return (width, height)
    }

    /// The arguments after the interpreter: `facefusion.py headless-run …` for a job that
    /// passed `problem(with:)`. `resolution` is the face swapper's pixel boost when the model
    /// offers it, else the output resolution of the target's kind. FaceFusion's job files and
    /// temporary frames go to `workDirectory`: it names both after the clock and the target's
    /// file name, which concurrent runs would share.
    public static func arguments(
        for job: EngineJob, source: String, target: String, output: String, targetKind: TargetKind, workDirectory: String
    ) -> [String] {
        var processors = ["face_swapper"]
        var flags = ["--face-swapper-model", job.model]
        if FaceSwapCatalog.resolutions(for: job.model).contains(job.resolution) {
            flags += ["--face-swapper-pixel-boost", job.resolution]
        } else {
            flags += [targetKind == .image ? "--output-image-resolution" : "--output-video-resolution", job.resolution]
        }
        for (name, value) in job.options.sorted(by: { $0.key < $1.key }) {
            guard let rule = optionRules[name] else { continue }
            if let processor = rule.processor, !processors.contains(processor) { processors.append(processor) }
            flags += [rule.flag, value]
        }
        // info: FaceFusion hides its progress bars at the warn and error levels.
        let paths = ["--jobs-path", workDirectory + "/jobs", "--temp-path", workDirectory + "/temp"]
        return ["facefusion.py", "headless-run", "-s", source, "-t", target, "-o", output] + paths + ["--processors"] + processors + flags
            + ["--log-level", "info"]
    }
}
