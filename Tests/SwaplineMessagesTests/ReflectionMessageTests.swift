import SwaplineMessages
import Testing

/// grpc.reflection.v1 messages: every case of both oneofs survives encoding and decoding.
@Suite struct ReflectionMessageTests {
    typealias Request = Grpc_Reflection_V1_ServerReflectionRequest
    typealias Response = Grpc_Reflection_V1_ServerReflectionResponse

    @Test(arguments: [
        Request(host: unicode), Request(messageRequest: .fileByFilename("swapline/v1/tasks.proto")),
        Request(messageRequest: .fileContainingSymbol("swapline.v1.Task")),
        Request(messageRequest: .fileContainingExtension(containingType: "swapline.v1.Task", extensionNumber: 1_000)),
        Request(messageRequest: .allExtensionNumbersOfType("swapline.v1.Task")), Request(host: "h", messageRequest: .listServices("")),
    ])
    func requests(request: Request) throws {
        #expect(try roundTrip(request) == request)
    }

    @Test(arguments: [
        Response(validHost: "h", originalRequest: Request(messageRequest: .listServices("*")), messageResponse: .listServices(["a.B", unicode])),
        Response(messageResponse: .fileDescriptors([[1, 2, 3], [], [0, 255]])),
        Response(messageResponse: .allExtensionNumbers(baseTypeName: "swapline.v1.Task", extensionNumbers: [100, -1, .max])),
        Response(messageResponse: .error(code: 5, message: "no symbol named 'x'")), Response(),
    ])
    func responses(response: Response) throws {
        #expect(try roundTrip(response) == response)
    }
}
