import NIOCore
import NIOEmbedded
import RPCCore
import SwaplineMessages
import SwaplineTestKit
import Testing
@testable import SwaplineServer

/// Server reflection over the descriptors compiled in from proto/.
@Suite struct ReflectionServiceTests {
    let index: ProtoDescriptorIndex
    let service: ReflectionService

    init() throws {
        index = try ProtoDescriptorIndex(serializedSet: ProtoDescriptorSet.serialized())
        service = ReflectionService(index: index, exposedServices: [Swapline_V1_TaskService.name, Grpc_Health_V1_Health.name])
    }

    private func ask(_ request: Grpc_Reflection_V1_ServerReflectionRequest.MessageRequest, sent: inout Set<String>)
        -> Grpc_Reflection_V1_ServerReflectionResponse.MessageResponse?
    {
        service.answer(Grpc_Reflection_V1_ServerReflectionRequest(host: "h", messageRequest: request), sent: &sent).messageResponse
    }

    /// The names of the FileDescriptorProtos of a response (field 1 of each).
    private func fileNames(_ response: Grpc_Reflection_V1_ServerReflectionResponse.MessageResponse?) throws -> [String] {
        guard case .fileDescriptors(let files)? = response else { throw ProtoWireError(description: "not a file response: \(String(describing: response))") }
        return try files.map { file in
            var name = ""
            try ProtoWireFields.forEachLengthDelimited(in: file[...]) { number, value in
                if number == 1 { name = try ProtoWireFields.string(value) }
            }
            return name
        }
    }

    @Test func everyProtoFileIsIndexed() {
        #expect(index.fileNames == [
            "grpc/health/v1/health.proto", "grpc/reflection/v1/reflection.proto", "grpc/reflection/v1alpha/reflection.proto",
            "grpc/testing/empty.proto", "grpc/testing/messages.proto", "grpc/testing/test.proto", "swapline/v1/tasks.proto",
        ])
    }

    @Test(arguments: [
        ("swapline.v1.TaskService", "swapline/v1/tasks.proto"),
        ("swapline.v1.TaskService.CreateTask", "swapline/v1/tasks.proto"),
        ("swapline.v1.Task", "swapline/v1/tasks.proto"),
        ("swapline.v1.TaskStatus", "swapline/v1/tasks.proto"),
        ("swapline.v1.TASK_STATUS_PENDING", "swapline/v1/tasks.proto"),
        ("swapline.v1.FaceSwapParams.OptionsEntry", "swapline/v1/tasks.proto"),
        ("swapline.v1.Task.task_id", "swapline/v1/tasks.proto"),
        ("grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"),
        ("grpc.health.v1.HealthCheckResponse.SERVING", "grpc/health/v1/health.proto"),
        ("grpc.reflection.v1alpha.ServerReflection.ServerReflectionInfo", "grpc/reflection/v1alpha/reflection.proto"),
        ("grpc.testing.TestService.FullDuplexCall", "grpc/testing/test.proto"),
    ])
    func symbolsResolveToTheirFile(symbol: String, file: String) {
        #expect(index.fileName(containing: symbol) == file)
    }

    @Test func aFileComesWithItsDependenciesOncePerStream() throws {
        var sent: Set<String> = []
        let first = try fileNames(ask(.fileContainingSymbol("grpc.testing.TestService"), sent: &sent))
        #expect(first.first == "grpc/testing/test.proto")
        #expect(Set(first) == ["grpc/testing/test.proto", "grpc/testing/empty.proto", "grpc/testing/messages.proto"])
        // Asked again on the same stream: the file itself, without the dependencies sent before.
        #expect(try fileNames(ask(.fileByFilename("grpc/testing/test.proto"), sent: &sent)) == ["grpc/testing/test.proto"])
        #expect(try fileNames(ask(.fileByFilename("grpc/testing/empty.proto"), sent: &sent)) == ["grpc/testing/empty.proto"])
    }

    @Test func unknownNamesAreNotFound() {
        var sent: Set<String> = []
        for request: Grpc_Reflection_V1_ServerReflectionRequest.MessageRequest in [
            .fileContainingSymbol("swapline.v1.NoSuchThing"), .fileByFilename("nope.proto"),
            .fileContainingExtension(containingType: "swapline.v1.Task", extensionNumber: 100),
            .allExtensionNumbersOfType("swapline.v1.NoSuchThing"),
        ] {
            guard case .error(let code, let message)? = ask(request, sent: &sent) else {
                Issue.record("\(request) was not answered with an error")
                continue
            }
            #expect(code == Int32(GRPCStatus.Code.notFound.rawValue) && !message.isEmpty)
        }
        #expect(sent.isEmpty)
    }

    @Test func knownMessagesHaveNoExtensions() {
        var sent: Set<String> = []
        #expect(ask(.allExtensionNumbersOfType("swapline.v1.Task"), sent: &sent) == .allExtensionNumbers(baseTypeName: "swapline.v1.Task", extensionNumbers: []))
    }

    @Test func listServicesOverTheV1alphaStream() throws {
        var router = RPCRouter()
        service.register(in: &router)
        let writer = RecordingStreamWriter(loop: EmbeddedEventLoop())
        let request = Grpc_Reflection_V1_ServerReflectionRequest(messageRequest: .listServices("*"))
        sendRequest(request.serializedBuffer(), path: "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", router: router, writer: writer)
        let response = try Grpc_Reflection_V1_ServerReflectionResponse(protobufBytes: try #require(writer.messages.first))
        #expect(response.messageResponse == .listServices([Grpc_Health_V1_Health.name, Swapline_V1_TaskService.name]))
        #expect(response.originalRequest == request)
        #expect(writer.statusFields["grpc-status"] == "0")
    }

    @Test func anUndecodableRequestEndsTheStreamInvalidArgument() {
        var router = RPCRouter()
        service.register(in: &router)
        let writer = RecordingStreamWriter(loop: EmbeddedEventLoop())
        sendRequest(ByteBuffer(bytes: [0x0A, 0xFF]), path: "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", router: router, writer: writer)
        #expect(writer.statusFields["grpc-status"] == "3")
    }
}
