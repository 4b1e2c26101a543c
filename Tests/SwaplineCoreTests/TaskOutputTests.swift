import SwaplineCore
import Testing

@Suite struct TaskOutputTests {
    static let outputs = ["jpg": "https://a/r.jpg", "gif": "https://b/r.gif", "webp": "https://b/r.webp"]

    @Test func oneProviderHoldsEveryOutput() {
        #expect(TaskOutput(outputs: Self.outputs, storageProvider: "cfimages").outputProviders
            == ["jpg": "cfimages", "gif": "cfimages", "webp": "cfimages"])
    }

    @Test func theFallbackListIsReadPerOutput() {
        #expect(TaskOutput(outputs: Self.outputs, storageProvider: "gif:local,jpg:cfimages,webp:s3").outputProviders
            == ["gif": "local", "jpg": "cfimages", "webp": "s3"])
    }

    @Test func unknownOrOnlyListedProvidersGiveNone() {
        #expect(TaskOutput(outputs: Self.outputs, storageProvider: "").outputProviders.isEmpty)
        #expect(TaskOutput(outputs: Self.outputs, storageProvider: "local,s3").outputProviders.isEmpty)
        #expect(TaskOutput(outputs: Self.outputs, storageProvider: "gif:local,jpg").outputProviders.isEmpty)
    }
}
