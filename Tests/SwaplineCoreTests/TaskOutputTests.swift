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

    @Test func aLongPerOutputListIsStoredWholeAndShortenedOnlyForTheWire() {
        let providers = Dictionary(uniqueKeysWithValues: (0..<20).map { ("format\($0)", $0 == 0 ? "local" : "s3") })
        let output = TaskOutput(
            outputs: providers.mapValues { "https://cdn.example.com/\($0)" }, storageProvider: TaskOutput.storageProviderList(of: providers))
        #expect(output.storageProvider.utf8.count > 128)
        #expect(output.outputProviders == providers)
        #expect(output.storageProviderSummary(fittingIn: 128) == "local,s3")
        #expect(output.storageProviderSummary(fittingIn: 4) == "")
        #expect(TaskOutput(storageProvider: "gif:local,jpg:s3").storageProviderSummary(fittingIn: 128) == "gif:local,jpg:s3")
        #expect(TaskOutput.storageProviderList(of: ["jpg": "s3", "gif": "s3"]) == "s3")
        #expect(TaskOutput.storageProviderList(of: [:]) == "")
    }
}
