import RPCCore
import Synchronization
import SwaplineMessages

/// gRPC server reflection (grpc.reflection.v1 and its older twin v1alpha, one handler for
/// both): lets grpcurl, Postman and grpcio-reflection list the exposed services and fetch the
/// descriptors of their files, compiled in from proto/ (`ProtoDescriptorSet`). Open to every
/// caller, like health: it reveals only the public contract (docs/security.md).
struct ReflectionService {
    static let names = [Grpc_Reflection_V1_ServerReflection.name, Grpc_Reflection_V1alpha_ServerReflection.name]

    private let index: ProtoDescriptorIndex
    /// What `list_services` answers, sorted.
    private let exposedServices: [String]

    /// `exposedServices`: every service the server routes, including health and reflection.
    init(index: ProtoDescriptorIndex, exposedServices: Set<String>) {
        self.index = index
        self.exposedServices = exposedServices.sorted()
    }

    /// Over the descriptors compiled in from proto/; throws when they do not parse.
    init(exposedServices: Set<String>) throws {
        self.init(index: try ProtoDescriptorIndex(serializedSet: ProtoDescriptorSet.serialized()), exposedServices: exposedServices)
    }

    func register(in router: inout RPCRouter) {
        for method in [Grpc_Reflection_V1_ServerReflection.serverReflectionInfo, Grpc_Reflection_V1alpha_ServerReflection.serverReflectionInfo] {
            router.register(method, handler: .requestStream { [self] call in
                // The files this stream has sent: a dependency goes out once per stream.
                let sent = Mutex<Set<String>>([])
                return RequestObserver(
                    onMessage: { bytes in
                        do {
                            let request = try Grpc_Reflection_V1_ServerReflectionRequest(protobufBytes: bytes)
                            call.send(sent.withLock { answer(request, sent: &$0) })
                        } catch {
                            call.finish(GRPCStatus(.invalidArgument, "cannot decode the ServerReflectionRequest: \(error)"))
                        }
                    },
                    onEnd: { call.finish(.ok) })
            })
        }
    }

    /// The response to one request of a stream that has already sent the files in `sent`.
    func answer(_ request: Grpc_Reflection_V1_ServerReflectionRequest, sent: inout Set<String>) -> Grpc_Reflection_V1_ServerReflectionResponse {
        var response = Grpc_Reflection_V1_ServerReflectionResponse(validHost: request.host, originalRequest: request)
        switch request.messageRequest {
        case .listServices:
            response.messageResponse = .listServices(exposedServices)
        case .fileByFilename(let name):
            response.messageResponse = files(name, sent: &sent) ?? notFound("no file named '\(name)'")
        case .fileContainingSymbol(let symbol):
            response.messageResponse =
                index.fileName(containing: symbol).flatMap { files($0, sent: &sent) } ?? notFound("no symbol named '\(symbol)'")
        case .fileContainingExtension(let containingType, let number):
            response.messageResponse = notFound("no extension \(number) of '\(containingType)': the server's protos declare no extensions")
        case .allExtensionNumbersOfType(let type):
            response.messageResponse =
                index.fileName(containing: type) == nil
                ? notFound("no message type named '\(type)'") : .allExtensionNumbers(baseTypeName: type, extensionNumbers: [])
        case nil:
            response.messageResponse = .error(
                code: Int32(GRPCStatus.Code.invalidArgument.rawValue), message: "the request sets none of the message_request fields")
        }
        return response
    }

    /// The file `name` and those of its dependencies not sent yet; the file itself always
    /// goes out, since the client asked for it.
    private func files(_ name: String, sent: inout Set<String>) -> Grpc_Reflection_V1_ServerReflectionResponse.MessageResponse? {
        let files = index.fileWithDependencies(name, skipping: sent)
        guard !files.isEmpty else { return nil }
        sent.formUnion(files.map(\.name))
        return .fileDescriptors(files.map(\.serialized))
    }

    private func notFound(_ message: String) -> Grpc_Reflection_V1_ServerReflectionResponse.MessageResponse {
        .error(code: Int32(GRPCStatus.Code.notFound.rawValue), message: message)
    }
}
