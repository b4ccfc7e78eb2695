// protoc-gen-moat: generates Moat service code from `service` definitions.
//
// For every .proto file with at least one service it writes one
// `<name>.moat.swift` holding, per service: the method descriptors (with each
// rpc's access level from its `@access` comment line), the server protocol, the
// typed client and the `ClientTransport` accessor. Message types are the ones
// protoc-gen-swift generates; names are computed with the same
// `SwiftProtobufNamer`, so both outputs agree.
//
// Parameters (comma-separated `key=value`, like protoc-gen-swift's):
//   FileNaming=FullPath|PathToUnderscores|DropPath   (default FullPath)
//   ProtoPathModuleMappings=<path>                   (as protoc-gen-swift)
//   Language=swift|c    c: instead, the typed C stubs of every rpc of the
//                       run, moat_stubs.h and moat_stubs.c (CStubEmitter)

import SwiftProtobuf
import SwiftProtobufPluginLibrary

@main
struct MoatGenerator: CodeGenerator {
    func generate(
        files: [FileDescriptor],
        parameter: any CodeGeneratorParameter,
        protoCompilerContext: any ProtoCompilerContext,
        generatorOutputs: any GeneratorOutputs
    ) throws {
        let options = try GeneratorOptions(parameter: parameter)
        if options.language == .c {
            let stubs = CStubEmitter(files: files).emit()
            guard stubs.problems.isEmpty else { throw GenerationError(stubs.problems.joined(separator: "\n")) }
            try generatorOutputs.add(fileName: "moat_stubs.h", contents: stubs.header)
            try generatorOutputs.add(fileName: "moat_stubs.c", contents: stubs.source)
            return
        }
        // Names that must be unique across everything generated in one run
        // (one Swift module): service types and `ClientTransport` accessors.
        var registry = NameRegistry(files: files, mappings: options.moduleMappings)
        var problems: [String] = []
        var outputs: [(name: String, contents: String)] = []

        for file in files where !file.services.isEmpty {
            let emitter = FileEmitter(file: file, options: options)
            let result = emitter.emit(registry: &registry)
            problems += result.problems
            if result.problems.isEmpty {
                outputs.append((options.outputFilename(for: file.name), result.contents))
            }
        }
        guard problems.isEmpty else {
            throw GenerationError(problems.joined(separator: "\n"))
        }
        for output in outputs {
            try generatorOutputs.add(fileName: output.name, contents: output.contents)
        }
    }

    var supportedFeatures: [Google_Protobuf_Compiler_CodeGeneratorResponse.Feature] {
        [.proto3Optional, .supportsEditions]
    }

    var supportedEditionRange: ClosedRange<Google_Protobuf_Edition> {
        Google_Protobuf_Edition.proto2...Google_Protobuf_Edition.edition2023
    }

    var version: String? { "1.0 (SwiftProtobuf \(SwiftProtobuf.Version.versionString))" }
}

/// A failure reported to protoc, which prints it and exits non-zero.
struct GenerationError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
