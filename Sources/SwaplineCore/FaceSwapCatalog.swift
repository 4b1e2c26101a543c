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
    /// Works on the UTF-8 bytes in one pass: it runs for every CreateTask.
    public static func urlProblem(_ value: String) -> String? {
        urlProblem(bytes: value.utf8.span)
    }

    private static func urlProblem(bytes: Span<UInt8>) -> String? {
        if bytes.isEmpty { return "is required" }
        if bytes.count > maxURLLength { return "is longer than \(maxURLLength) bytes" }
        for index in bytes.indices where bytes[index] <= 0x20 || bytes[index] == 0x7F {
            return "must not contain spaces or control characters"
        }
        let authorityStart: Int
        if hasPrefixIgnoringCase(bytes, "https://") {
            authorityStart = 8
        } else if hasPrefixIgnoringCase(bytes, "http://") {
            authorityStart = 7
        } else {
            return "must be an absolute http:// or https:// URL"
        }
        var authorityEnd = authorityStart
        while authorityEnd < bytes.count, ![UInt8(ascii: "/"), UInt8(ascii: "?"), UInt8(ascii: "#")].contains(bytes[authorityEnd]) {
            authorityEnd += 1
        }
        // Userinfo ends at the last "@" of the authority.
        var hostStart = authorityStart
        for index in authorityStart..<authorityEnd where bytes[index] == UInt8(ascii: "@") { hostStart = index + 1 }
        let hostPort = bytes.extracting(hostStart..<authorityEnd)
        let hostLength: Int
        var portStart: Int?
        if !hostPort.isEmpty, hostPort[0] == UInt8(ascii: "[") {
            guard let close = firstIndex(of: UInt8(ascii: "]"), in: hostPort) else { return "has a malformed IPv6 host" }
            hostLength = close - 1
            if close + 1 < hostPort.count {
                guard hostPort[close + 1] == UInt8(ascii: ":") else { return "has an invalid port" }
                portStart = close + 2
            }
        } else {
            hostLength = firstIndex(of: UInt8(ascii: ":"), in: hostPort) ?? hostPort.count
            if hostLength < hostPort.count { portStart = hostLength + 1 }
        }
        if let portStart, !isValidPort(hostPort.extracting(portStart..<hostPort.count)) {
            return "has an invalid port"
        }
        if hostLength <= 0 { return "must name a host" }
        return nil
    }

    private static func hasPrefixIgnoringCase(_ bytes: Span<UInt8>, _ prefix: String) -> Bool {
        var index = 0
        for expected in prefix.utf8 {
            guard index < bytes.count else { return false }
            let byte = bytes[index]
            let lower = (byte >= 0x41 && byte <= 0x5A) ? byte + 0x20 : byte
            if lower != expected { return false }
            index += 1
        }
        return true
    }

    private static func firstIndex(of byte: UInt8, in bytes: Span<UInt8>) -> Int? {
        for index in bytes.indices where bytes[index] == byte { return index }
        return nil
    }

    private static func isValidPort(_ digits: Span<UInt8>) -> Bool {
        guard !digits.isEmpty, digits.count <= 5 else { return false }
        var port = 0
        for index in digits.indices {
            let byte = digits[index]
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return false }
            port = port * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return (1...65535).contains(port)
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
