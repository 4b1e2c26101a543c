// Swift values of proto/grpc/reflection/v1/reflection.proto (package grpc.reflection.v1).
// grpc.reflection.v1alpha declares the same messages with the same field numbers and types,
// so these values read and write the wire format of both services.
internal import CSwaplineProto

/// One question of a reflection stream (`grpc.reflection.v1.ServerReflectionRequest`).
public struct Grpc_Reflection_V1_ServerReflectionRequest: Sendable, Equatable {
    /// The `message_request` oneof.
    public enum MessageRequest: Sendable, Equatable {
        /// The file with this name, e.g. `swapline/v1/tasks.proto`.
        case fileByFilename(String)
        /// The file declaring this fully qualified symbol (service, method, message, field, enum...).
        case fileContainingSymbol(String)
        /// The file declaring extension `extensionNumber` of message `containingType`.
        case fileContainingExtension(containingType: String, extensionNumber: Int32)
        /// The numbers of every extension of this message type.
        case allExtensionNumbersOfType(String)
        /// The names of the services; the string is not looked at.
        case listServices(String)
    }

    public var host: String
    /// nil when the client set none of the oneof's fields.
    public var messageRequest: MessageRequest?

    public init(host: String = "", messageRequest: MessageRequest? = nil) {
        self.host = host
        self.messageRequest = messageRequest
    }
}

/// One answer of a reflection stream (`grpc.reflection.v1.ServerReflectionResponse`).
public struct Grpc_Reflection_V1_ServerReflectionResponse: Sendable, Equatable {
    /// The `message_response` oneof.
    public enum MessageResponse: Sendable, Equatable {
        /// Serialized `google.protobuf.FileDescriptorProto`s: the file asked for first, then
        /// those of its dependencies the stream has not been sent yet.
        case fileDescriptors([[UInt8]])
        case allExtensionNumbers(baseTypeName: String, extensionNumbers: [Int32])
        /// Fully qualified service names.
        case listServices([String])
        /// A gRPC status code and message (NOT_FOUND for an unknown file or symbol).
        case error(code: Int32, message: String)
    }

    public var validHost: String
    public var originalRequest: Grpc_Reflection_V1_ServerReflectionRequest?
    public var messageResponse: MessageResponse?

    public init(
        validHost: String = "", originalRequest: Grpc_Reflection_V1_ServerReflectionRequest? = nil,
        messageResponse: MessageResponse? = nil
    ) {
        self.validHost = validHost
        self.originalRequest = originalRequest
        self.messageResponse = messageResponse
    }
}

extension Grpc_Reflection_V1_ServerReflectionRequest: CBridged {
    // Names and symbols have no limit of their own in the protocol; a long one is answered
    // NOT_FOUND rather than ending the stream, so they get the generous free-text limit.
    init(c: Grpc__Reflection__V1__ServerReflectionRequest) throws(FieldDecodingError) {
        func text(_ pointer: UnsafePointer<CChar>?, _ field: String) throws(FieldDecodingError) -> String {
            try CField.string(pointer, field: field, maxBytes: MessageLimits.textBytes)
        }
        let request: MessageRequest?
        switch c.message_request_case {
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
            request = .fileByFilename(try text(c.file_by_filename, "file_by_filename"))
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
            request = .fileContainingSymbol(try text(c.file_containing_symbol, "file_containing_symbol"))
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
            let extensionRequest = c.file_containing_extension?.pointee
            request = .fileContainingExtension(
                containingType: try text(extensionRequest?.containing_type, "file_containing_extension.containing_type"),
                extensionNumber: extensionRequest?.extension_number ?? 0)
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
            request = .allExtensionNumbersOfType(try text(c.all_extension_numbers_of_type, "all_extension_numbers_of_type"))
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
            request = .listServices(try text(c.list_services, "list_services"))
        default:
            request = nil
        }
        self.init(host: try text(c.host, "host"), messageRequest: request)
    }

