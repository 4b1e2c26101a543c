/// The face-swapper models of FaceFusion 3.x and the output sizes each supports.
///
/// `resolution` is FaceFusion's `face_swapper_pixel_boost`: the swap runs at the model's
/// native size and is upscaled to the chosen size. The table is FaceFusion 3.x's own
/// `face_swapper_set` (facefusion/processors/choices.py); docs/facefusion-models.md lists it.
public enum FaceSwapCatalog {
    public static let defaultModel = "inswapper_128_fp16"
    public static let defaultResolution = "1024x1024"

    private static let from128 = ["128x128", "256x256", "384x384", "512x512", "768x768", "1024x1024"]
    private static let from256 = ["256x256", "512x512", "768x768", "1024x1024"]

    /// Model name to the `WxH` sizes it accepts, smallest first.
    public static let models: [String: [String]] = [
        "blendswap_256": ["256x256", "384x384", "512x512", "768x768", "1024x1024"],
        "ghost_1_256": from256,
        "ghost_2_256": from256,
        "ghost_3_256": from256,
        "hififace_unofficial_256": from256,
        "hyperswap_1a_256": from256,
        "hyperswap_1b_256": from256,
        "hyperswap_1c_256": from256,
        "inswapper_128": from128,
        "inswapper_128_fp16": from128,
        "simswap_256": from256,
        "simswap_unofficial_512": ["512x512", "768x768", "1024x1024"],
        "uniface_256": from256,
    ]

    /// The `WxH` sizes `model` accepts, smallest first; empty for an unknown model.
    public static func resolutions(for model: String) -> [String] {
        models[model] ?? []
    }
}

/// Checks of client input that every transport applies the same way.
public enum TaskValidation {
    public static let maxURLLength = 2048

    /// `nil` when `value` is an absolute http or https URL with a host; otherwise why not.
    public static func urlProblem(_ value: String) -> String? {
        if value.isEmpty { return "is required" }
        if value.utf8.count > maxURLLength { return "is longer than \(maxURLLength) bytes" }
        if value.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) {
            return "must not contain spaces or control characters"
        }
        let lower = value.lowercased()
        let rest: Substring
        if lower.hasPrefix("https://") {
            rest = value.dropFirst(8)
        } else if lower.hasPrefix("http://") {
            rest = value.dropFirst(7)
        } else {
            return "must be an absolute http:// or https:// URL"
        }
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        let hostAndPort = authority.split(separator: "@", omittingEmptySubsequences: false).last ?? ""
        let host: Substring
        if hostAndPort.hasPrefix("[") {
            guard let close = hostAndPort.firstIndex(of: "]") else { return "has a malformed IPv6 host" }
            host = hostAndPort[hostAndPort.index(after: hostAndPort.startIndex)..<close]
            let afterHost = hostAndPort[hostAndPort.index(after: close)...]
            if let problem = portProblem(afterHost) { return problem }
        } else {
            let parts = hostAndPort.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            host = parts.first ?? ""
            if parts.count == 2, let problem = portProblem(":" + parts[1]) { return problem }
        }
        if host.isEmpty { return "must name a host" }
        return nil
    }

    private static func portProblem(_ suffix: Substring) -> String? {
        guard !suffix.isEmpty else { return nil }
        guard suffix.first == ":", let port = Int(suffix.dropFirst()), (1...65535).contains(port) else {
            return "has an invalid port"
        }
        return nil
    }

    /// Resolves defaults and checks the parameters of a face-swap task.
    public static func faceSwapParameters(_ params: FaceSwapParameters) -> Result<FaceSwapParameters, TaskError> {
        var resolved = params
        if let problem = urlProblem(params.sourceURL) {
            return .failure(TaskError(.invalidArgument, "params.source_url \(problem)"))
        }
        if let problem = urlProblem(params.targetURL) {
            return .failure(TaskError(.invalidArgument, "params.target_url \(problem)"))
        }
        if resolved.model.isEmpty { resolved.model = FaceSwapCatalog.defaultModel }
        if resolved.resolution.isEmpty { resolved.resolution = FaceSwapCatalog.defaultResolution }
        let sizes = FaceSwapCatalog.resolutions(for: resolved.model)
        if sizes.isEmpty {
            let known = FaceSwapCatalog.models.keys.sorted().joined(separator: ", ")
            return .failure(TaskError(.invalidArgument, "params.model '\(resolved.model)' is not a FaceFusion face-swapper model (one of: \(known))"))
        }
        if !sizes.contains(resolved.resolution) {
            return .failure(
                TaskError(
                    .invalidArgument,
                    "params.resolution '\(resolved.resolution)' is not supported by \(resolved.model) (one of: \(sizes.joined(separator: ", ")))"))
        }
        return .success(resolved)
    }
}
