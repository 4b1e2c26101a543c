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
    /// `nil` when `policy` accepts `value` as a URL to fetch (docs/security.md); otherwise why not.
    public static func urlProblem(_ value: String, policy: URLPolicy = URLPolicy()) -> String? {
        switch policy.check(value) {
        case .success: nil
        case .failure(let violation): violation.reason
        }
    }

    /// Resolves defaults and checks the parameters of a face-swap task.
    public static func faceSwapParameters(_ params: FaceSwapParameters, policy: URLPolicy = URLPolicy()) -> Result<FaceSwapParameters, TaskError> {
        var resolved = params
        if let problem = urlProblem(params.sourceURL, policy: policy) {
            return .failure(TaskError(.invalidArgument, "params.source_url \(problem)"))
        }
        if let problem = urlProblem(params.targetURL, policy: policy) {
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