    func fill(_ c: inout Grpc__Reflection__V1__ServerReflectionRequest, arena: inout CArena) {
        c.host = arena.cString(host)
        switch messageRequest {
        case .fileByFilename(let name):
            c.message_request_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME
            c.file_by_filename = arena.cString(name)
        case .fileContainingSymbol(let symbol):
            c.message_request_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL
            c.file_containing_symbol = arena.cString(symbol)
        case .fileContainingExtension(let containingType, let extensionNumber):
            let extensionRequest = arena.newMessage(Grpc__Reflection__V1__ExtensionRequest.self)
            extensionRequest.pointee.containing_type = arena.cString(containingType)
            extensionRequest.pointee.extension_number = extensionNumber
            c.message_request_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION
            c.file_containing_extension = extensionRequest
        case .allExtensionNumbersOfType(let type):
            c.message_request_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE
            c.all_extension_numbers_of_type = arena.cString(type)
        case .listServices(let content):
            c.message_request_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES
            c.list_services = arena.cString(content)
        case nil:
            break
        }
    }
}

extension Grpc_Reflection_V1_ServerReflectionResponse: CBridged {
    // Read by clients (and tests); the server only writes responses. The repeated fields are
    // bounded by WireFieldCount's limit on the fields of one message.
    init(c: Grpc__Reflection__V1__ServerReflectionResponse) throws(FieldDecodingError) {
        let response: MessageResponse?
        switch c.message_response_case {
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE:
            let files = c.file_descriptor_response?.pointee
            response = .fileDescriptors(CField.byteFields(files?.n_file_descriptor_proto ?? 0, files?.file_descriptor_proto))
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE:
            let numbers = c.all_extension_numbers_response?.pointee
            response = .allExtensionNumbers(
                baseTypeName: try CField.string(numbers?.base_type_name, field: "all_extension_numbers_response.base_type_name"),
                extensionNumbers: CField.int32s(numbers?.n_extension_number ?? 0, numbers?.extension_number))
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE:
            let list = c.list_services_response?.pointee
            var names: [String] = []
            for service in CField.pointers(list?.n_service ?? 0, list?.service) {
                names.append(try CField.string(service.pointee.name, field: "list_services_response.service.name"))
            }
            response = .listServices(names)
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE:
            let error = c.error_response?.pointee
            response = .error(
                code: error?.error_code ?? 0,
                message: try CField.string(error?.error_message, field: "error_response.error_message"))
        default:
            response = nil
        }
        self.init(
            validHost: try CField.string(c.valid_host, field: "valid_host"),
            originalRequest: try CField.message(c.original_request, field: "original_request"),
            messageResponse: response)
    }

    func fill(_ c: inout Grpc__Reflection__V1__ServerReflectionResponse, arena: inout CArena) {
        c.valid_host = arena.cString(validHost)
        c.original_request = arena.message(originalRequest)
        switch messageResponse {
        case .fileDescriptors(let files):
            let body = arena.newMessage(Grpc__Reflection__V1__FileDescriptorResponse.self)
            (body.pointee.n_file_descriptor_proto, body.pointee.file_descriptor_proto) = arena.byteFields(files)
            c.message_response_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE
            c.file_descriptor_response = body
        case .allExtensionNumbers(let baseTypeName, let extensionNumbers):
            let body = arena.newMessage(Grpc__Reflection__V1__ExtensionNumberResponse.self)
            body.pointee.base_type_name = arena.cString(baseTypeName)
            (body.pointee.n_extension_number, body.pointee.extension_number) = arena.int32s(extensionNumbers)
            c.message_response_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE
            c.all_extension_numbers_response = body
        case .listServices(let names):
            let body = arena.newMessage(Grpc__Reflection__V1__ListServiceResponse.self)
            (body.pointee.n_service, body.pointee.service) = arena.pointerArray(names) { arena, name in
                let service = arena.newMessage(Grpc__Reflection__V1__ServiceResponse.self)
                service.pointee.name = arena.cString(name)
                return service
            }
            c.message_response_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE
            c.list_services_response = body
        case .error(let code, let message):
            let body = arena.newMessage(Grpc__Reflection__V1__ErrorResponse.self)
            body.pointee.error_code = code
            body.pointee.error_message = arena.cString(message)
            c.message_response_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE
            c.error_response = body
        case nil:
            break
        }
    }
}
