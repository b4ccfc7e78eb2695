public import Foundation
public import MoatProto
public import MoatRPC
import SwiftProtobuf

/// gRPC server reflection (`grpc.reflection.v1` and `v1alpha`, whose
/// messages are the same on the wire) over a descriptor set: what
/// `grpcurl -unix ... list|describe` and reflection clients ask.
///
/// Answers one request at a time; ``GRPCStreamHandler`` runs the
/// bidirectional stream. Immutable once built, so one instance serves every
/// connection. Access is public: it reveals the schema (the files under
/// proto/, comments included) and nothing of any tenant, user or session.
public final class GRPCReflection: Sendable {
    /// The service names, v1 first.
    public static let serviceNames = ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]
    /// The stream's path under both names.
    public static let paths: Set<String> = Set(serviceNames.map { "/\($0)/ServerReflectionInfo" })

    /// A descriptor set that does not parse.
    public struct InvalidDescriptorSet: Error, CustomStringConvertible {
        public let description: String
    }

    private struct File: Sendable {
        /// The FileDescriptorProto exactly as protoc serialized it.
        var serialized: Data
        var dependencies: [String]
    }

    /// File name → file.
    private let files: [String: File]
    /// Fully qualified symbol (no leading dot) → the name of its file.
    private let symbols: [String: String]
    /// Message types (fully qualified).
    private let messageTypes: Set<String>
    /// Extended type → extension number → the name of the extension's file.
    private let extensions: [String: [Int32: String]]
    /// Services served, sorted.
    public let services: [String]

    /// Indexes a serialized `google.protobuf.FileDescriptorSet`.
    ///
    /// - Parameter services: the services the server answers (listed by
    ///   `list_services`; the reflection services are added).
    public init(descriptorSet: Data, services: some Sequence<String>) throws {
        var files: [String: File] = [:]
        var symbols: [String: String] = [:]
        var messageTypes: Set<String> = []
        var extensions: [String: [Int32: String]] = [:]
        for serialized in try Self.fileMessages(descriptorSet) {
            let file: Google_Protobuf_FileDescriptorProto
            do {
                file = try Google_Protobuf_FileDescriptorProto(serializedBytes: serialized)
            } catch {
                throw InvalidDescriptorSet(description: "a file of the descriptor set does not decode: \(error)")
            }
            guard files[file.name] == nil else {
                throw InvalidDescriptorSet(description: "\(file.name) is in the descriptor set twice")
            }
            files[file.name] = File(serialized: serialized, dependencies: file.dependency)
            let name = file.name
            let scope = file.package.isEmpty ? "" : file.package + "."
            func add(_ symbol: String) { symbols[symbol] = symbols[symbol] ?? name }
            func addExtensions(_ fields: [Google_Protobuf_FieldDescriptorProto], in scope: String) {
                for field in fields {
                    add(scope + field.name)
                    let extendee = field.extendee.hasPrefix(".") ? String(field.extendee.dropFirst()) : field.extendee
                    extensions[extendee, default: [:]][field.number] = name
                }
            }
            // Enum values live in the scope that holds their enum (protobuf's
            // C++ scoping rule): grpc.health.v1.HealthCheckResponse.SERVING.
            func addEnums(_ enums: [Google_Protobuf_EnumDescriptorProto], in scope: String) {
                for type in enums {
                    add(scope + type.name)
                    for value in type.value {
                        add(scope + value.name)
                    }
                }
            }
            func addMessages(_ messages: [Google_Protobuf_DescriptorProto], in scope: String) {
                for message in messages {
                    let full = scope + message.name
                    add(full)
                    messageTypes.insert(full)
                    for field in message.field { add(full + "." + field.name) }
                    for oneof in message.oneofDecl { add(full + "." + oneof.name) }
                    addEnums(message.enumType, in: full + ".")
                    addExtensions(message.extension, in: full + ".")
                    addMessages(message.nestedType, in: full + ".")
                }
            }
            addMessages(file.messageType, in: scope)
            addEnums(file.enumType, in: scope)
            addExtensions(file.extension, in: scope)
            for service in file.service {
                add(scope + service.name)
                for method in service.method { add(scope + service.name + "." + method.name) }
            }
        }
        for (name, file) in files {
            for dependency in file.dependencies where files[dependency] == nil {
                throw InvalidDescriptorSet(description: "\(name) imports \(dependency), which the set lacks")
            }
        }
        self.files = files
        self.symbols = symbols
        self.messageTypes = messageTypes
        self.extensions = extensions
        self.services = Set(services).union(Self.serviceNames).sorted()
    }

    /// The raw `file` entries (field 1) of a FileDescriptorSet.
    private static func fileMessages(_ set: Data) throws -> [Data] {
        var bytes = set[...]
        var messages: [Data] = []
        func varint() throws -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while let byte = bytes.popFirst() {
                value |= UInt64(byte & 0x7F) << shift
                if byte < 0x80 { return value }
                shift += 7
                if shift > 63 { break }
            }
            throw InvalidDescriptorSet(description: "truncated or overlong varint")
        }
        while !bytes.isEmpty {
            let tag = try varint()
            guard tag == (1 << 3 | 2) else {
                throw InvalidDescriptorSet(description: "unexpected field \(tag >> 3) (wire type \(tag & 7))")
            }
            let length = try varint()
            guard length <= UInt64(bytes.count) else { throw InvalidDescriptorSet(description: "truncated file entry") }
            let end = bytes.startIndex + Int(length)
            messages.append(Data(bytes[bytes.startIndex..<end]))
            bytes = bytes[end...]
        }
        return messages
    }

    /// The served descriptor files' names, sorted.
    public var fileNames: [String] { files.keys.sorted() }

    /// The answer to one request of a stream. `sent` holds the files this
    /// stream has been sent already: a file answer carries the asked file and
    /// those of its transitive imports not sent yet.
    public func answer(
        _ request: Grpc_Reflection_V1_ServerReflectionRequest, sent: inout Set<String>
    ) -> Grpc_Reflection_V1_ServerReflectionResponse {
        var response = Grpc_Reflection_V1_ServerReflectionResponse()
        response.validHost = request.host
        response.originalRequest = request
        switch request.messageRequest {
        case .fileByFilename(let name):
            if files[name] != nil {
                response.fileDescriptorResponse = fileAnswer(name, sent: &sent)
            } else {
                response.errorResponse = Self.error(.notFound, "no file \(Self.quoted(name))")
            }
        case .fileContainingSymbol(let symbol):
            let bare = symbol.hasPrefix(".") ? String(symbol.dropFirst()) : symbol
            if let name = symbols[bare] {
                response.fileDescriptorResponse = fileAnswer(name, sent: &sent)
            } else {
                response.errorResponse = Self.error(.notFound, "no symbol \(Self.quoted(symbol))")
            }
        case .fileContainingExtension(let asked):
            let type = asked.containingType.hasPrefix(".") ? String(asked.containingType.dropFirst()) : asked.containingType
            if let name = extensions[type]?[asked.extensionNumber] {
                response.fileDescriptorResponse = fileAnswer(name, sent: &sent)
            } else {
                response.errorResponse = Self.error(
                    .notFound, "no extension \(asked.extensionNumber) of \(Self.quoted(asked.containingType))")
            }
        case .allExtensionNumbersOfType(let type):
            let bare = type.hasPrefix(".") ? String(type.dropFirst()) : type
            if messageTypes.contains(bare) {
                var numbers = Grpc_Reflection_V1_ExtensionNumberResponse()
                numbers.baseTypeName = bare
                numbers.extensionNumber = (extensions[bare] ?? [:]).keys.sorted()
                response.allExtensionNumbersResponse = numbers
            } else {
                response.errorResponse = Self.error(.notFound, "no message type \(Self.quoted(type))")
            }
        case .listServices:
            var list = Grpc_Reflection_V1_ListServiceResponse()
            list.service = services.map { name in
                var service = Grpc_Reflection_V1_ServiceResponse()
                service.name = name
                return service
            }
            response.listServicesResponse = list
        case nil:
            response.errorResponse = Self.error(
                .invalidArgument,
                "the request names none of file_by_filename, file_containing_symbol, file_containing_extension, all_extension_numbers_of_type, list_services"
            )
        }
        return response
    }

    /// The file, then its imports (breadth first) not sent on this stream.
    private func fileAnswer(_ name: String, sent: inout Set<String>) -> Grpc_Reflection_V1_FileDescriptorResponse {
        var answer = Grpc_Reflection_V1_FileDescriptorResponse()
        var queue = [name]
        var index = 0
        var queued: Set<String> = [name]
        while index < queue.count {
            let current = queue[index]
            index += 1
            guard let file = files[current] else { continue }
            if index == 1 || !sent.contains(current) {
                answer.fileDescriptorProto.append(file.serialized)
                sent.insert(current)
            }
            for dependency in file.dependencies where queued.insert(dependency).inserted {
                queue.append(dependency)
            }
        }
        return answer
    }

    private static func error(_ code: Code, _ message: String) -> Grpc_Reflection_V1_ErrorResponse {
        var error = Grpc_Reflection_V1_ErrorResponse()
        error.errorCode = Int32(code.rawValue)
        error.errorMessage = message
        return error
    }

    /// A name from the client, bounded and printable, for a message.
    private static func quoted(_ name: String) -> String {
        let scalars = name.unicodeScalars
        let clipped = scalars.prefix(200).map { scalar -> Character in
            scalar.value < 0x20 || scalar.value == 0x7F ? "?" : Character(scalar)
        }
        return "\"" + String(clipped) + (scalars.count > 200 ? "…" : "") + "\""
    }
}

extension GRPCReflection {
    /// Reflection over Moat's own descriptor set (every file under proto/,
    /// committed by scripts/generate) for a router's services.
    public convenience init(serving router: Router) throws {
        let services = router.paths.compactMap { $0.split(separator: "/").first.map(String.init) }
        try self.init(descriptorSet: MoatDescriptorSet.serialized, services: services)
    }
}
