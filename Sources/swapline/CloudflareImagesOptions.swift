import ArgumentParser
import Foundation
import SwaplineWorker

/// Settings of `cfimages:ACCOUNT_ID` result storage, for `swapline worker` and `swapline serve`.
struct CloudflareImagesOptions: ParsableArguments {
    @Option(help: "Cloudflare API base URL of cfimages: storage.")
    var cfImagesApiBase = "https://api.cloudflare.com/client/v4"

    @Option(help: "File holding the Cloudflare API token (Images: Edit) of cfimages: storage (default: the CLOUDFLARE_API_TOKEN environment variable).")
    var cfImagesTokenFile: String?

    @Option(help: "Cloudflare Images variant whose delivery URL is put in the result.")
    var cfImagesVariant = "public"

    @Option(help: "Tries of each Cloudflare Images request on 5xx, 429 and connection failures.")
    var cfImagesMaxAttempts = 4

    @Option(help: "Wait before the first retry of a Cloudflare Images request, in ms; it doubles per try.")
    var cfImagesRetryBaseMs: Int64 = 500

    func validate() throws {
        try FlagRange.check(cfImagesMaxAttempts, "--cf-images-max-attempts", in: 1...20)
        try FlagRange.checkMilliseconds(cfImagesRetryBaseMs, "--cf-images-retry-base-ms", allowZero: true)
        guard cfImagesApiBase.hasPrefix("http://") || cfImagesApiBase.hasPrefix("https://") else {
            throw ValidationError("--cf-images-api-base must be an http:// or https:// URL, got \(cfImagesApiBase)")
        }
        guard !cfImagesVariant.isEmpty, !cfImagesVariant.contains("/") else {
            throw ValidationError("--cf-images-variant must be a variant name, got \"\(cfImagesVariant)\"")
        }
    }

    /// The settings for `cfimages:` specs, the token read from its file or the environment; nil
    /// when no spec needs them.
    func settings(for specs: [String], environment: [String: String]) throws -> CloudflareImagesSettings? {
        guard specs.contains(where: { $0.hasPrefix("cfimages:") }) else { return nil }
        let token: String
        if let cfImagesTokenFile {
            guard let contents = try? String(contentsOfFile: cfImagesTokenFile, encoding: .utf8) else {
                throw ValidationError("Cloudflare Images: cannot read the token file \(cfImagesTokenFile)")
            }
            token = contents.trimmingCharacters(in: .whitespacesAndNewlines)
        } else {
            token = environment["CLOUDFLARE_API_TOKEN"] ?? ""
        }
        guard !token.isEmpty else {
            throw ValidationError("Cloudflare Images: no API token (set CLOUDFLARE_API_TOKEN or --cf-images-token-file)")
        }
        return CloudflareImagesSettings(
            apiToken: token, apiBase: cfImagesApiBase, variant: cfImagesVariant,
            retry: RetryPolicy(maxAttempts: cfImagesMaxAttempts, baseDelay: .milliseconds(cfImagesRetryBaseMs)))
    }
}
