import Testing
@testable import SwaplineCore

@Suite struct TaskValidationTests {
    @Test(arguments: [
        "http://example.com", "https://example.com/a.jpg?x=1#y", "http://[2606:4700::1]:80/x", "HTTPS://EXAMPLE.COM/",
    ])
    func acceptsAbsoluteHTTPURLs(url: String) {
        #expect(TaskValidation.urlProblem(url) == nil)
    }

    @Test(arguments: [
        "", "example.com/a.jpg", "ftp://example.com/a", "http://", "http:///path", "https://host:99999/", "http://exa mple.com",
        "http://[::1/x", "javascript:alert(1)", "https://user@host:8443/p", "http://[::1]:80/x", "http://127.0.0.1/",
    ])
    func rejectsEverythingElse(url: String) {
        #expect(TaskValidation.urlProblem(url) != nil)
    }

    @Test func theConfiguredPolicyDecides() {
        let params = FaceSwapParameters(sourceURL: "http://127.0.0.1:8000/s.jpg", targetURL: "https://example.com/t.jpg", resolution: "", model: "")
        guard case .failure(let error) = TaskValidation.faceSwapParameters(params) else {
            Issue.record("a loopback URL passed the default policy")
            return
        }
        #expect(error.message.hasPrefix("params.source_url must not point to a private or special-purpose address"))
        let relaxed = URLPolicy(allowsPrivateAddresses: true)
        #expect((try? TaskValidation.faceSwapParameters(params, policy: relaxed).get()) != nil)
    }

    @Test func resolutionsFollowTheModelsNativeSize() {
        #expect(FaceSwapCatalog.resolutions(for: "inswapper_128_fp16") == ["128x128", "256x256", "384x384", "512x512", "768x768", "1024x1024"])
        #expect(FaceSwapCatalog.resolutions(for: "simswap_unofficial_512") == ["512x512", "768x768", "1024x1024"])
        #expect(FaceSwapCatalog.resolutions(for: "blendswap_256").contains("384x384"))
        #expect(FaceSwapCatalog.resolutions(for: "hyperswap_1a_256").first == "256x256")
        #expect(FaceSwapCatalog.resolutions(for: "unknown").isEmpty)
    }
}
