/// The files of a serialized `google.protobuf.FileDescriptorSet` and the fully qualified
/// symbols each declares, for answering gRPC reflection: built once at start from
/// `ProtoDescriptorSet`, then only read.
struct ProtoDescriptorIndex: Sendable {
    struct File: Sendable {
        var name: String
        /// The serialized `FileDescriptorProto`, as reflection sends it.
        var serialized: [UInt8]
        /// Names of the files it imports.
        var dependencies: [String]
    }

    private var files: [String: File] = [:]
    /// Fully qualified symbol -> name of the file declaring it.
    private var fileBySymbol: [String: String] = [:]

    var fileNames: Set<String> { Set(files.keys) }
    var symbols: Set<String> { Set(fileBySymbol.keys) }

    // Field numbers of descriptor.proto that the index reads.
    private enum FileSetField { static let file = 1 }
    private enum FileField { static let name = 1, packageName = 2, dependency = 3, message = 4, `enum` = 5, service = 6, `extension` = 7 }
    private enum MessageField { static let field = 2, nested = 3, `enum` = 4, `extension` = 6, oneof = 8 }
    private enum EnumField { static let value = 2 }
    private enum ServiceField { static let method = 2 }
    /// Every descriptor that declares a symbol has its name in field 1.
    private static let nameField = 1

    init(serializedSet: [UInt8]) throws {
        try ProtoWireFields.forEachLengthDelimited(in: serializedSet[...]) { number, file in
            if number == FileSetField.file { try add(file: file) }
        }
    }

    func file(named name: String) -> File? { files[name] }

    func fileName(containing symbol: String) -> String? { fileBySymbol[symbol] }

    /// The file named `name` followed by every file it depends on, directly or not, leaving out
    /// the dependencies in `skipping` (files a reflection stream has already sent).
    func fileWithDependencies(_ name: String, skipping: Set<String>) -> [File] {
        guard let file = files[name] else { return [] }
        var result = [file]
        var seen = skipping.union([name])
        var pending = file.dependencies
        while let next = pending.popLast() {
            guard !seen.contains(next), let dependency = files[next] else { continue }
            seen.insert(next)
            result.append(dependency)
            pending.append(contentsOf: dependency.dependencies)
        }
        return result
    }

    private mutating func add(file bytes: ArraySlice<UInt8>) throws {
        var name = "", packageName = "", dependencies: [String] = []
        var declarations: [(Int, ArraySlice<UInt8>)] = []
        try ProtoWireFields.forEachLengthDelimited(in: bytes) { number, value in
            switch number {
            case FileField.name: name = try ProtoWireFields.string(value)
            case FileField.packageName: packageName = try ProtoWireFields.string(value)
            case FileField.dependency: dependencies.append(try ProtoWireFields.string(value))
            default: declarations.append((number, value))
            }
        }
        guard files[name] == nil else { throw ProtoWireError(description: "file \(name) occurs twice") }
        files[name] = File(name: name, serialized: Array(bytes), dependencies: dependencies)
        let scope = packageName.isEmpty ? "" : packageName + "."
        for (number, value) in declarations {
            switch number {
            case FileField.message: try addMessage(value, scope: scope, file: name)
            case FileField.enum: try addEnum(value, scope: scope, file: name)
            case FileField.service: try addService(value, scope: scope, file: name)
            case FileField.extension: try addMember(value, scope: scope, file: name)
            default: break
            }
        }
    }

    private mutating func addMessage(_ bytes: ArraySlice<UInt8>, scope: String, file: String) throws {
        let fullName = scope + (try Self.name(of: bytes))
        fileBySymbol[fullName] = file
        let inner = fullName + "."
        try ProtoWireFields.forEachLengthDelimited(in: bytes) { number, value in
            switch number {
            case MessageField.field, MessageField.extension, MessageField.oneof: try addMember(value, scope: inner, file: file)
            case MessageField.nested: try addMessage(value, scope: inner, file: file)
            case MessageField.enum: try addEnum(value, scope: inner, file: file)
            default: break
            }
        }
    }

    /// An enum and its values, which (as in C++) are scoped beside the enum, not inside it.
    private mutating func addEnum(_ bytes: ArraySlice<UInt8>, scope: String, file: String) throws {
        fileBySymbol[scope + (try Self.name(of: bytes))] = file
        try ProtoWireFields.forEachLengthDelimited(in: bytes) { number, value in
            if number == EnumField.value { try addMember(value, scope: scope, file: file) }
        }
    }

    private mutating func addService(_ bytes: ArraySlice<UInt8>, scope: String, file: String) throws {
        let fullName = scope + (try Self.name(of: bytes))
        fileBySymbol[fullName] = file
        try ProtoWireFields.forEachLengthDelimited(in: bytes) { number, value in
            if number == ServiceField.method { try addMember(value, scope: fullName + ".", file: file) }
        }
    }

    /// A field, extension, oneof, enum value or method: a name and nothing inside it to index.
    private mutating func addMember(_ bytes: ArraySlice<UInt8>, scope: String, file: String) throws {
        fileBySymbol[scope + (try Self.name(of: bytes))] = file
    }

    private static func name(of bytes: ArraySlice<UInt8>) throws -> String {
        var name: String?
        try ProtoWireFields.forEachLengthDelimited(in: bytes) { number, value in
            if number == nameField { name = try ProtoWireFields.string(value) }
        }
        guard let name, !name.isEmpty else { throw ProtoWireError(description: "a declaration has no name") }
        return name
    }
}
